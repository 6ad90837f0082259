"""`make site`: every notebook as an HTML page that loads nothing from outside the site, links between
pages that resolve (glossary fragments included), an index, built well within two minutes.  (The
browser test, tests/browser/test_site_offline.py, then reads it with the network blocked.)"""
import html
import importlib.util
import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("site_builder", ROOT / "tools" / "site.py")
site = importlib.util.module_from_spec(spec)
spec.loader.exec_module(site)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    t0 = time.perf_counter()
    pages = site.build(out)
    return out, pages, time.perf_counter() - t0


def test_every_notebook_has_a_page_and_the_index_lists_them(built):
    out, pages, seconds = built
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    assert sorted(p.stem for p in pages if p.stem != "index") == notebooks
    index = (out / "index.html").read_text()
    for name in notebooks:
        assert f'href="{name}.html"' in index
    assert seconds < 120, seconds


def test_pages_load_nothing_from_outside(built):
    out, pages, _ = built
    for page in pages:
        text = page.read_text()
        assert not site.EXTERNAL.search(text), page.name
        for src in re.findall(r'<script[^>]+src="([^"]+)"', text):
            assert (out / src).exists(), (page.name, src)
    assert (out / "_static" / "embed-amd.js").stat().st_size > 1_000_000
    assert (out / "_static" / "require.js").exists()


def test_links_between_pages_resolve_with_their_fragments(built):
    out, pages, _ = built
    ids = {p.name: {html.unescape(i) for i in re.findall(r'\bid="([^"]+)"', p.read_text())} for p in pages}
    checked = 0
    for page in pages:
        for href in re.findall(r'href="([^"#:]*\.html)(#[^"]*)?"', page.read_text()):
            target, frag = href
            assert target in ids, (page.name, target)
            if frag:
                assert html.unescape(frag[1:]) in ids[target], (page.name, target, frag)
            checked += 1
    assert checked > 100
    assert not any(".ipynb" in h for p in pages for h in re.findall(r'href="([^"]+)"', p.read_text())
                   if not h.startswith("http")), "a link still points to a notebook"


def test_dashboards_keep_their_static_result_beside_the_widget(built):
    out, _, _ = built
    for name in ("03-the-model", "04-designs-side-by-side", "05-randomized-workloads", "06-cost-and-safety"):
        text = (out / f"{name}.html").read_text()
        assert 'type="application/vnd.jupyter.widget-state+json"' in text, name
        assert "ftsim-fallback" in text and "A static copy: the controls need a running kernel" in text, name


def test_npm_packages_are_pinned_and_checked(tmp_path, monkeypatch):
    name, (version, integrity) = next(iter(site.PACKAGES.items()))
    data = site.fetch(name, version, integrity)             # from .cache/npm after the build above
    monkeypatch.setattr(site, "NPM_CACHE", tmp_path)
    (tmp_path / f"{name.split('/')[-1]}-{version}.tgz").write_bytes(data[:-1] + b"x")    # a corrupt copy
    monkeypatch.setattr(site, "REGISTRY", "http://127.0.0.1:9")                         # and no registry
    with pytest.raises(SystemExit, match="cannot fetch"):
        site.fetch(name, version, integrity)
