"""Build the static site: every notebook as HTML under ``site/``, readable offline (``make site``).

    python tools/site.py [--out site] [--notebooks notebooks]

* The notebooks are rendered from their stored outputs (nothing is executed): figures, tables and
  the dashboards' embedded widget state.
* The widget renderer (``@jupyter-widgets/html-manager``) and ``requirejs`` come from the npm registry
  at build time, pinned and checked against the registry's sha512; the tarballs are kept in
  ``.cache/npm/`` so a rebuild needs no network.  The pages load them from ``_static/``: no CDN.
* Links between notebooks (``02-the-thread.ipynb#...``) become links between pages; ``index.html``
  lists the notebooks with what each teaches.
* The build fails when a page would load a script, a style sheet, a font or an image from anywhere
  but the site itself (links the reader follows, to lore or git.kernel.org, are fine).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io
import re
import shutil
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = Path(__file__).resolve().parent / "site_template"
NPM_CACHE = ROOT / ".cache" / "npm"
REGISTRY = "https://registry.npmjs.org"
#: npm package -> (version, the registry's sha512 integrity): what the pages run
PACKAGES = {
    "@jupyter-widgets/html-manager": (
        "1.0.15", "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA=="),
    "requirejs": (
        "2.3.8", "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw=="),
}
NB_LINK = re.compile(r"\]\((\d\d-[a-z0-9-]+)\.ipynb(#[^)\s]*)?\)")
HREF_NB = re.compile(r'href="(\d\d-[a-z0-9-]+)\.ipynb(#[^"]*)?"')
#: a resource the browser fetches by itself (not a link the reader clicks)
EXTERNAL = re.compile(r"""<(?:script|img|iframe|source|video|audio)\b[^>]*\bsrc=["']?(https?:)?//"""
                      r"""|<link\b[^>]*\bhref=["']?(https?:)?//|@import\s+(?:url\()?["']?(https?:)?//""", re.I)


