"""Consumers with an ops of their own: plain ftrace_ops (tracers, perf), the fgraph and fprobe users, and
direct ops without a callback (samples/ftrace/ftrace-direct*.c).

Passive users either register an ops per handle (a module's ftrace_ops, the function tracer's
instance, 6.12's fprobes with SAVE_REGS) or join a shared ops that is registered once: fgraph's
``graph_ops`` (function_graph, and fprobes from 6.14, 4346ba160409) and 7.2's ``fprobe_ftrace_ops``
for entry-only fprobes.  After ftrace_kill() an unregister fails and the module's ops stays on the list
with its memory freed.
"""
from __future__ import annotations

from . import ftrace
from .consumers import Consumer, ops_flags
from .flags import OpsFlag
from .state import Counters, Kernel, Ops

GRAPH_OPS, FPROBE_OPS = "graph_ops", "fprobe_ftrace_ops"


def shared_name(k: Kernel, consumer: Consumer) -> str | None:
    """The shared ops a passive consumer joins on this kernel, or None for an ops of its own."""
    if consumer.name == "function-graph":
        return GRAPH_OPS                          # register_ftrace_graph() -> ftrace_startup(&graph_ops)
    if consumer.name in ("fprobe", "fprobe-exit"):
        form = k.policy.fprobe
        if form == "fgraph" or (form == "split" and consumer.name == "fprobe-exit"):
            return GRAPH_OPS
        if form == "split":
            return FPROBE_OPS                     # fprobe_ftrace_add_ips(): FTRACE_OPS_FL_SAVE_ARGS
    return None


def _shared(k: Kernel, name: str) -> Ops:
    if name not in k.shared:
        k.shared[name] = Ops(name, "shared", OpsFlag.SAVE_ARGS if name == FPROBE_OPS else OpsFlag.NONE)
    return k.shared[name]


def _holders(k: Kernel, name: str, func: str | None = None) -> list:
    """The live handles (told 0, not detached: ``k.live``) that hold the shared ops ``name``; a holder's
    function is in the ops' filter, so only those functions are looked at."""
    ops = k.shared.get(name)
    funcs = () if ops is None else [func] if func is not None else sorted(ops.funcs)
    return [h for f in funcs for h in k.live_on(f).values() if h.ops is not None and h.ops.name == name]


# -- LIST: the mechanism --------------------------------------------------------------------------

def attach_list(k: Kernel, handle, consumer: Consumer, func: str, ctx: Counters) -> int:
    """register_ftrace_function() of the consumer's own ops, or the shared ops gains the ip (and is
    registered by its first user)."""
    name = shared_name(k, consumer)
    if name is None:
        flags = OpsFlag.SAVE_REGS if consumer.name in ("fprobe", "fprobe-exit") else OpsFlag.NONE
        ops = Ops(f"{consumer.name}:{handle.name}", "list", flags, funcs={func})
        if k.dead:
            ctx.note("ftrace_set_filter_ip(): -ENODEV, ftrace is disabled")
            return int(ftrace.ENODEV)
        ret = ftrace.register_ftrace_function(k, ops, ctx)
        if ret == 0:
            handle.ops = ops
        return ret
    ops = _shared(k, name)
    first = not _holders(k, name)
    ret = ftrace.ftrace_set_filter_ip(k, ops, func, False, ctx) if func not in ops.funcs else 0
    if ret:
        return ret
    if first and not ops.enabled:
        ret = ftrace.register_ftrace_function(k, ops, ctx)
        if ret:
            ftrace.ftrace_set_filter_ip(k, ops, func, True, ctx)
            return ret
    handle.ops = ops
    return 0


def detach_list(k: Kernel, handle, func: str, ctx: Counters) -> int:
    ops = handle.ops
    if ops.kind != "shared":
        if ftrace.unregister_ftrace_function(k, ops, ctx):
            ops.zombie = True                    # the module's ops is freed, still on ftrace_ops_list
        return 0
    others = [h for h in _holders(k, ops.name) if h is not handle]
    if not others:
        ftrace.unregister_ftrace_function(k, ops, ctx)
    if not any(h.func == func for h in others):
        ftrace.ftrace_set_filter_ip(k, ops, func, True, ctx)
    return 0


def attached_list(k: Kernel, h) -> bool:
    rec = k.records.get(h.func)
    return bool(rec and h.ops is not None and h.ops in rec.ops and h.ops.enabled and not h.ops.zombie)


# -- DIRECT: a direct ops without ops_func (Song's flavor #1) ------------------------------------------

def attach_direct(k: Kernel, handle, consumer: Consumer, func: str, ctx: Counters) -> int:
    ops = Ops(f"{consumer.name}:{handle.name}", "direct",
              ops_flags(consumer, direct_carries_ipmodify=k.policy.direct_carries_ipmodify))
    ret = ftrace.register_ftrace_direct(k, ops, func, ctx)
    if ret == 0:
        handle.ops = ops
    return ret


def detach_direct(k: Kernel, handle, func: str, ctx: Counters) -> int:
    if ftrace.unregister_ftrace_direct(k, handle.ops, func, ctx):
        handle.ops.zombie = True
    return 0


def attached_direct(k: Kernel, h) -> bool:
    rec = k.records.get(h.func)
    return bool(rec and h.ops is not None and rec.direct is h.ops and h.ops.enabled and not h.ops.zombie)
