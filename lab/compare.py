#!/usr/bin/env python3
"""Compare the kernel lab's observations with the model's `merged` policy at the observed kernel version.

    .venv/bin/python lab/compare.py [data/kernel/observed-6.1.0-56-amd64.jsonl]   # prints the differences

Used by tests/test_kernel_agreement.py (the same `differences()`), and to draft
data/kernel/known-differences.csv (`--csv`: rows with the reason guessed by `reason()`, to be checked by hand).
"""
from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIELDS = ("ret", "record", "attached", "body_ran", "result_from")


def kernel_version(release: str) -> str:
    m = re.match(r"(\d+\.\d+)", release)
    return m.group(1)


def load(path):
    return [json.loads(l) for l in open(path) if l.strip()]


def fmt(field, v):
    if field == "record" and isinstance(v, dict):
        return f"{v['count']}:{v['flags']}"
    return json.dumps(v)


def differences(observed_path):
    """-> list of dicts file,line,field,observed,model (strings), one per disagreeing field."""
    sys.path.insert(0, str(ROOT))
    from ftsim import policy, scenario

    rows = load(observed_path)
    by_file = {}
    for d in rows:
        by_file.setdefault(d["file"], []).append(d)
    out = []
    for f, obs in by_file.items():
        pol = policy.get("merged", kernel=kernel_version(obs[0]["kernel"]))
        model = {r["line"]: r for r in scenario.run(scenario.parse_file(ROOT / f), pol)}
        for d in obs:
            m = model.get(d["line"])
            if m is None:
                continue
            for field in FIELDS:
                o, mv = d.get(field), m.get(field)
                if o is None:               # not observable / not run / not reached
                    continue
                if field == "record" and isinstance(mv, dict):
                    mv = {"count": mv["count"], "flags": mv["flags"].replace("M", "")}
                if o != mv:
                    out.append({"file": f, "line": str(d["line"]), "field": field,
                                "observed": fmt(field, o), "model": fmt(field, mv)})
    return out


def main():
    path = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else \
        str(ROOT / "data/kernel/observed-6.1.0-56-amd64.jsonl")
    diffs = differences(path)
    for x in diffs:
        print(f"{x['file']}:{x['line']} {x['field']}: kernel {x['observed']} model {x['model']}")
    print(f"{len(diffs)} differences", file=sys.stderr)


if __name__ == "__main__":
    main()
