"""Headless browser: open the workload dashboard (notebook 05) in JupyterLab, run it, move a slider, and
check that the plot changes.

Runs when Python Playwright and Debian's chromium (/usr/bin/chromium: ``playwright install`` cannot
download browsers here) are both present, so ``make test`` includes it once ``make test-browser`` has
installed them (about 15 s); otherwise it is skipped with the reason.  FTSIM_BROWSER=0 turns it off.  The notebook is copied to
a temporary directory so that JupyterLab never writes into notebooks/.  Every request has a timeout
and the server is stopped by its pid.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = os.environ.get("FTSIM_BROWSER_NOTEBOOK", str(ROOT / "notebooks" / "05-randomized-workloads.ipynb"))
CHROMIUM = os.environ.get("FTSIM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
TIMEOUT_MS = 60_000
RESULTS = ROOT / ".jupyter" / "browser-test.json"

if os.environ.get("FTSIM_BROWSER") == "0":
    pytest.skip("browser test: FTSIM_BROWSER=0", allow_module_level=True)
if not Path(NOTEBOOK).exists():
    pytest.skip(f"browser test: {NOTEBOOK} does not exist", allow_module_level=True)
if not Path(CHROMIUM).exists():
    pytest.skip(f"browser test: no chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser test: Python playwright is not installed "
                                                              "(pip install -e '.[browser]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of the notebook; yields (base_url, token, notebook name)."""
    work = tmp_path_factory.mktemp("lab")
    nb = Path(NOTEBOOK)
    shutil.copy(nb, work / nb.name)
    port, token = _free_port(), uuid.uuid4().hex
    env = dict(os.environ)
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("IPYTHONDIR", "ipython")):
        env[var] = str(work / ".jupyter" / sub)
    env.setdefault("MPLCONFIGDIR", str(work / ".jupyter" / "mpl"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={port}",
           "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=", "--ServerApp.port_retries=0"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(work / "lab.log", "w")
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(f"{base}/api/status?token={token}") == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("JupyterLab did not start:\n" + (work / "lab.log").read_text()[-3000:])
            time.sleep(0.3)
        yield base, token, nb.name
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)       # the server and the kernels it started
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()


DASH_IMG = ".jp-OutputArea-output .widget-image"


def test_slider_moves_the_plot(lab):
    base, token, name = lab
    t0 = time.monotonic()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.set_default_navigation_timeout(TIMEOUT_MS)
            page.goto(f"{base}/lab/tree/{name}?token={token}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-Notebook", state="attached")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel")
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            img = page.wait_for_selector(DASH_IMG, state="visible", timeout=120_000)
            t_ready = time.monotonic()
            page.wait_for_function(f"() => document.querySelector('{DASH_IMG}').src.startsWith('blob:')")
            before = img.get_attribute("src")
            slider = ".jp-OutputArea-output .widget-slider"
            page.wait_for_function(f"() => (document.querySelector('{slider} .widget-readout') || {{}}).textContent")
            handle = page.locator(f"{slider} .noUi-handle").first
            label = page.locator(f"{slider} .widget-label").first.text_content()
            value_before = page.locator(f"{slider} .widget-readout").first.text_content()
            handle.focus()
            t_move = time.monotonic()
            page.keyboard.press("ArrowRight")
            page.wait_for_function(f"(old) => document.querySelector('{DASH_IMG}').src !== old", arg=before,
                                   timeout=30_000)
            latency = time.monotonic() - t_move
            value_after = page.locator(f"{slider} .widget-readout").first.text_content()
            status = page.locator(".jp-OutputArea-output .widget-html-content small").first.inner_text()
            if os.environ.get("FTSIM_BROWSER_SCREENSHOT"):
                img.scroll_into_view_if_needed()
                page.screenshot(path=os.environ["FTSIM_BROWSER_SCREENSHOT"])
        finally:
            browser.close()
    result = {"slider": label, "from": value_before, "to": value_after, "browser_latency_s": round(latency, 3),
              "kernel_status": status, "open_and_run_s": round(t_ready - t0, 1),
              "total_s": round(time.monotonic() - t0, 1)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(result)
    assert value_after != value_before
    assert latency < 5.0, result
