"""The batch engine's tables as plain arrays, for ``ftsim.cache`` (no pickle anywhere).

``to_arrays(tb)`` gives numeric numpy arrays plus one ``uint8`` array holding a JSON document with the
Python-level parts (the canonical states, which are nested tuples of ints, strings, booleans and None;
the policies as their fields; the per-state final summaries; the cross-function maps).
``from_arrays(arrays)`` rebuilds the tables and refuses (ValueError) anything inconsistent: wrong
dtypes or shapes, ids out of range, a policy field that does not exist.
"""
from __future__ import annotations

import json
from dataclasses import fields

import numpy as np

FORMAT = 1
#: numeric members: name -> dtype they must have (``rec`` is checked against transitions.REC)
NUMERIC = {"st": np.int16, "killmap": np.int32, "pokemap": np.int32, "keymap": np.int32, "ctxn": np.int8,
           "ctxtids": np.int32, "next": np.int32, "aux": np.int8, "touch": np.bool_}
META = "tables_json"


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


def to_arrays(tb) -> dict[str, np.ndarray]:
    from .policy import Policy
    pols = [{f.name: (list(getattr(p, f.name)) if isinstance(getattr(p, f.name), tuple) else getattr(p, f.name))
             for f in fields(Policy)} for p in tb.policies]
    doc = {"format": FORMAT, "instances": tb.I, "snap": tb.snap, "pol": tb.pol, "policies": pols,
           "init": [[tb.policies.index(p), sid] for p, sid in tb.init.items()],
           "final": [[sorted(att), v] for att, v in tb.final],
           "xmaps": [[kind, slot, [[sid, list(v)] for sid, v in table.items()]]
                     for (kind, slot), table in tb.xmaps.items()],
           "ntid": tb.ntid, "nblocks": tb.nblocks, "transitions": tb.transitions}
    out = {name: np.ascontiguousarray(getattr(tb, name)) for name in NUMERIC}
    out["rec"] = np.ascontiguousarray(tb.rec)
    out[META] = np.frombuffer(json.dumps(doc, separators=(",", ":")).encode(), np.uint8)
    return out


def from_arrays(cls, arrays: dict):
    """Tables of class ``cls`` (``transitions.Tables``, whose REC, AUX, ST describe its arrays)."""
    from .policy import Policy
    AUX, REC, ST, Tables = cls.AUX, cls.REC, cls.ST, cls
    doc = json.loads(bytes(np.asarray(arrays[META], np.uint8)).decode())
    if doc.get("format") != FORMAT:
        raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT}")
    tb = Tables(int(doc["instances"]))
    for name, dtype in NUMERIC.items():
        a = np.asarray(arrays[name])
        if a.dtype != dtype:
            raise ValueError(f"{name}: dtype {a.dtype}, expected {np.dtype(dtype)}")
        setattr(tb, name, a.copy())
    rec = np.asarray(arrays["rec"])
    if rec.dtype != REC:
        raise ValueError(f"rec: dtype {rec.dtype}, expected {REC}")
    tb.rec = rec.copy()
    names = {f.name for f in fields(Policy)}
    tb.policies = []
    for d in doc["policies"]:
        if set(d) != names:
            raise ValueError(f"a policy with fields {sorted(set(d) ^ names)} differing from this model's")
        tb.policies.append(Policy(**{k: _tuples(v) if isinstance(v, list) else v for k, v in d.items()}))
    tb.snap = [_tuples(s) for s in doc["snap"]]
    tb.pol = [int(x) for x in doc["pol"]]
    tb.index = {(p, s): i for i, (p, s) in enumerate(zip(tb.pol, tb.snap))}
    tb.init = {tb.policies[p]: int(sid) for p, sid in doc["init"]}
    tb.final = [(frozenset(att), int(v)) for att, v in doc["final"]]
    tb.xmaps = {(kind, int(slot)): {int(sid): tuple(int(x) for x in v) for sid, v in table}
                for kind, slot, table in doc["xmaps"]}
    tb.ntid, tb.nblocks, tb.transitions = int(doc["ntid"]), int(doc["nblocks"]), int(doc["transitions"])
    n, cap = len(tb.snap), tb.st.shape[1] if tb.st.ndim == 2 else -1
    checks = [
        (tb.st.ndim == 2 and tb.st.shape[0] == len(ST) and cap >= n, "st shape"),
        (len(tb.pol) == n == len(tb.final) and all(0 <= p < len(tb.policies) for p in tb.pol), "state policies"),
        (tb.killmap.size == tb.pokemap.size == cap, "kill/poke maps"),
        (tb.keymap.size == tb.ctxn.size == cap * tb.NCODE, "keymap size"),
        (tb.next.size == tb.rec.size == tb.touch.size >= tb.ntid and tb.aux.shape == (len(AUX), tb.next.size),
         "transition arrays"),
        (tb.ctxtids.size >= tb.nblocks, "context blocks"),
        (bool(((tb.next[:tb.ntid] >= 0) & (tb.next[:tb.ntid] < n)).all()), "next states"),
        (bool((tb.keymap < tb.ntid).all() and (tb.keymap >= -2 - tb.nblocks).all()), "keymap ids"),
        (bool((tb.ctxtids[:tb.nblocks] < tb.ntid).all()), "context tids"),
        (all(0 <= s < n for s in tb.init.values()), "initial states"),
        (all(0 <= s < n and 0 <= v[0] < n for t in tb.xmaps.values() for s, v in t.items()), "cross maps"),
        (bool((tb.killmap[:n] < n).all() and (tb.pokemap[:n] < n).all()), "kill/poke targets"),
    ]
    for ok, what in checks:
        if not ok:
            raise ValueError(f"inconsistent tables: {what}")
    return tb
