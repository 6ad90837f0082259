"""Livepatch: one klp_ops per patched function, patches stack on its func_stack
(kernel/livepatch/patch.c klp_patch_func / klp_unpatch_func)."""
from __future__ import annotations

from . import ftrace
from .consumers import ops_flags, CATALOG
from .state import Counters, Kernel, Ops


def attach(k: Kernel, handle: str, func: str, ctx: Counters) -> int:
    """The first patch of a function registers klp_ops; later ones only push onto func_stack."""
    if func in k.klp:
        k.klp[func][1].insert(0, handle)
        ctx.note("klp_patch_func(): stacked on klp_ops->func_stack, no new ftrace ops")
        return 0
    ops = Ops(f"klp_ops:{func}", ops_flags(CATALOG["livepatch"]), funcs={func})
    ret = ftrace.register_ftrace_function(k, ops, ctx)
    if ret:
        ctx.note(f"failed to register ftrace handler for function '{func}' ({ret})")
        return ret
    k.klp[func] = (ops, [handle])
    return 0


def detach(k: Kernel, handle: str, func: str, ctx: Counters) -> int:
    """Patches can be disabled in any order; the last one off unregisters klp_ops."""
    ops, stack = k.klp[func]
    stack.remove(handle)
    if not stack:
        ftrace.unregister_ftrace_function(k, ops, ctx)
        del k.klp[func]
    return 0


def active(k: Kernel, func: str) -> str | None:
    """The handle whose new function klp_ftrace_handler() jumps to: the newest on func_stack."""
    entry = k.klp.get(func)
    return entry[1][0] if entry and entry[0].enabled else None
