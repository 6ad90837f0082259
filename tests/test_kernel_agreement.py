"""The model's `merged` policy against a real kernel: every observation of the kernel lab
(data/kernel/observed-*.jsonl, written by `make kernel-lab`; no QEMU needed here) is compared step by
step with the model at the observed kernel version, on ret, record (count + flags), attached, body_ran
and result_from.  Each difference must be listed, with a reason, in data/kernel/known-differences.csv.
A row `FILE,*,*,*,*,reason` covers the steps of a scenario file that crashed the guest from its first
kernel WARNING on: how far such a file gets varies from run to run.
"""
import csv
from pathlib import Path

import pytest

from ftsim import observed

ROOT = Path(__file__).resolve().parent.parent
OBSERVED = sorted((ROOT / "data/kernel").glob("observed-*.jsonl"))
KNOWN = ROOT / "data/kernel/known-differences.csv"


def _known():
    with open(KNOWN, newline="") as f:
        return {(r["file"], r["line"], r["field"], r["observed"], r["model"]): r["reason"] for r in csv.DictReader(f)}


def test_known_differences_have_reasons():
    for key, reason in _known().items():
        assert reason.strip() and reason.strip() != "UNEXPLAINED", f"{key}: no reason given"


@pytest.mark.parametrize("path", OBSERVED, ids=[p.name for p in OBSERVED])
def test_model_agrees_with_kernel(path):
    import json
    known = _known()
    wild = {k[0] for k in known if k[1:] == ("*", "*", "*", "*")}
    after_warn = set()            # (file, line) of crashed files from the first kernel WARNING on
    warned = set()
    for d in (json.loads(l) for l in open(path)):
        if d["crashed"] and (d["file"] in warned or any("WARNING" in n for n in d.get("notes", []))):
            warned.add(d["file"])
            after_warn.add((d["file"], str(d["line"])))
    diffs = observed.differences(path)
    unexplained = [d for d in diffs if (d["file"], d["line"], d["field"], d["observed"], d["model"]) not in known
                   and not (d["file"] in wild and (d["file"], d["line"]) in after_warn)]
    msg = "\n".join(f"{d['file']}:{d['line']} {d['field']}: kernel {d['observed']}, model {d['model']}"
                    for d in unexplained[:40])
    assert not unexplained, (f"{len(unexplained)} differences between the kernel lab and the model are not in "
                             f"{KNOWN.relative_to(ROOT)}:\n{msg}")


def test_observations_cover_steps():
    import json
    for path in OBSERVED:
        rows = [json.loads(l) for l in open(path)]
        assert rows, f"{path.name} is empty"
        for d in rows:
            assert {"file", "line", "op", "ret", "record", "attached", "kernel", "crashed"} <= d.keys()


def test_agreement_table_accounts_for_every_field():
    table = observed.df_agreement()
    assert len(table) > 0 and (table.agree + table.explained == table.compared).all()
    assert table.agree.sum() > table.explained.sum()
