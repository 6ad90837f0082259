"""What happens when the function is called: handler order, ip arbitration, trampolines, return values.

Rules (kernel-facts.md section 3): the list walk runs the newest ops first, so among handlers that
write regs->ip the oldest wins; a kprobe restores the ip it saw unless a pre_handler returned 1; the
direct trampoline runs after the list handlers; CALL_ORIG without ORIG_STACK calls the original body;
fmod_ret returning non-zero skips the body and the remaining fmod_ret programs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import livepatch
from .consumers import CATALOG
from .flags import OpsFlag, TrampFlag
from .state import Kernel

ORIG, NEW = "orig", "new"


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


def _owner_handles(k: Kernel, func: str) -> dict[str, str]:
    """ops name -> handle for consumers with an ops of their own on this function."""
    return {h.ops.name: h.name for h in k.live_on(func).values() if h.ops is not None}


def simulate(k: Kernel, func: str) -> CallOutcome:
    out = CallOutcome()
    rec = k.records.get(func)
    if rec is None or not rec.ops:
        return out
    own = _owner_handles(k, func)
    hooks: list[str] = []
    ip = ORIG

    def fire(h: str, seen: str):
        out.fired.append(h)
        out.attributed_to[h] = func           # entry observers report the original function
        out.ip_seen[h] = seen

    # ftrace_ops_list walk (arch_ftrace_ops_list_func): newest ops first
    for ops in sorted(rec.ops, key=lambda o: -o.seq):
        if OpsFlag.DIRECT in ops.flags:
            continue                           # entered after the list (call_direct_funcs)
        if ops.name.startswith("klp_ops:"):
            h = livepatch.active(k, func)
            fire(h, ip)
            ip = NEW                           # klp_ftrace_handler(): jump to the newest patch
            out.ip_writes.append((h, ip))
        elif ops.name.startswith("kprobe_"):
            saved = ip                         # kprobe_ftrace_handler(): remember, run, restore
            name, members = k.probes[func]
            stopped = False
            for h in members:                  # aggr_pre_handler(): newest first, stop at a 1
                c = CATALOG[k.handles[h].consumer]
                fire(h, ORIG)                  # the pre_handler sees the probe address
                if c.return_hook:
                    hooks.append(h)
                if c.overrides:
                    ip = f"stub:{h}"
                    out.ip_writes.append((h, ip))
                    stopped = True
                    break
            if not stopped:
                ip = saved
        else:
            h = own.get(ops.name)
            if h is not None:
                fire(h, ip)
                if CATALOG[k.handles[h].consumer].return_hook:
                    hooks.append(h)
    out.list_target = target = ip

    skipped_by = None
    tr = rec.direct.owner if rec.direct is not None else None
    if rec.direct is not None and tr is None:
        h = own.get(rec.direct.name)
        if h is not None:
            fire(h, ip)                         # a plain direct trampoline returns into regs->ip
    elif tr is not None and tr.live_flags is not None:
        flags, progs = tr.live_flags, tr.live_progs
        calls = TrampFlag.CALL_ORIG in flags
        if calls and TrampFlag.ORIG_STACK not in flags:
            target = ORIG                       # calls func+5: whatever the list chose is ignored
        for p in progs:
            if p.kind == "fentry":
                fire(p.handle, target)
        if calls:
            for p in progs:
                if p.kind == "fmod_ret":
                    fire(p.handle, target)
                    if p.skips:
                        skipped_by = p.handle
                        break
    out.target = target
    if skipped_by is not None:
        out.body_ran, out.result_from = "none", skipped_by
    elif target == ORIG:
        out.body_ran, out.result_from = ORIG, ORIG
    elif target == NEW:
        out.body_ran, out.result_from = NEW, livepatch.active(k, func)
    else:
        out.body_ran, out.result_from = "none", target.split(":", 1)[1]
    value = out.result_from if out.body_ran == "none" else out.body_ran
    if tr is not None and tr.live_flags is not None and TrampFlag.CALL_ORIG in tr.live_flags:
        for p in tr.live_progs:
            if p.kind == "fexit":
                fire(p.handle, target)
                out.return_seen[p.handle] = value
    for h in hooks:
        out.return_seen[h] = value              # return hooks see what actually returned
    return out
