#!/usr/bin/env python3
"""The agreement of the kernel lab's observations with the model's `merged` policy at the observed kernel's
version (ftsim.observed: the comparison, the lab-limitation categories and the one definition of an
explained difference; tests/test_kernel_agreement.py uses the same).

    .venv/bin/python lab/compare.py [--summary] [OBSERVED.jsonl ...]    (default: every data/kernel/observed-*)

Prints, per kernel: fields compared, agreeing, explained by each lab limitation, and every difference of
the model's (file:line field: kernel X, model Y).  --summary: the counts and at most 20 differences.
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ftsim import observed  # noqa: E402


def report(path, limit=None) -> int:
    rel = observed.release_of(path)
    cmp_ = observed.compared(path)
    ex = observed.explain(path)
    cats = Counter(d["category"] for d in ex if d["category"])
    model = [d for d in ex if d["category"] is None]
    agree = sum(d["agree"] for d in cmp_)
    lim = ", ".join(f"{c} {n}" for c, n in sorted(cats.items())) or "none"
    print(f"agreement {rel} (merged at {observed.kernel_version(rel)}): {len(cmp_)} fields compared, {agree} agree, "
          f"lab limitations: {lim}; model differences: {len(model)}")
    for d in model[:limit]:
        print(f"  {d['file']}:{d['line']} {d['field']}: kernel {d['observed']}, model {d['model']}")
    if limit is not None and len(model) > limit:
        print(f"  ... and {len(model) - limit} more (lab/compare.py {path})")
    return len(model)


def main(argv):
    summary = "--summary" in argv
    files = [a for a in argv if not a.startswith("--")] or [str(p) for p in observed.paths()]
    for f in files:
        report(f, 20 if summary else None)


if __name__ == "__main__":
    main(sys.argv[1:])
