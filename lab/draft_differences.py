#!/usr/bin/env python3
"""Draft data/kernel/known-differences.csv: for every difference between the observations and the model,
the lab-limitation category (ftsim.observed.LIMITATIONS) whose evidence the observation shows, if one does.
Differences no category covers are NOT written: they are the model's, and the agreement test fails on them.

    .venv/bin/python lab/draft_differences.py > data/kernel/known-differences.csv    # every observed kernel

The category is the first that ftsim.observed._holds() confirms -- the same check explain() makes on every
committed row (for not-built, not-in-btf and one-module: the model, run without the steps the lab could not
run, gives the kernel's value), so a row can never explain more than its category allows.  Check the draft
by hand before committing it (a crash-point row in particular: is the difference really the crash's?).
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ftsim import observed  # noqa: E402


def main():
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow([*observed.KEY, "category"])
    for path in observed.paths():
        for d in observed.categorize(path):
            if d["category"]:
                w.writerow([d[k] for k in observed.KEY] + [d["category"]])


if __name__ == "__main__":
    main()
