"""Contexts as phantoms: what other functions contribute to a one-function state of the batch engine
(the shared kprobe ops' counts elsewhere, another function's dangerous trampoline in the 7.x shared
direct ops), recreated in the one-function model before an event runs; and ``canonicalise``, which drops
them again with everything else no later step reads.  See ``ftsim.transitions``."""
from __future__ import annotations

from . import kprobes, state as kstate
from .consumers import CATALOG
from .flags import OpsFlag, TrampFlag
from .model import Model
from .state import Ops, Prog, Trampoline

F, ZK, BEFORE, AFTER = "f", "zk", "e", "g"


def _kheld(k, name: str) -> int:
    """0: f is not in the shared kprobe ops' filter; 1: it is and the ops is registered; 2: it is, the
    ops is not (a probe armed after a negative count)."""
    ops = k.kprobe_ops.get(name)
    if ops is None or F not in ops.funcs:
        return 0
    return 1 if ops.enabled else 2


def _install_kprobe(k, name: str, kctx: int):
    """The shared kprobe ops ``name`` seen from elsewhere (see the module docstring): a negative count on
    an unregistered ops, or a phantom holder ``zk`` counted once or twice whose registration is newer
    than f's klp_ops when bit 0 of (kctx - 1) % 4 is set, newer than f's trampoline ops when bit 1;
    14: f's probe holds the registered ops alone, other functions' ips are in its filter without a count
    (left by a failed disarm), so f's disarm unregisters it over them (the engine's ``unreg`` map)."""
    ops = kprobes.shared_ops(k, name)
    own = int(F in ops.funcs)
    if kctx == 14:                                # registered by f's probe; others hold filter ips, no count
        ops.funcs.add(ZK)
        return
    if kctx >= 9:                                 # not registered; others: -1, 1, 2 counts, or 0
        ops.enabled = False
        ops.funcs = ({F} if own else set()) | ({ZK} if kctx >= 10 else set())
        k.kprobe_cnt[name] = own + {9: -1, 10: 1, 11: 2, 12: 0, 13: 0}[kctx]
        return
    n = 1 if kctx <= 4 else 2
    if F in ops.funcs:
        k.kprobe_cnt[name] += n
        return
    ops.enabled, ops.funcs, k.kprobe_cnt[name] = True, {ZK}, n
    klp = k.klp.get(F)
    tr = k.tramps.get(F)
    marks, bits = [], (kctx - 1) % 4
    if klp is not None:
        marks.append((klp[0].seq, bits & 1))
    if tr is not None and tr.ops.enabled and not k.policy.shared_direct_ops:   # as the ``trg`` column
        marks.append((tr.ops.seq, bits & 2))
    lo = max([s for s, newer in marks if newer], default=-1)
    hi = min([s for s, newer in marks if not newer], default=lo + 2)
    ops.seq = (lo + hi) / 2


def _install_danger(k, dctx: int):
    """Another function's trampoline is dangerous: phantom ``e`` (before f) or ``g`` (after f) with an
    IPMODIFY record and a CALL_ORIG trampoline in the shared direct ops; SHARE set for dctx 2 and 4."""
    from .bpf import SHARED, _trampoline
    func = BEFORE if dctx >= 3 else AFTER
    tr = _trampoline(k, func)
    prog = Prog(f"phantom#{func}", "fexit", False)
    tr.progs, tr.live_progs = [prog], [prog]
    tr.flags = TrampFlag.CALL_ORIG | TrampFlag.SKIP_FRAME | (TrampFlag.SHARE_IPMODIFY if dctx % 2 == 0 else TrampFlag.NONE)
    tr.live_flags, tr.registered = tr.flags, True
    shared = k.shared[SHARED]
    if not shared.funcs:
        shared.enabled, shared.seq = True, 0
    shared.funcs.add(func)
    rec = k.record(func)
    ipm = Ops(f"phantom_ipmodify:{func}", "list", OpsFlag.IPMODIFY, enabled=True, funcs={func})
    rec.ops[:] = [ipm, shared]
    rec.ipmodify, rec.direct = True, shared


def _phantom_tramp(k) -> Trampoline | None:
    return k.tramps.get(AFTER) or k.tramps.get(BEFORE)


def canonicalise(m: Model, refused_detach: str | None):
    """Drop finished handles and the phantoms; shared ops held by ``f`` alone or unregistered."""
    k = m.kernel
    used = kstate.referenced(k)
    for name in [n for n, h in k.handles.items() if n not in used and (
            (h.detached and h.told == 0) or n == refused_detach)]:
        del k.handles[name]
    gone = [n for n, h in k.handles.items() if h.detached and h.told == 0 and "~" not in n]
    for i, name in enumerate(gone):          # detached, still named by a zombie: free its instance name
        _rename(k, name, f"{name}~{sum('~' in n for n in k.handles) + i}")
    entry = k.probes.get(F)
    for name, ops in k.kprobe_ops.items():
        ops.funcs.discard(ZK)                     # the count is f's own; others come as context
        if F in ops.funcs:
            k.kprobe_cnt[name] = 1
        else:
            ops.enabled, ops.funcs, k.kprobe_cnt[name], ops.seq = False, set(), 0, -1
    for func in (ZK, BEFORE, AFTER):
        k.records.pop(func, None)
        k.tramps.pop(func, None)
    for ops in k.shared.values():
        ops.funcs &= {F}
        if not ops.funcs and not ops.zombie:
            ops.enabled = False
    m.steps = 0
    # orders nothing reported depends on: non-overriding kprobe members, livepatch instances (the
    # result names the consumer), BPF programs other than skipping fmod_ret (first one wins)
    if entry is not None:
        ov = [h for h in entry[1] if CATALOG[k.handles[h].consumer].overrides]
        entry[1][:] = ov + sorted(h for h in entry[1] if h not in ov)
    if F in k.klp:
        k.klp[F][1].sort()
    tr = k.tramps.get(F)
    if tr is not None:
        tr.progs = _prog_order(tr.progs)
        tr.live_progs = _prog_order(tr.live_progs)


def _rename(k, old: str, new: str):
    h = k.handles.pop(old)
    h.name = new
    k.handles[new] = h
    for f, (on, members, post) in list(k.probes.items()):
        k.probes[f] = (on, [new if x == old else x for x in members], post)
    for f, (o, stack) in list(k.klp.items()):
        k.klp[f] = (o, [new if x == old else x for x in stack])
    for tr in k.tramps.values():
        for p in tr.progs + tr.live_progs:
            if p.handle == old:
                p.handle = new
    if old in k.unarmed:
        k.unarmed.discard(old)
        k.unarmed.add(new)


def _prog_order(progs):
    skip = [p for p in progs if p.skips]
    return skip + sorted((p for p in progs if not p.skips), key=lambda p: (p.kind, p.handle, p.multi))
