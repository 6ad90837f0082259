"""What happens when the function is called: handler order, ip arbitration, trampolines, return values.

Rules (kernel-facts.md section 3): a record with one ops calls it from the call site (a direct
trampoline directly); with more, arch_ftrace_ops_list_func() walks ftrace_ops_list newest first and
runs each ops' func, so among handlers that write regs->ip the oldest wins; an ops whose func was
cleared stops the walk (FTRACE_WARN_ON: ftrace is killed, later ops never run); an ops whose memory
was freed while registered oopses the kernel; a kprobe restores the ip it saw unless a pre_handler
returned 1; the direct trampoline runs after the list handlers if call_direct_funcs() ran;
CALL_ORIG without ORIG_STACK calls the original body; fmod_ret returning non-zero skips the body.

Handlers are chosen by the ops' kind, as the list walk calls ``op->func``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import ftrace, livepatch
from .consumers import CATALOG
from .flags import TrampFlag
from .state import Kernel, Ops

ORIG, NEW = "orig", "new"
LIST_WARN = "kernel/trace/ftrace.c:__ftrace_ops_list_func"


@dataclass
class CallOutcome:
    body_ran: str = ORIG                  # orig | new | none
    result_from: str = ORIG               # orig, a livepatch handle, or the handle that forced the value
    fired: list[str] = field(default_factory=list)
    attributed_to: dict[str, str] = field(default_factory=dict)
    ip_seen: dict[str, str] = field(default_factory=dict)
    return_seen: dict[str, str] = field(default_factory=dict)
    ip_writes: list[tuple[str, str]] = field(default_factory=list)   # (handle, target) in call order
    list_target: str = ORIG               # regs->ip after the list handlers
    target: str = ORIG                    # where execution actually continued
    null_func: bool = False               # the walk met an ops with no func (FTRACE_WARN_ON, ftrace_kill)
    oops: str | None = None               # the walk reached freed memory


class _Walk:
    """One call's state while handlers run."""

    def __init__(self, k: Kernel, func: str):
        self.k, self.func, self.out = k, func, CallOutcome()
        self.ip = ORIG
        self.hooks: list[str] = []
        self.direct: Ops | None = None
        self.owner = {h.ops.name: h.name for h in k.live_on(func).values() if h.ops is not None}

    def fire(self, h: str, seen: str):
        self.out.fired.append(h)
        self.out.attributed_to[h] = self.func      # entry observers report the original function
        self.out.ip_seen[h] = seen


def _klp(w: _Walk, ops: Ops):
    """klp_ftrace_handler(): jump to the newest patch on func_stack."""
    h = livepatch.active(w.k, w.func)
    if h is None:
        return
    w.fire(h, w.ip)
    w.ip = NEW
    w.out.ip_writes.append((h, NEW))


def _kprobe(w: _Walk, ops: Ops):
    """kprobe_ftrace_handler(): remember the ip, run the aggregate's pre_handlers (newest first, stop at
    one that returns 1), restore the ip unless one did."""
    entry = w.k.probes.get(w.func)
    if entry is None or w.k.kprobe_ops[entry[0]] is not ops:
        return
    if w.func in w.k.zombies:
        w.out.oops = "kernel/kprobes.c:aggr_pre_handler (the probe's module is gone; its handlers are freed)"
        return
    saved = w.ip
    for h in entry[1]:
        c = CATALOG[w.k.handles[h].consumer]
        w.fire(h, ORIG)                             # the pre_handler sees the probe address
        if c.return_hook:
            w.hooks.append(h)
        if c.overrides:
            w.ip = f"stub:{h}"
            w.out.ip_writes.append((h, w.ip))
            return
    w.ip = saved


def _passive(w: _Walk, ops: Ops):
    """A list ops of its own (its handle fires) or a shared one (every holder on this function fires)."""
    holders = [h.name for h in w.k.live_on(w.func).values() if h.ops is ops]
    for h in holders:
        w.fire(h, w.ip)
        if CATALOG[w.k.handles[h].consumer].return_hook:
            w.hooks.append(h)


