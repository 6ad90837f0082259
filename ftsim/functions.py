"""Kernel functions the kit knows by name (data/kernel/functions.csv).

Functions not listed (the synthetic f0, f1, ... of workloads) are assumed to allow error injection, so
every consumer in the catalog can attach to them.
"""
from __future__ import annotations

import csv
from functools import lru_cache
from .paths import DATA


@lru_cache(maxsize=1)
def known() -> dict[str, dict]:
    with open(DATA / "kernel" / "functions.csv", newline="") as f:
        return {row["function"]: row for row in csv.DictReader(f)}


def is_injectable(func: str) -> bool:
    """On the ALLOW_ERROR_INJECTION list (within_error_injection_list())?"""
    row = known().get(func)
    return row is None or row["error_injection"] == "yes"
