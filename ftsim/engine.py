"""The reference engine: replay each workload event by event through the core ``Model``.

``run(arrays, policy)`` returns the per-event results (``RESULT_FIELDS``, arrays of shape
(workloads, events)) that the batch engine (``ftsim.batch``) must reproduce exactly:

  * ``ret``, ``attached`` (-1 for a call), ``callbacks``, ``retries``, ``regenerations`` of the step;
  * ``viol``: bitmask of the invariants broken after the step (bit i = ``INVARIANT_NAMES[i]``);
  * ``lp``: the function has a live livepatch told 0; ``wr``: it has a live mutating consumer told 0;
  * ``body`` (0 orig, 1 new, 2 none; -2 a call that did not run) and ``src`` (0 orig, 1 + consumer
    index of the handle the result came from) of a call, -1 for attach and detach;
  * after a kernel oops nothing runs: ``ret`` is ``NOTRUN`` (-1 for a call) and the rest 0 or -1;
  * ``final``: per function, the attached handles (passive list consumers aside: they always attach)
    and the broken invariants at the end (for order sensitivity).

A call changes nothing unless it kills ftrace or oopses, so its outcome is kept per function until the
next attach or detach there (``memo_calls``; off, every call goes through ``Model.call``); a call that
changes the kernel's health clears the memo.
"""
from __future__ import annotations

import numpy as np

from .consumers import CATALOG, KLP, LIST, NAMES as CONSUMERS
from .invariants import INVARIANTS, check
from .model import Model, Step
from .policy import Policy

INVARIANT_NAMES = tuple(INVARIANTS)
BIT = {n: 1 << i for i, n in enumerate(INVARIANT_NAMES)}
RESULT_FIELDS = ("ret", "attached", "callbacks", "retries", "regenerations", "viol", "lp", "wr", "body", "src")
BODY = {"orig": 0, "new": 1, "none": 2}
CONS_INDEX = {c: i for i, c in enumerate(CONSUMERS)}
#: ``ret`` of an attach or detach that did not run (the kernel oopsed before it)
NOTRUN = -30000


def viol_bits(names) -> int:
    b = 0
    for n in names:
        b |= BIT[n]
    return b


def src_code(model: Model, result_from: str) -> int:
    if result_from == "orig":
        return 0
    return 1 + CONS_INDEX[model.kernel.handles[result_from].consumer]


def live_flags(model: Model, func: str) -> tuple[int, int]:
    if model.kernel.oops:
        return 0, 0
    live = model.kernel.live_on(func).values()
    lp = any(CATALOG[h.consumer].mechanism == KLP for h in live)
    wr = any(CATALOG[h.consumer].mutates for h in live)
    return int(lp), int(wr)


def decode(code: int, instances: int) -> tuple[str, str | None, int]:
    """(op, consumer, instance) of an event code."""
    if code == 0:
        return "call", None, -1
    slot = (code - 1) // 2
    return ("attach" if code % 2 else "detach"), CONSUMERS[slot // instances], slot % instances


#: the results of a call, and of an attach or detach, that did not run (the kernel oopsed before)
NOT_RUN_CALL = (-1, -1, 0, 0, 0, 0, 0, 0, -2, -1)
NOT_RUN_STEP = (NOTRUN, 0, 0, 0, 0, 0, 0, 0, -1, -1)


def step_result(m: Model, st: Step) -> tuple:
    """The ``RESULT_FIELDS`` of one step (both engines build their records here)."""
    if st.op == "call":
        if st.call is None:                         # not run: the kernel oopsed before
            return NOT_RUN_CALL
        return (-1, -1, st.callbacks, st.retries, st.regenerations, viol_bits(st.violations),
                *live_flags(m, st.function), BODY[st.call.body_ran], src_code(m, st.call.result_from))
    if st.ret is None:
        if not st.warns:                            # not run
            return NOT_RUN_STEP
        return (NOTRUN, 0, st.callbacks, st.retries, st.regenerations, viol_bits(st.violations),
                *live_flags(m, st.function), -1, -1)
    return (st.ret, int(bool(st.attached)), st.callbacks, st.retries, st.regenerations,
            viol_bits(st.violations), *live_flags(m, st.function), -1, -1)


def _health(m: Model) -> tuple:
    """What the kernel-wide invariants read (FtraceAlive, RefCountNonNegative, an oops)."""
    k = m.kernel
    return k.dead, k.oops, any(c < 0 for c in k.kprobe_cnt.values())


def run_one(policy: Policy, func, code, handle, instances: int, memo_calls: bool = True):
    """One workload (1-d arrays) under one policy: dict field -> 1-d array, plus ``final``."""
    m = Model(policy)
    T = len(code)
    out = {k: np.zeros(T, np.int32) for k in RESULT_FIELDS}
    memo: dict[str, tuple] = {}
    touched = set()
    for t in range(T):
        f = f"f{int(func[t])}"
        op, consumer, _ = decode(int(code[t]), instances)
        health = _health(m)
        if op == "call":
            r = memo.get(f) if memo_calls else None
            if r is None:
                r = step_result(m, m.call(f))
                if not m.last_ctx.warns:
                    memo[f] = r
        else:
            touched.add(f)
            memo.pop(f, None)
            h = f"h{int(handle[t])}"
            r = step_result(m, m.attach(consumer, f, h) if op == "attach" else m.detach(h))
        if _health(m) != health or m.last_ctx.irregular:   # another function may have changed: every
            memo.clear()                                     # memo is stale
        for k, v in zip(RESULT_FIELDS, r):
            out[k][t] = v
        if m.kernel.oops:                     # nothing runs after an oops: the rest of the row at once
            rest = np.asarray(code[t + 1:]) == 0
            for k, vc, va in zip(RESULT_FIELDS, NOT_RUN_CALL, NOT_RUN_STEP):
                out[k][t + 1:] = np.where(rest, vc, va)
            break
    out["final"] = final_state(m, touched)
    return out


def final_state(m: Model, funcs) -> frozenset:
    """What is attached where at the end, and which invariants are broken there."""
    items = set()
    for f in funcs:
        att = frozenset((m.kernel.handles[h].consumer, h) for h in m.kernel.live_on(f)
                        if m.attached(h) and CATALOG[m.kernel.handles[h].consumer].mechanism != LIST)
        bits = viol_bits(check(m, f))
        if att or bits:
            items.add((f, att, bits))
    return frozenset(items)


def run(arrays: dict, policy: Policy, memo_calls: bool = True, variant: dict | None = None) -> dict:
    """Every workload of ``arrays`` under ``policy``: dict field -> (workloads, events) array, plus
    ``order_changed`` (workloads,) when ``variant`` (the same workloads, events reordered) is given."""
    W, T = arrays["code"].shape
    I = arrays["instances"]
    res = {k: np.zeros((W, T), np.int32) for k in RESULT_FIELDS}
    finals = []
    for w in range(W):
        one = run_one(policy, arrays["func"][w], arrays["code"][w], arrays["handle"][w], I, memo_calls)
        for k in RESULT_FIELDS:
            res[k][w] = one[k]
        finals.append(one["final"])
    if variant is not None:
        changed = np.zeros(W, bool)
        for w in range(W):
            other = run_one(policy, variant["func"][w], variant["code"][w], variant["handle"][w], I, memo_calls)
            changed[w] = other["final"] != finals[w]
        res["order_changed"] = changed
    return res
