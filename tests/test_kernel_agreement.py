"""The model's `merged` policy against real kernels: every observation of the kernel lab
(data/kernel/observed-<release>.jsonl, written by `make kernel-lab`; no QEMU needed here) is compared step
by step with the model at the observed kernel's version, on ret, record (count + flags), attached, body_ran
and result_from.  A difference passes only as a lab limitation: a row of data/kernel/known-differences.csv
naming one of the fixed categories of ftsim.observed.LIMITATIONS, which the observation itself confirms
(ftsim.observed.explain, the one definition notebook 09 uses too).  A difference the model causes fails here
until the model is fixed.
"""
import csv
from pathlib import Path

import pytest

from ftsim import observed

ROOT = Path(__file__).resolve().parent.parent
OBSERVED = observed.paths()


def _rows():
    with open(observed.KNOWN, newline="") as f:
        return list(csv.DictReader(f))


def test_known_differences_name_a_fixed_category():
    rows = _rows()
    assert rows == [] or list(rows[0]) == [*observed.KEY, "category"]
    bad = [r for r in rows if r["category"] not in observed.LIMITATIONS]
    assert not bad, f"rows with a category outside {sorted(observed.LIMITATIONS)}: {bad[:5]}"


def test_known_differences_are_current_and_confirmed():
    """Every row is a difference of today's observations that its category explains (no stale rows, no
    row whose category the observation does not show)."""
    explained = {tuple(d[k] for k in observed.KEY) for p in OBSERVED for d in observed.explain(p) if d["category"]}
    stale = [r for r in _rows() if tuple(r[k] for k in observed.KEY) not in explained]
    assert not stale, (f"{len(stale)} rows of {observed.KNOWN.relative_to(ROOT)} are no difference of the "
                       f"observations, or their category is not shown by them: {stale[:5]}")


@pytest.mark.parametrize("path", OBSERVED, ids=[observed.release_of(p) for p in OBSERVED])
def test_model_agrees_with_kernel(path):
    diffs = observed.differences(path)
    msg = "\n".join(f"{d['file']}:{d['line']} {d['field']}: kernel {d['observed']}, model {d['model']}"
                    for d in diffs[:60])
    assert not diffs, (f"{len(diffs)} differences between {path.name} and merged at "
                       f"{observed.kernel_version(observed.release_of(path))} that no lab limitation explains:\n{msg}")


def test_observations_cover_steps():
    for path in OBSERVED:
        rows = observed.load(path)
        assert rows, f"{path.name} is empty"
        for d in rows:
            assert {"file", "line", "op", "ret", "record", "attached", "kernel", "crashed"} <= d.keys()
            assert d["kernel"] == observed.release_of(path)


def test_every_debian_kernel_of_the_lab_is_observed():
    table = [l.split() for l in (ROOT / "lab/kernels.txt").read_text().splitlines() if l.strip() and not l.startswith("#")]
    have = {observed.release_of(p) for p in OBSERVED}
    assert {r[1] for r in table} <= have, f"not observed: {sorted({r[1] for r in table} - have)}"


def test_agreement_table_accounts_for_every_field():
    for path in OBSERVED:
        t = observed.df_agreement(path)
        assert len(t) > 0
        assert (t.agree + t[list(observed.LIMITATIONS)].sum(axis=1) + t.model == t.compared).all()


def test_findings_name_their_reproducer():
    for f in sorted(observed.FINDINGS.glob("*.md")):
        text = f.read_text()
        assert "Affected" in text, f"{f.name}: no 'Affected' line"
        fts = [w.strip("`") for w in text.split() if w.strip("`").endswith(".fts")]
        assert fts and all((ROOT / w).exists() for w in fts if w.startswith("data/")), f"{f.name}: reproducer missing"


def test_a_lab_run_of_some_files_keeps_the_other_files_observations():
    """`make kernel-lab LAB_FILES=...` replaces only the files it ran (lab/run.py merge_observations)."""
    import importlib.util
    import json as J
    spec = importlib.util.spec_from_file_location("lab_run", Path(__file__).resolve().parents[1] / "lab" / "run.py")
    run = importlib.util.module_from_spec(spec)
    import sys
    sys.modules.setdefault("lab_run", run)
    spec.loader.exec_module(run)
    a, b = "data/scenarios/bug-modify-path-bypass.fts", "data/scenarios/pairs-passive.fts"
    old = [{"file": a, "line": 8, "ret": 0}, {"file": a, "line": 9, "ret": 0}, {"file": b, "line": 5, "ret": 0},
           {"file": "data/scenarios/gone.fts", "line": 1, "ret": 0}]
    text = "".join(J.dumps(d) + "\n" for d in old)
    rows, kept = run.merge_observations(text, [{"file": b, "line": 5, "ret": -16}], {b})
    assert rows == old[:2] + [{"file": b, "line": 5, "ret": -16}] and kept == 2
    rows, kept = run.merge_observations(text, [], {a})                  # the guest died before file a
    assert rows == [old[2]] and kept == 1
