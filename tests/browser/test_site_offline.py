"""The static site read in a browser with every request that is not to the site itself blocked: each
page's figures are drawn, its tables visible, its dashboards drawn from the embedded widget state (with
their stored result), glossary links land on their entry.  FTSIM_SCREENSHOTS=DIR saves a full-page
screenshot of each page at a notebook's reading width."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

import pytest

from conftest import ROOT, _stop, _wait_until_up, free_port, record, screenshot_dir

spec = importlib.util.spec_from_file_location("site_builder", ROOT / "tools" / "site.py")
site = importlib.util.module_from_spec(spec)
spec.loader.exec_module(site)
DASHBOARDS = {"03-the-model": "table.ftsim-builder", "04-designs-side-by-side": ".ftsim-grid table",
              "05-randomized-workloads": "img.widget-image", "06-cost-and-safety": "img.widget-image"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    t0 = time.perf_counter()
    pages = site.build(out)
    build_s = time.perf_counter() - t0
    port = free_port()
    log = out.parent / "http.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                 "-d", str(out)], stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(f"{base}/index.html", proc, log, "http.server", 30)
        yield base, pages, build_s
    finally:
        _stop(proc)


@pytest.fixture
def offline(browser, served):
    """A page whose requests outside the site are aborted (and counted)."""
    base = served[0]
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    blocked, failed, errors = [], [], []

    def route(r):
        if r.request.url.startswith(base + "/") or r.request.url.startswith("data:"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield page, blocked, failed, errors
    finally:
        context.close()


def _pages(served):
    return [p.stem for p in served[1] if p.stem != "index"]


def test_every_page_reads_offline(served, offline):
    base, pages, build_s = served
    page, blocked, failed, errors = offline
    shots = screenshot_dir()
    seen = {}
    for name in _pages(served):
        page.goto(f"{base}/{name}.html", wait_until="load")
        page.wait_for_selector("body[data-ftsim-ready]", timeout=30_000)
        figures = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output img')]
            .filter(i => !i.closest('.ftsim-fallback') && !i.closest('.jupyter-widgets'))
            .map(i => [i.naturalWidth, i.getBoundingClientRect().width])""")
        assert all(nw > 0 and w > 200 for nw, w in figures), (name, figures)
        tables = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output table')]
            .filter(t => !t.closest('.ftsim-fallback') && !t.closest('details') && !t.closest('.jupyter-widgets')).map(t => t.getBoundingClientRect().height)""")
        assert tables and all(h > 0 for h in tables), name
        if name in DASHBOARDS:
            dash = page.locator(".ftsim-dash").first
            dash.wait_for(state="visible")
            out = dash.locator(DASHBOARDS[name]).first
            out.wait_for(state="visible")
            if out.evaluate("e => e.tagName") == "IMG":
                assert out.evaluate("e => e.complete && e.naturalWidth > 300"), name
            assert dash.locator(".ftsim-heading").inner_text().strip(), name       # design and kernel label
            assert page.locator(".ftsim-static-note").first.is_visible()
            assert page.locator(".ftsim-fallback:not([hidden])").count() == 0      # the widgets drew
        seen[name] = {"figures": len(figures), "tables": len(tables)}
        if shots:
            page.screenshot(path=str(shots / f"site-{name}.png"), full_page=True)
    assert blocked == [], blocked[:5]
    assert failed == [] and errors == [], (failed[:5], errors[:5])
    record("site", {"build_s": round(build_s, 1), "pages": seen})
    assert build_s < 120


def test_index_and_glossary_links(served, offline):
    base, pages, _ = served
    page, blocked, failed, _ = offline
    page.goto(f"{base}/index.html", wait_until="load")
    links = page.locator("section h2 a")
    assert links.count() == len(_pages(served))
    links.nth(0).click()
    page.wait_for_url("**/01-start-here.html")
    gloss = page.locator('a[href^="10-glossary.html#"]').first
    frag = gloss.get_attribute("href").split("#", 1)[1]
    gloss.click()
    page.wait_for_url("**/10-glossary.html#*")
    assert page.evaluate("(f) => { const e = document.getElementById(decodeURIComponent(f));"
                         " return !!e && e.getBoundingClientRect().top < window.innerHeight; }", frag)
    page.locator("nav.ftsim-nav a", has_text="the reading kit").first.click()
    page.wait_for_url("**/index.html")
    assert blocked == [] and failed == []
