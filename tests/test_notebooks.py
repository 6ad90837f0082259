"""Notebook hygiene: numbered, a purpose first, a pointer onward last, outputs stored and clean.

nbval (``make test``) re-runs every notebook and compares the stored outputs; these checks cover what
nbval does not: the reading order, the first and last cells, error outputs, execution counts, and the
widget cells (ignored by nbval, so each must be followed by a compared cell).
"""
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
NAME_RE = re.compile(r"(\d\d)-[a-z0-9]+(?:-[a-z0-9]+)*\.ipynb\Z")
IGNORE_TAGS = {"nbval-ignore-output", "nbval-skip"}
SKIP_DIRS = {".venv", ".jupyter", ".git", ".ipynb_checkpoints", "build", "node_modules"}


def _read(path):
    return nbformat.read(path, as_version=4)


def _ids(paths):
    return [p.name for p in paths]


def test_there_are_notebooks():
    assert NOTEBOOKS and (NB_DIR / "01-start-here.ipynb").exists()


def test_every_notebook_is_in_notebooks_and_numbered():
    stray = [p.relative_to(ROOT) for p in ROOT.rglob("*.ipynb")
             if not SKIP_DIRS & set(p.relative_to(ROOT).parts) and p.parent != NB_DIR]
    assert not stray, f"notebooks outside notebooks/: {stray}"
    bad = [p.name for p in NOTEBOOKS if not NAME_RE.match(p.name)]
    assert not bad, f"not named NN-words.ipynb: {bad}"
    numbers = [NAME_RE.match(p.name)[1] for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers)), f"two notebooks share a number: {numbers}"
    assert numbers == [f"{i:02d}" for i in range(1, len(numbers) + 1)], f"gaps in the reading order: {numbers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_first_cell_states_the_purpose(path):
    first = _read(path).cells[0]
    assert first.cell_type == "markdown", "the first cell must be markdown"
    assert re.match(r"#\s+\S", first.source), "the first cell must open with a '# title'"
    assert re.search(r"learn|you will|this notebook", first.source, re.I), \
        "the first cell must say what the reader will learn"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_last_cell_says_what_to_read_next(path):
    last = _read(path).cells[-1]
    assert last.cell_type == "markdown" and re.search(r"next", last.source, re.I)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_no_error_outputs(path):
    for i, cell in enumerate(_read(path).cells):
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"cell {i} holds an error: {out.get('ename')}"
            if out.output_type == "stream":
                assert out.name != "stderr" or "Warning" not in out.text, f"cell {i} warns: {out.text[:200]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_execution_counts_in_order(path):
    counts = [c.execution_count for c in _read(path).cells if c.cell_type == "code"]
    assert None not in counts, "a code cell was not executed (outputs must be stored)"
    assert counts == list(range(1, len(counts) + 1)), f"stale or out-of-order execution counts: {counts}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_no_svg_and_widget_cells_are_ignored_and_checked(path):
    cells = _read(path).cells
    for i, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        data = [o.get("data", {}) for o in cell.outputs]
        assert not any("image/svg+xml" in d for d in data), f"cell {i}: SVG output (nbval compares it)"
        tags = set(cell.metadata.get("tags", []))
        if any("application/vnd.jupyter.widget-view+json" in d for d in data):
            assert tags & IGNORE_TAGS or "NBVAL_IGNORE_OUTPUT" in cell.source, \
                f"cell {i} displays a widget: tag it nbval-ignore-output"
            following = [c for c in cells[i + 1:] if c.cell_type == "code"]
            assert following and not set(following[0].metadata.get("tags", [])) & IGNORE_TAGS, \
                f"cell {i}: the widget must be followed by a compared cell printing its values"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_links_to_notebooks_resolve(path):
    """A link may point to a notebook not written yet only while no notebook holds its number."""
    numbers = {NAME_RE.match(p.name)[1] for p in NOTEBOOKS if NAME_RE.match(p.name)}
    for cell in _read(path).cells:
        if cell.cell_type == "markdown":
            for target in re.findall(r"\]\(([^)#\s]+\.ipynb)", cell.source):
                if (NB_DIR / target).exists():
                    continue
                m = NAME_RE.match(target)
                assert m and m[1] not in numbers, f"link to a missing notebook: {target}"


# -- The glossary ---------------------------------------------------------------------------------

GLOSSARY = NB_DIR / "10-glossary.ipynb"
GLOSSARY_LINK = re.compile(r"\]\(10-glossary\.ipynb#([^)\s]+)\)")
#: terms of issue 15 whose first use in a notebook must link the glossary: heading id -> pattern
TERMS = {
    "IPMODIFY": r"IPMODIFY", "DIRECT": r"(?<![_\w])DIRECT\b|FTRACE_OPS_FL_DIRECT", "ORIG_STACK": r"ORIG_STACK",
    "CALL_ORIG": r"CALL_ORIG", "SELF": r"(?<![_\w])SELF\b", "PEER": r"(?<![_\w])PEER\b",
    "DISABLE_PEER": r"(?<![_\w])DISABLE_PEER\b", "flavors": r"\bflavou?rs?\b", "0!": r"`0!`",
    "cb/retry/regen": r"`cb=|cb/retry/regen", "2:RIDM": r"`\d:R?I?D?M?`|count:flags", "ops_func": r"ops_func",
    "-EAGAIN": r"-EAGAIN", "-EBUSY": r"-EBUSY",
}


def _heading_ids(nb) -> set[str]:
    """The ids JupyterLab and nbconvert give headings: the text, inline code unwrapped, spaces -> '-'."""
    ids = set()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", cell.source, re.M):
                ids.add(m[1].replace("`", "").replace(" ", "-"))
    return ids


def test_glossary_links_resolve():
    gloss = _read(GLOSSARY)
    ids = _heading_ids(gloss)
    for path in NOTEBOOKS:
        for cell in _read(path).cells:
            if cell.cell_type != "markdown":
                continue
            targets = GLOSSARY_LINK.findall(cell.source)
            if path == GLOSSARY:
                targets += re.findall(r"\]\(#([^)\s]+)\)", cell.source)
            missing = [t for t in targets if t not in ids]
            assert not missing, f"{path.name}: links to glossary entries that do not exist: {missing}"


def test_start_here_links_the_glossary_at_the_top():
    first = _read(NB_DIR / "01-start-here.ipynb").cells[0].source
    assert "](10-glossary.ipynb)" in first


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name[:2] in {f"{i:02d}" for i in range(1, 9)}],
                         ids=lambda p: p.name)
def test_first_use_of_a_term_links_the_glossary(path):
    text = "\n\n".join(c.source for c in _read(path).cells if c.cell_type == "markdown")
    text = re.sub(r"^#{1,6} .*$", lambda m: " " * len(m[0]), text, flags=re.M)     # headings do not count
    links = [(m.start(), m.end(), m[1]) for m in re.finditer(r"\[[^\]]*\]\(10-glossary\.ipynb#([^)\s]+)\)", text)]
    unlinked = []
    for term, pattern in TERMS.items():
        m = re.search(pattern, text)
        if m and not any(a <= m.start() < b for a, b, _ in links):
            unlinked.append(f"{term} ({text[max(0, m.start() - 30):m.end() + 10]!r})")
    assert not unlinked, f"first use without a glossary link: {unlinked}"