def fetch(name: str, version: str, integrity: str) -> bytes:
    """The package tarball, from the cache or the registry, checked against its sha512."""
    base = name.split("/")[-1]
    path = NPM_CACHE / f"{base}-{version}.tgz"
    algo, want = integrity.split("-", 1)

    def ok(data: bytes) -> bool:
        return base64.b64encode(hashlib.new(algo, data).digest()).decode() == want

    if path.exists() and ok(path.read_bytes()):
        return path.read_bytes()
    url = f"{REGISTRY}/{name}/-/{base}-{version}.tgz"
    for attempt in range(3):
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                data = r.read()
            break
        except OSError as e:
            if attempt == 2:
                raise SystemExit(f"site: cannot fetch {url}: {e}") from e
            time.sleep(2 * (attempt + 1))
    if not ok(data):
        raise SystemExit(f"site: {url} does not match its pinned {algo} ({integrity})")
    NPM_CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def _extract(data: bytes, members: dict[str, str], into: Path) -> list[Path]:
    """Copy tarball members (a regex on the path inside the package -> a file name, '' = keep the
    base name) into ``into``."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for m in tar.getmembers():
            if not m.isfile():
                continue
            inner = m.name.split("/", 1)[1] if "/" in m.name else m.name
            for pattern, target in members.items():
                if re.fullmatch(pattern, inner):
                    dest = into / (target or Path(inner).name)
                    dest.write_bytes(tar.extractfile(m).read())
                    out.append(dest)
    return out


def static_files(out: Path) -> None:
    """require.js and the widget renderer (with its fonts) into ``out/_static``."""
    static = out / "_static"
    static.mkdir(parents=True, exist_ok=True)
    v, integrity = PACKAGES["requirejs"]
    if not _extract(fetch("requirejs", v, integrity), {"require\\.js": "require.js"}, static):
        raise SystemExit("site: require.js not found in the requirejs package")
    v, integrity = PACKAGES["@jupyter-widgets/html-manager"]
    got = _extract(fetch("@jupyter-widgets/html-manager", v, integrity),
                   {r"dist/embed-amd\.js": "", r"dist/[0-9a-f]{20}\.(woff2?|ttf|eot|svg)": ""}, static)
    if not any(p.name == "embed-amd.js" for p in got):
        raise SystemExit("site: dist/embed-amd.js not found in @jupyter-widgets/html-manager")
    # the renderer's style sheets ask for their fonts relative to the module ids requirejs gives them
    for extra in (out / "@jupyter-widgets", out / "@jupyter-widgets" / "html-manager" / "dist"):
        extra.mkdir(parents=True, exist_ok=True)
        for font in got:
            if font.suffix in (".woff2", ".woff"):
                shutil.copy(font, extra / font.name)


def _title(nb) -> str:
    first = nb.cells[0].source if nb.cells else ""
    m = re.match(r"#\s+(.+)", first)
    return m[1].strip() if m else "notebook"


def _learn(nb) -> str:
    """The 'what you will learn' part of the first cell, without the title."""
    first = nb.cells[0].source if nb.cells else ""
    return re.sub(r"^#\s+.*\n?", "", first, count=1).strip()


def _rewrite_links(nb) -> None:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = NB_LINK.sub(lambda m: f"]({m[1]}.html{m[2] or ''})", cell.source)


def render(path: Path, out: Path, prev, nxt) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    _rewrite_links(nb)
    exporter = HTMLExporter(template_name="ftsim", extra_template_basedirs=[str(TEMPLATE_DIR)],
                            require_js_url="_static/require.js", widget_renderer_url="_static/embed-amd.js",
                            mathjax_url="", exclude_input_prompt=False)
    resources = {"metadata": {"name": path.stem, "path": str(path.parent)}, "ftsim_prev": prev, "ftsim_next": nxt}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    body = HREF_NB.sub(lambda m: f'href="{m[1]}.html{m[2] or ""}"', body)
    bad = [m.group(0)[:120] for m in EXTERNAL.finditer(body)]
    if bad:
        raise SystemExit(f"site: {path.name} would load from outside the site: {bad[:3]}")
    dest = out / f"{path.stem}.html"
    dest.write_text(body, encoding="utf-8")
    return dest


def index_page(entries, out: Path) -> Path:
    from nbconvert.filters.markdown import markdown2html

    items = []
    for name, title, learn in entries:
        body = markdown2html(NB_LINK.sub(lambda m: f"]({m[1]}.html{m[2] or ''})", learn))
        items.append(f'<section><h2><a href="{name}.html">{html.escape(title)}</a></h2>{body}</section>')
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ftsim: the reading kit</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; color: #222; }}
section {{ border-top: 1px solid #ddd; padding: .4em 0 .8em; }}
h2 {{ font-size: 1.15em; margin: .6em 0 .2em; }}
code {{ background: #f3f3f3; padding: 0 .2em; }}
</style></head><body>
<h1>ftsim: how ftrace arbitrates IPMODIFY and DIRECT ops</h1>
<p>The notebooks of the kit, rendered with their stored outputs: readable offline, nothing to install.
Livepatch, kprobes with a post_handler and fail_function register <code>FTRACE_OPS_FL_IPMODIFY</code> ops;
BPF fentry/fexit/fmod_ret programs share a direct trampoline (<code>FTRACE_OPS_FL_DIRECT</code>). The kit models
how Linux 6.0 and its successors let the two share a function, the 2022 thread that designed it, and what
went wrong since. Words are explained in the <a href="10-glossary.html">glossary</a>. To turn the
dashboards' knobs, run the notebooks (<code>make lab</code> in the project).</p>
{''.join(items)}
</body></html>
"""
    dest = out / "index.html"
    dest.write_text(page, encoding="utf-8")
    return dest


def build(out: Path = ROOT / "site", notebooks: Path = ROOT / "notebooks") -> list[Path]:
    import nbformat

    t0 = time.perf_counter()
    paths = sorted(notebooks.glob("[0-9][0-9]-*.ipynb"))
    if not paths:
        raise SystemExit(f"site: no notebooks in {notebooks}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    static_files(out)
    nbs = [nbformat.read(p, as_version=4) for p in paths]
    titles = [_title(nb) for nb in nbs]
    pages = []
    for i, p in enumerate(paths):
        prev = (f"{paths[i - 1].stem}.html", titles[i - 1]) if i else None
        nxt = (f"{paths[i + 1].stem}.html", titles[i + 1]) if i + 1 < len(paths) else None
        pages.append(render(p, out, prev, nxt))
    pages.append(index_page([(p.stem, t, _learn(nb)) for p, t, nb in zip(paths, titles, nbs)], out))
    print(f"site: {len(pages)} pages in {out} ({time.perf_counter() - t0:.1f} s)")
    return pages


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "site", help="where to write (default: site/)")
    ap.add_argument("--notebooks", type=Path, default=ROOT / "notebooks", help="notebooks to render")
    args = ap.parse_args(argv)
    build(args.out, args.notebooks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