def _direct(w: _Walk, ops: Ops):
    """call_direct_funcs(): the direct trampoline is entered after the list function returns.  Only the
    record's direct_functions entry is called (naive lets two direct ops in: the newest holds it)."""
    rec = w.k.records[w.func]
    if rec.direct is ops or (w.direct is None and rec.direct is None):
        w.direct = ops


HANDLERS = {"klp": _klp, "kprobe": _kprobe, "list": _passive, "shared": _passive, "bpf": _direct,
            "direct": _direct}


def simulate(k: Kernel, func: str) -> CallOutcome:
    """One call of ``func``, computed without changing the kernel (``apply`` commits its effects)."""
    w = _Walk(k, func)
    rec = k.records.get(func)
    if rec is None or not rec.ops or k.oops:
        return w.out
    out = w.out
    if len(rec.ops) == 1:
        ops = rec.ops[0]                            # one ops: called from the call site
        if ops.zombie:
            out.oops = "kernel/trace/ftrace.c (the call site calls an ops whose memory was freed)"
            return out
        HANDLERS[ops.kind](w, ops)
    else:
        for ops in sorted(rec.ops, key=lambda o: -o.seq):  # arch_ftrace_ops_list_func(): newest first
            if ops.zombie:
                out.oops = LIST_WARN + " (an ops whose memory was freed while registered)"
                return out
            if not ops.has_func:
                out.null_func = True                # FTRACE_WARN_ON(!op->func): goto out
                break
            HANDLERS[ops.kind](w, ops)
            if out.oops:
                return out
    out.list_target = target = w.ip
    skipped_by = None
    tr = None
    if w.direct is not None:
        if w.direct.kind == "direct":
            h = w.owner.get(w.direct.name)
            if h is not None:
                w.fire(h, w.ip)                     # a plain direct trampoline returns into regs->ip
        else:
            tr = k.tramps.get(func)
            if tr is None or tr.live_flags is None:
                out.oops = "kernel/bpf/trampoline.c (the trampoline image was freed while ftrace still calls it)"
                return out
            calls = TrampFlag.CALL_ORIG in tr.live_flags
            if calls and TrampFlag.ORIG_STACK not in tr.live_flags:
                target = ORIG                       # calls func+5: whatever the list chose is ignored
            for p in tr.live_progs:
                if p.kind in ("fentry", "fsession"):
                    w.fire(p.handle, target)
            if calls:
                for p in tr.live_progs:
                    if p.kind == "fmod_ret":
                        w.fire(p.handle, target)
                        if p.skips:
                            skipped_by = p.handle
                            break
    out.target = target
    if skipped_by is not None:
        out.body_ran, out.result_from = "none", skipped_by
    elif target == ORIG:
        out.body_ran, out.result_from = ORIG, ORIG
    elif target == NEW:
        out.body_ran, out.result_from = NEW, livepatch.active(k, func) or ORIG
    else:
        out.body_ran, out.result_from = "none", target.split(":", 1)[1]
    value = out.result_from if out.body_ran == "none" else out.body_ran
    if tr is not None and TrampFlag.CALL_ORIG in tr.live_flags:
        for p in tr.live_progs:
            if p.kind in ("fexit", "fsession"):
                w.fire(p.handle, target)
                out.return_seen[p.handle] = value
    for h in w.hooks:
        out.return_seen[h] = value                 # return hooks see what actually returned
    return out


def apply(k: Kernel, func: str, ctx) -> CallOutcome:
    """A real call: simulate, then commit what the call did to the kernel (a killed ftrace, an oops)."""
    out = simulate(k, func)
    if out.oops:
        ftrace.oops(k, ctx, out.oops)
    elif out.null_func:
        ftrace.ftrace_kill(k, ctx, LIST_WARN)
    return out
