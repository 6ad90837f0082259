"""Kernel functions the kit knows by name (data/kernel/functions.csv), and the facts the rules read
about a function: error injection, fmod_ret, address order.

Functions not listed (the synthetic f0, f1, ... of workloads) are assumed to allow error injection, so
every consumer in the catalog can attach to them.
"""
from __future__ import annotations

import csv
import re
from functools import lru_cache

from .paths import DATA


@lru_cache(maxsize=1)
def known() -> dict[str, dict]:
    with open(DATA / "kernel" / "functions.csv", newline="") as f:
        return {row["function"]: row for row in csv.DictReader(f)}


def is_injectable(func: str) -> bool:
    """On the ALLOW_ERROR_INJECTION list (within_error_injection_list())?  A function not in
    data/kernel/functions.csv is, except an LSM hook: security/security.c marks none (6.1.192, 6.12.117,
    7.2.13, 7.3-rc7; fail_function answers -ERANGE there, bpf_override_return -EINVAL, as the lab saw)."""
    row = known().get(func)
    if row is None:
        return not func.startswith("security_")
    return row["error_injection"] == "yes"


def fmod_ret_allowed(func: str, injectable=is_injectable) -> bool:
    """May a BPF fmod_ret program attach?  On the error-injection list, or an LSM hook named
    ``security_*`` (kernel/bpf/verifier.c check_attach_modify_return())."""
    return injectable(func) or func.startswith("security_")


_NUM = re.compile(r"(\d+)")


@lru_cache(maxsize=4096)
def address_key(func: str) -> tuple:
    """The model's stand-in for a function's address: names in natural order (f2 before f10).  ftrace
    walks its records in address order (do_for_each_ftrace_rec); only the order matters."""
    return tuple(int(p) if p.isdigit() else p for p in _NUM.split(func))


def address_order(funcs) -> list[str]:
    return sorted(funcs, key=address_key)
