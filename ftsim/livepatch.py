"""Livepatch: one klp_ops per patched function, patches stack on its func_stack
(kernel/livepatch/patch.c klp_patch_func / klp_unpatch_func)."""
from __future__ import annotations

from . import ftrace
from .consumers import CATALOG, ops_flags
from .state import Counters, Kernel, Ops

UNPATCH_WARN = "kernel/livepatch/patch.c:klp_unpatch_func"


def attach(k: Kernel, handle: str, consumer, func: str, ctx: Counters) -> int:
    """klp_patch_func(): the first patch of a function sets the filter ip and registers klp_ops; later
    ones only push onto func_stack."""
    if func in k.klp:
        k.klp[func][1].insert(0, handle)
        ctx.note("klp_patch_func(): stacked on klp_ops->func_stack, no new ftrace ops")
        return 0
    ops = Ops(f"klp_ops:{func}", "klp", ops_flags(CATALOG["livepatch"]))
    ret = ftrace.ftrace_set_filter_ip(k, ops, func, False, ctx)
    if ret:
        ctx.note(f"failed to set ftrace filter for function '{func}' ({ret})")
        return ret
    ret = ftrace.register_ftrace_function(k, ops, ctx)
    if ret:
        ctx.note(f"failed to register ftrace handler for function '{func}' ({ret})")
        ops.funcs.clear()
        return ret
    k.klp[func] = (ops, [handle])
    return 0


def detach(k: Kernel, handle: str, func: str, ctx: Counters) -> int:
    """klp_unpatch_func(): patches come off in any order; the last one unregisters klp_ops (a failure is
    only a WARN_ON, and the ops is freed regardless: a killed ftrace keeps calling freed memory)."""
    ops, stack = k.klp[func]
    stack.remove(handle)
    if stack:
        return 0
    ret = ftrace.unregister_ftrace_function(k, ops, ctx)
    if k.oops:
        return 0
    if ret:
        ctx.warn(UNPATCH_WARN, "WARN_ON (unregister_ftrace_function)")
    if ftrace.ftrace_set_filter_ip(k, ops, func, True, ctx):
        ctx.warn(UNPATCH_WARN, "WARN_ON (ftrace_set_filter_ip)")
    if ops.enabled:
        ops.zombie = True                           # kfree(ops) while it stays on ftrace_ops_list
    del k.klp[func]
    return 0


def attached(k: Kernel, h) -> bool:
    entry = k.klp.get(h.func)
    rec = k.records.get(h.func)
    return bool(entry and h.name in entry[1] and rec and entry[0] in rec.ops and entry[0].enabled)


def active(k: Kernel, func: str) -> str | None:
    """The handle whose new function klp_ftrace_handler() jumps to: the newest on func_stack."""
    entry = k.klp.get(func)
    return entry[1][0] if entry and entry[0].enabled else None
