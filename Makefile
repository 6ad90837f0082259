# ftsim: everything runs from a project-local .venv.
#   make lab [PORT=8888] [HOST=127.0.0.1]   set up and start JupyterLab on notebooks/
#   make test   set up and run every test, every notebook (nbval, strict) and the browser tests
#   make site   render every notebook to HTML under site/ (readable offline)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Keep Jupyter, IPython and matplotlib state inside the project.
export JUPYTER_CONFIG_DIR := $(CURDIR)/.jupyter/config
export JUPYTER_DATA_DIR := $(CURDIR)/.jupyter/data
export JUPYTER_RUNTIME_DIR := $(CURDIR)/.jupyter/runtime
export IPYTHONDIR := $(CURDIR)/.jupyter/ipython
export MPLCONFIGDIR := $(CURDIR)/.jupyter/mpl
export MPLBACKEND := Agg
export FTSIM_CACHE := $(CURDIR)/.cache/ftsim
export PYTHONHASHSEED := 0

ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

PORT ?= 8888
HOST ?= 127.0.0.1
CHROMIUM ?= /usr/bin/chromium

.PHONY: lab test test-fast test-browser browser-deps site bench kernel-lab clean notebooks fuzz mutants

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[dev]' || $(PY) -m pip install -q -e '.[dev]'
	touch $@

# HOST=0.0.0.0 serves other machines (open http://THIS-MACHINE:PORT/lab?token=... from the URL printed)
lab: $(STAMP)
	@echo "ftsim: JupyterLab on http://$(HOST):$(PORT)/lab (the token is in the URL printed below)"
	$(VENV)/bin/jupyter lab notebooks/ $(ROOT_FLAG) --ServerApp.port=$(PORT) --ServerApp.ip=$(HOST) \
	  --ServerApp.port_retries=0 $(if $(filter 127.0.0.1 localhost,$(HOST)),,--no-browser)

# Unit tests and notebooks first (they leave the batch engine's tables warm in .cache/ftsim, as a reader's
# first session does), then the browser tests, which need chromium: installed here when missing and root.
test: $(STAMP) browser-deps
	$(PY) -m pytest tests notebooks $(NBVAL) --ignore=tests/browser
	$(MAKE) --no-print-directory test-browser

test-fast: $(STAMP)
	$(PY) -m pytest tests --ignore=tests/browser

test-browser: $(STAMP) browser-deps
	@if [ -x $(CHROMIUM) ]; then FTSIM_BROWSER=1 $(PY) -m pytest tests/browser; \
	else echo "ftsim: no $(CHROMIUM) and not root: the browser tests are skipped (apt-get install chromium)"; \
	  FTSIM_BROWSER=0 $(PY) -m pytest -q tests/browser; fi

browser-deps:
	@test -x $(CHROMIUM) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { echo "ftsim: installing Debian's chromium (apt-get)"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; }; } || true

# The static site: notebooks as HTML with their stored outputs; the widget JavaScript comes from the npm
# registry (kept in .cache/npm). Open site/index.html, or serve it: python3 -m http.server -d site
site: $(STAMP)
	$(PY) tools/site.py --out site

# Re-execute every notebook in place (stored outputs are what nbval compares): after a model change.
notebooks: $(STAMP)
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 $(or $(NB),notebooks/*.ipynb)

bench: $(STAMP)
	$(PY) -m ftsim.bench

# A fuzz campaign (not part of `make test`): ~60,000 cases over scenario text, preset dicts and files,
# and CLI argument vectors; FUZZ_SCALE=0.1 for a short one.  Counts in .fuzz-report.jsonl, a table at
# the end; exit 1 when any case raised a traceback or hung.
FUZZ_SCALE ?= 1
FUZZ = FTSIM_FUZZ_REPORT=$(CURDIR)/.fuzz-report.jsonl $(PY) -m pytest -q -p no:cacheprovider -x
fuzz: $(STAMP)
	rm -f .fuzz-report.jsonl
	FTSIM_FUZZ_EXAMPLES=$$(python3 -c "print(int(20000*$(FUZZ_SCALE)))") $(FUZZ) tests/test_fuzz_scenario.py -k fuzz_near || true
	FTSIM_FUZZ_EXAMPLES=$$(python3 -c "print(int(8000*$(FUZZ_SCALE)))") $(FUZZ) tests/test_fuzz_scenario.py -k fuzz_arbitrary || true
	FTSIM_FUZZ_EXAMPLES=$$(python3 -c "print(int(12000*$(FUZZ_SCALE)))") $(FUZZ) tests/test_fuzz_presets.py || true
	FTSIM_FUZZ_EXAMPLES=$$(python3 -c "print(int(12000*$(FUZZ_SCALE)))") $(FUZZ) tests/test_fuzz_cli.py -k in_process || true
	FTSIM_FUZZ_EXAMPLES=$$(python3 -c "print(int(100*$(FUZZ_SCALE)))") $(FUZZ) tests/test_fuzz_cli.py -k console_script || true
	cd tests && ../$(PY) test_fuzz_support.py $(CURDIR)/.fuzz-report.jsonl

# Mutation testing of the kernel rules and both engines (not part of `make test`): every mutant takes hours
# on 2 cores; SAMPLE=N tests a seeded uniform sample of N (SEED=S) and prints the score with its 95 %
# interval.  The score and the survivors are kept in .cache/mutants-results.txt (JOBS=N; files and tests:
# [tool.mutmut] in pyproject.toml).
mutants: $(STAMP)
	rm -rf mutants; mkdir -p .cache
	@if [ -n "$(SAMPLE)" ]; then FTSIM_CACHE=off $(PY) tools/mutsample.py $(VENV)/bin/mutmut $(SAMPLE) $(or $(SEED),0) \
	  | tee .cache/mutants-results.txt; else \
	FTSIM_CACHE=off $(VENV)/bin/mutmut run --max-children $(or $(JOBS),2); \
	$(VENV)/bin/mutmut results > .cache/mutants-results.txt || true; \
	$(VENV)/bin/mutmut export-cicd-stats && $(PY) tools/mutscore.py | tee -a .cache/mutants-results.txt; fi

# The kernel lab (lab/README.md): KERNEL=NAME (lab/kernels.txt; default 6.1.192), or KDIR=TREE [IMAGE=BZIMAGE]
# for your own kernel; LAB_SET="FIELD=VALUE ..." and LAB_MODEL="line; line" go to the model as they are.
KERNEL ?=
KDIR ?=
IMAGE ?=
LAB_SET ?=
LAB_MODEL ?=
LAB_FILES ?=
kernel-lab: $(STAMP)
	KERNEL='$(KERNEL)' KDIR='$(KDIR)' IMAGE='$(IMAGE)' LAB_SET='$(LAB_SET)' LAB_MODEL='$(LAB_MODEL)' LAB_FILES='$(LAB_FILES)' bash lab/kernel-lab.sh

.PHONY: kernel-lab-all
kernel-lab-all: $(STAMP)
	LAB_FILES='$(LAB_FILES)' bash lab/kernel-lab.sh --all

clean:
	rm -rf $(VENV) .jupyter .cache .pytest_cache .hypothesis .fuzz-report.jsonl site
