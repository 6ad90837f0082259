"""A real kernel's observations (data/kernel/observed-<release>.jsonl, written by `make kernel-lab`) held
against the model's `merged` policy at that kernel's version.

Differences are either listed with a reason in data/kernel/known-differences.csv (tests/
test_kernel_agreement.py fails on any other) or are errors of the model.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pandas as pd

from . import policy, scenario
from .functions import DATA

ROOT = DATA.parent
FIELDS = ("ret", "record", "attached", "body_ran", "result_from")
KNOWN = DATA / "kernel" / "known-differences.csv"


def paths() -> list[Path]:
    return sorted((DATA / "kernel").glob("observed-*.jsonl"))


def kernel_version(release: str) -> str:
    """'6.1.0-56-amd64' -> '6.1' (Debian's release names carry no stable point release)."""
    return re.match(r"(\d+\.\d+)", release).group(1)


def load(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def fmt(field: str, v) -> str:
    if field == "record" and isinstance(v, dict):
        return f"{v['count']}:{v['flags']}"
    return json.dumps(v)


def compared(path) -> list[dict]:
    """Every observed field next to the model's: file, line, field, observed, model (strings), agree."""
    by_file: dict[str, list[dict]] = {}
    for d in load(path):
        by_file.setdefault(d["file"], []).append(d)
    out = []
    for file, obs in by_file.items():
        pol = policy.get("merged", kernel=kernel_version(obs[0]["kernel"]))
        model = {r["line"]: r for r in scenario.run(scenario.parse_file(ROOT / file), pol)}
        for d in obs:
            m = model.get(d["line"])
            if m is None:
                continue
            for field in FIELDS:
                seen, want = d.get(field), m.get(field)
                if seen is None:                     # not observable, not run or not reached
                    continue
                out.append({"file": file, "line": str(d["line"]), "field": field, "observed": fmt(field, seen),
                            "model": fmt(field, want), "agree": seen == want, "crashed": bool(d.get("crashed"))})
    return out


def differences(path) -> list[dict]:
    return [{k: d[k] for k in ("file", "line", "field", "observed", "model")}
            for d in compared(path) if not d["agree"]]


def known_differences() -> dict[tuple, str]:
    """(file, line, field, observed, model) -> reason; a row FILE,*,*,*,* covers a crashed file."""
    with open(KNOWN, newline="") as f:
        return {(r["file"], r["line"], r["field"], r["observed"], r["model"]): r["reason"]
                for r in csv.DictReader(f)}


def df_agreement(path=None) -> pd.DataFrame:
    """Per scenario file: fields compared, agreeing, differing with a listed reason, crashed.

    :returns: a DataFrame indexed by ``file`` with columns ``compared, agree, explained, crashed``.
    """
    path = path or paths()[-1]
    known = known_differences()
    wild = {k[0] for k in known if k[1:] == ("*", "*", "*", "*")}
    df = pd.DataFrame(compared(path))
    df["explained"] = [(not a) and ((f, l, fi, o, m) in known or f in wild)
                       for f, l, fi, o, m, a in df[["file", "line", "field", "observed", "model", "agree"]]
                       .itertuples(index=False)]
    return (df.groupby("file")
              .agg(compared=("agree", "size"), agree=("agree", "sum"), explained=("explained", "sum"),
                   crashed=("crashed", "any"))
              .astype({"agree": int, "explained": int}))
