"""Fixtures of the browser tests: Debian's chromium driven by Python Playwright, a JupyterLab server on a
copy of the notebooks, the static site served on localhost.

``make test`` installs chromium (as root, with apt-get) and playwright, then runs these tests with
``FTSIM_BROWSER=1``: a missing browser is then an error, not a skip.  Without that variable they are
skipped when chromium or playwright is missing.  ``FTSIM_BROWSER=0`` turns them off.
``FTSIM_SCREENSHOTS=DIR`` saves a screenshot of every page and dashboard there.  Every server is started
in its own session and stopped by its pid; every wait has a timeout.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("FTSIM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
TIMEOUT_MS = 60_000
RESULTS = ROOT / ".jupyter" / "browser-results.json"
REQUIRED = os.environ.get("FTSIM_BROWSER") == "1"


def pytest_collection_modifyitems(config, items):
    reason = None
    if os.environ.get("FTSIM_BROWSER") == "0":
        reason = "browser tests: FTSIM_BROWSER=0"
    elif not Path(CHROMIUM).exists():
        reason = f"browser tests: no chromium at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "browser tests: Python playwright is not installed (pip install playwright)"
    if reason is None:
        return
    if REQUIRED:
        raise pytest.UsageError(f"{reason}; FTSIM_BROWSER=1 asks for them (make test installs both as root)")
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=reason))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status


def _stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)          # the server and what it started (kernels)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass


def _wait_until_up(url: str, proc, log: Path, what: str, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while True:
        try:
            if _get(url) == 200:
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.3)


class Lab:
    """A JupyterLab server on a copy of notebooks/ (JupyterLab never writes into the project)."""

    def __init__(self, work: Path, env_extra: dict | None = None):
        self.dir = work / "notebooks"
        shutil.copytree(ROOT / "notebooks", self.dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "figures"))
        self.port, self.token = free_port(), uuid.uuid4().hex
        env = dict(os.environ)
        for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                         ("IPYTHONDIR", "ipython")):
            env[var] = str(work / ".jupyter" / sub)
        env.setdefault("MPLCONFIGDIR", str(work / ".jupyter" / "mpl"))
        # every cell in the DOM (no windowing), so a dashboard far down the page can be found and driven
        settings = work / ".jupyter" / "config" / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
        env.update(env_extra or {})
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={self.port}",
               "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.dir}", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
               "--ServerApp.port_retries=0"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log = work / "lab.log"
        self._log = open(self.log, "w")
        self.proc = subprocess.Popen(cmd, cwd=self.dir, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        _wait_until_up(f"{self.base}/api/status?token={self.token}", self.proc, self.log, "JupyterLab")

    def url(self, name: str) -> str:
        """The notebook alone in a workspace of its own (no tabs restored from an earlier test)."""
        ws = re.sub(r"[^a-z0-9]+", "-", name.lower())
        return f"{self.base}/lab/workspaces/{ws}/tree/{name}?reset&token={self.token}"

    def stop(self):
        _stop(self.proc)
        self._log.close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """JupyterLab on the project's table cache (warm after the notebooks ran, as for a reader who did)."""
    server = Lab(tmp_path_factory.mktemp("lab"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cold_lab(tmp_path_factory):
    """JupyterLab whose kernels start with an empty table cache (a first run on a fresh machine)."""
    work = tmp_path_factory.mktemp("cold-lab")
    server = Lab(work, {"FTSIM_CACHE": str(work / "empty-cache")})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.set_default_navigation_timeout(TIMEOUT_MS)
    try:
        yield pg
    finally:
        context.close()


def screenshot_dir() -> Path | None:
    d = os.environ.get("FTSIM_SCREENSHOTS")
    if not d:
        return None
    path = Path(d)
    path.mkdir(parents=True, exist_ok=True)
    return path


def record(section: str, data):
    """Keep a measurement in .jupyter/browser-results.json (the README quotes it)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    try:
        all_ = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        all_ = {}
    all_[section] = data
    RESULTS.write_text(json.dumps(all_, indent=1, sort_keys=True))


def stats(seconds: list[float]) -> dict:
    """Median and nearest-rank 95th percentile."""
    import math
    s = sorted(seconds)
    p95 = s[max(0, math.ceil(0.95 * len(s)) - 1)]
    return {"n": len(s), "median_s": round(statistics.median(s), 3), "p95_s": round(p95, 3),
            "max_s": round(s[-1], 3)}


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")
