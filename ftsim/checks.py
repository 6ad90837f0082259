"""Checked input: a value shown safely in a one-line error, and numbers validated by type and range
(integers are ``int`` or numpy integers, never ``bool`` or float; reals finite)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import FtsimError, bad as _bad


class shown:
    """A value as an error message shows it: one line, at most 80 characters, never a 5,000-digit
    integer (``repr`` of a huge int raises) nor a multi-line ``repr``."""

    def __init__(self, v):
        self.v = v

    def __repr__(self):
        v = self.v
        if isinstance(v, numbers.Integral) and not isinstance(v, bool) and abs(int(v)).bit_length() > 64:
            return f"<an integer of {abs(int(v)).bit_length()} bits>"
        try:
            r = repr(v)
        except Exception:               # noqa: BLE001 - a repr that fails is still shown
            r = f"<{type(v).__name__}>"
        r = " ".join(r.split())
        return r if len(r) <= 80 else r[:77] + "..."


def bad(field, value, allowed) -> FtsimError:
    """``errors.bad`` with the value shown safely (see ``shown``)."""
    return _bad(field, value if isinstance(value, shown) else shown(value), allowed)


def _number(field, v, lo, hi, integer=False, lo_open=False):
    """``v`` validated: an integer (``int`` or a numpy integer; not ``bool``, not a float) or a finite
    real number in the range; returns it as ``int`` or ``float``."""
    ok = isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
    if ok and integer:
        ok = isinstance(v, numbers.Integral) and lo <= int(v) <= hi
        if ok:
            return int(v)
    elif ok:
        try:
            f = float(v)
        except (OverflowError, ValueError, TypeError):
            f = math.nan
        ok = math.isfinite(f) and (f > lo if lo_open else f >= lo) and f <= hi
        if ok:
            return f
    kind = "an integer" if integer else "a number"
    raise bad(field, v, f"{kind} in {'(' if lo_open else '['}{_bound(lo)}, {_bound(hi)}]")


def _bound(x) -> str:
    if isinstance(x, int):
        return "2**63 - 1" if x == 2**63 - 1 else f"{x:,}" if abs(x) < 10**9 else f"{x:.3g}"
    return f"{x:g}"
