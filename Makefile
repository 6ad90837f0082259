# ftsim: everything runs from a project-local .venv.
#   make lab    set up and start JupyterLab on notebooks/
#   make test   set up and run every test and every notebook (nbval, strict)
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

.PHONY: lab test test-fast test-browser bench kernel-lab clean notebooks

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[dev]' || $(PY) -m pip install -q -e '.[dev]'
	touch $@

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $(ROOT_FLAG)

test: $(STAMP)
	$(PY) -m pytest tests notebooks $(NBVAL)

test-fast: $(STAMP)
	$(PY) -m pytest tests

test-browser: $(STAMP)
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[dev,browser]'
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get update -qq; apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; }; } || \
	  echo "no /usr/bin/chromium (apt-get install chromium): the browser test will be skipped"
	FTSIM_BROWSER=1 $(PY) -m pytest -s tests/browser

# Re-execute every notebook in place (stored outputs are what nbval compares): after a model change.
notebooks: $(STAMP)
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 $(or $(NB),notebooks/*.ipynb)

bench: $(STAMP)
	$(PY) -m ftsim.bench

kernel-lab:
	bash lab/kernel-lab.sh

clean:
	rm -rf $(VENV) .jupyter .cache .pytest_cache .hypothesis
