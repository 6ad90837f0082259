#!/usr/bin/env python3
"""Compare the kernel lab's observations with the model's `merged` policy at the observed kernel version.

    .venv/bin/python lab/compare.py [data/kernel/observed-6.1.0-56-amd64.jsonl]   # prints the differences

The comparison is ftsim.observed.differences() (also used by tests/test_kernel_agreement.py), and to draft
data/kernel/known-differences.csv (`--csv`: rows with the reason guessed by `reason()`, to be checked by hand).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ftsim.observed import ROOT, differences, load  # noqa: E402,F401  (the comparison lives in the package)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else \
        str(ROOT / "data/kernel/observed-6.1.0-56-amd64.jsonl")
    diffs = differences(path)
    for x in diffs:
        print(f"{x['file']}:{x['line']} {x['field']}: kernel {x['observed']} model {x['model']}")
    print(f"{len(diffs)} differences", file=sys.stderr)


if __name__ == "__main__":
    main()
