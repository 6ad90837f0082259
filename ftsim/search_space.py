"""What the explorer searches: its default consumers and functions, the actions possible from a model,
one step run as a row, and the canonical state key that merges states equal up to renaming.

``state_key`` is ``state.encode`` (handles named by role, ops sequence numbers by rank) under the
renaming of functions that is a symmetry of the policy: any permutation, or, when one ops spans
functions and is walked in address order (7.x), only those that keep the order.
"""
from __future__ import annotations

import itertools

from . import consumers as cons
from .consumers import BPF
from .functions import address_order
from .model import Model
from .policy import Policy
from .state import encode

#: The six consumer kinds explored by default: the two IPMODIFY users, the undeclared ip writer, the two
#: BPF trampoline programs (fentry-only answers SELF at once, fexit needs CALL_ORIG), a flavor #1 direct.
DEFAULT_CONSUMERS = ("livepatch", "kprobe-post", "bpf-override-return", "bpf-fentry", "bpf-fexit", "direct")
#: Functions: each allows error injection (data/kernel/functions.csv), so every consumer can attach; in
#: address order (functions.address_order) getpid < getppid < getuid.
FUNCTIONS = ("__x64_sys_getppid", "__x64_sys_getpid", "__x64_sys_getuid")
#: The issue's 3-function search (the 7.x cross-function stuck state needs it).
CROSS_CONSUMERS = ("livepatch", "kprobe-post", "fail-function", "bpf-fentry", "bpf-fexit")
ABBREV = {"livepatch": "lp", "kprobe-post": "kp", "kprobe": "kpr", "fail-function": "ff",
          "bpf-override-return": "ovr", "bpf-fentry": "fe", "bpf-fexit": "fx", "bpf-fmod-ret": "fmr",
          "bpf-fmod-ret-pass": "fmp", "direct": "dir", "ftrace-ops": "ops", "function-tracer": "ft",
          "function-graph": "fg", "kretprobe": "krp", "fprobe": "fp", "fprobe-exit": "fpx"}
PATHS = ("register", "modify_fentry", "unregister", "call")


# -- state canonicalisation ---------------------------------------------------------------------
def symmetric(pol: Policy) -> bool:
    """May functions be renamed freely?  Not when one ops spans functions and is walked in address
    order (the 7.x shared BPF direct ops: a modify scans its whole filter, SELF per record in order);
    then only renamings that keep the address order are symmetries."""
    return not pol.shared_direct_ops


def _used(k) -> list[str]:
    """The functions the kernel's state mentions anywhere."""
    out = {f for f, r in k.records.items() if r.ops or r.direct is not None or r.ipmodify or r.modified
           or r.stale_direct}
    out.update(k.klp, k.probes, k.tramps, k.zombies)
    out.update(h.func for h in k.handles.values())
    for o in list(k.kprobe_ops.values()) + list(k.shared.values()):
        out.update(o.funcs)
    return address_order(out)


def state_key(model: Model, functions: tuple[str, ...] = FUNCTIONS[:1], sym: bool | None = None) -> tuple:
    """A hashable description of the kernel (``state.encode``: handles named by role, ops sequence
    numbers by rank), the same for two kernels that differ only by a renaming of functions that is a
    symmetry of the policy (``symmetric``): any permutation, or one that keeps the address order.  The
    functions used are first packed onto the lowest names, so states on f0+f2 and f0+f1 merge."""
    k = model.kernel
    if len(functions) == 1:
        return encode(k)
    used = _used(k)
    targets = address_order(functions)[:len(used)]
    if sym is None:
        sym = symmetric(model.policy)
    if not sym or len(used) < 2:
        return encode(k, funcs=dict(zip(used, targets)))
    # order functions by a signature that names nothing; only functions that tie are permuted
    sig = {f: _signature(k, f) for f in used}
    groups = [list(g) for _, g in itertools.groupby(sorted(used, key=sig.get), key=sig.get)]
    if all(len(g) == 1 for g in groups):
        return encode(k, funcs=dict(zip((g[0] for g in groups), targets)))
    keys = [encode(k, funcs=dict(zip(itertools.chain.from_iterable(choice), targets)))
            for choice in itertools.product(*(itertools.permutations(g) for g in groups))]
    return min(keys, key=repr)         # a total order on keys that does not depend on the hash seed


def _signature(k, f: str) -> tuple:
    """What one function holds, without names: equal for functions a renaming may swap."""
    rec = k.records.get(f)
    tr = k.tramps.get(f)
    probe = k.probes.get(f)
    return (tuple(sorted((h.consumer, h.told if h.told is not None else 99, h.detached)
                         for h in k.handles.values() if h.func == f)),
            (rec.count, rec.ipmodify, rec.direct is not None, rec.modified, rec.stale_direct) if rec else (),
            len(k.klp[f][1]) if f in k.klp else -1,
            (probe[0], len(probe[1]), probe[2]) if probe else (),
            (tr.flags.value, -1 if tr.live_flags is None else tr.live_flags.value, len(tr.progs), tr.registered)
            if tr else (),
            tuple(sorted(n for n, o in k.kprobe_ops.items() if f in o.funcs)), f in k.zombies)


# -- actions --------------------------------------------------------------------------------------
def actions(model: Model, consumers, functions) -> list[tuple]:
    """Every step possible from a model: attach each consumer to each function, detach each handle
    told 0 (oldest first; detaching a refused one changes nothing), call each function."""
    acts = [("attach", c, f) for f in functions for c in consumers]
    acts += [("detach", h.name, h.func) for h in model.kernel.handles.values() if h.told == 0 and not h.detached]
    acts += [("call", None, f) for f in functions]
    return acts


def _handle_for(model: Model, consumer: str) -> str:
    base = ABBREV.get(consumer, consumer)
    name, n = base, 2
    while name in model.kernel.handles:
        name, n = f"{base}{n}", n + 1
    return name


def _path_of(model: Model, act: tuple) -> str:
    """Which kernel path a step takes (modify_fentry: a BPF program joins or leaves a live trampoline)."""
    op, who, func = act
    if op == "call":
        return "call"
    consumer = who if op == "attach" else model.kernel.handles[who].consumer
    if cons.get(consumer).mechanism == BPF:
        tr = model.kernel.tramps.get(func)
        if tr is not None and tr.live_flags is not None and (op == "attach" or len(tr.progs) > 1):
            return "modify_fentry"
    return "register" if op == "attach" else "unregister"


def apply(model: Model, act: tuple) -> dict:
    """Run one action; returns the step as a row (keys of `ftsim scenario --json`: op, consumer, function,
    handle, ret, attached, callbacks, retries, regenerations, record, violations, body_ran and
    result_from for a call; plus `path`)."""
    op, who, func = act
    path = _path_of(model, act)
    if op == "attach":
        step = model.attach(who, func, _handle_for(model, who))
    elif op == "detach":
        step = model.detach(who)
    else:
        step = model.call(func)
    d = {"op": step.op, "consumer": step.consumer, "function": step.function, "handle": step.handle,
         "ret": step.ret, "attached": step.attached, "callbacks": step.callbacks, "retries": step.retries,
         "regenerations": step.regenerations, "record": step.record, "violations": step.violations,
         "path": path, "outcome": step.outcome}
    if step.call is not None:                       # Step.as_json() (dataclasses.asdict) is 3x slower
        d["body_ran"], d["result_from"] = step.call.body_ran, step.call.result_from
    return d
