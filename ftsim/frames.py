"""Workloads as tidy tables and back: ``frame`` (one workload of the columnar arrays as a DataFrame)
and ``from_frame`` (a hand-written event table compiled for the engines).  ``ftsim.workload`` re-exports
both."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .checks import _number, bad
from .consumers import CATALOG, NAMES as CONSUMERS


def frame(arrays: dict, w: int = 0) -> pd.DataFrame:
    """Workload ``w`` of columnar arrays as the tidy event table (time, function, consumer, op, handle)."""
    if not isinstance(arrays, dict) or not {"code", "time", "func", "handle", "instances"} <= set(arrays):
        raise bad("arrays", type(arrays).__name__, "the dict of generate_arrays() or from_frame()")
    w = _number("w", w, 0, arrays["code"].shape[0] - 1, integer=True)
    I = arrays["instances"]
    code = arrays["code"][w].astype(np.int64)
    slot = np.maximum(code - 1, 0) // 2
    cons = np.array(CONSUMERS, object)[slot // I]
    op = np.where(code == 0, "call", np.where(code % 2 == 1, "attach", "detach"))
    h = arrays["handle"][w]
    return pd.DataFrame({
        "time": arrays["time"][w],
        "function": [f"f{x}" for x in arrays["func"][w]],
        "consumer": pd.Series(cons, dtype=object).where(code != 0, None),
        "op": op,
        "handle": pd.Series([None if x < 0 else f"h{x}" for x in h], dtype=object),
    })


def from_frame(df: pd.DataFrame, instances: int = 1) -> dict:
    """Compile a tidy event table (one workload) into columnar arrays for the engines.

    Functions are named ``f<N>``; a detach must name a handle attached earlier and not detached yet;
    an attach finding all ``instances`` of its consumer live on its function is an error."""
    need = ["time", "function", "consumer", "op", "handle"]
    if not isinstance(df, pd.DataFrame) or list(map(str, df.columns[:5])) != need:
        raise bad("workload columns", list(df.columns) if isinstance(df, pd.DataFrame) else type(df).__name__, need)
    instances = _number("instances", instances, 1, 3, integer=True)
    live, used, rows = {}, {}, []
    names = {}
    for t, fn, c, op, h in df[need].itertuples(index=False):
        if not (isinstance(fn, str) and fn[:1] == "f" and fn[1:].isascii() and fn[1:].isdigit()
                and len(fn) <= 5 and int(fn[1:]) < 4096):
            raise bad("function", fn, "a name f0, f1, ..., f4095")
        f = int(fn[1:])
        t = _number("time", t, -1e300, 1e300)
        if op == "call":
            rows.append((t, f, 0, -1))
            continue
        if op == "attach" or op == "detach":
            if not isinstance(h, str) or not h:
                raise bad(f"{op} handle", h, "a name (a non-empty string)")
        if op == "attach":
            ci = CONSUMERS.index(CATALOG[c].name) if isinstance(c, str) and c in CATALOG else None
            if ci is None:
                raise bad("consumer", c, CONSUMERS)
            if h in names:
                raise bad("handle", h, "a name not used before in this workload")
            taken = used.setdefault((f, ci), set())
            free = [i for i in range(instances) if i not in taken]
            if not free:
                raise bad("attach", h, f"at most {instances} live {c} on {fn}")
            taken.add(free[0])
            names[h] = len(names)
            live[h] = (f, ci, free[0])
            rows.append((t, f, 1 + 2 * (ci * instances + free[0]), names[h]))
        elif op == "detach":
            if h not in live:
                raise bad("detach handle", h, (sorted(live)[:8] + ["..."] if len(live) > 8 else sorted(live))
                          or "no live handle")
            f2, ci, i = live.pop(h)
            used[(f2, ci)].discard(i)
            rows.append((t, f2, 2 + 2 * (ci * instances + i), names[h]))
        else:
            raise bad("op", op, ("attach", "detach", "call"))
    a = np.array(rows, dtype=float).reshape(-1, 4)
    F = int(a[:, 1].max()) + 1 if len(a) else 1
    return {"time": a[None, :, 0], "func": a[None, :, 1].astype(np.int16), "code": a[None, :, 2].astype(np.int16),
            "handle": a[None, :, 3].astype(np.int32), "instances": instances, "functions": F}
