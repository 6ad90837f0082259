"""ftrace's side of the arbitration: registering ops, filter changes, direct calls (kernel/trace/ftrace.c).

Every rule that decides whether an IPMODIFY or DIRECT ops may join a function lives here, branched on
the policy's `arbitration` field.  Owner callbacks (`ops_func`) are answered in bpf.py.
"""
from __future__ import annotations

from .flags import Errno, OpsCmd, OpsFlag
from .state import Counters, Kernel, Ops, Record

OK, EBUSY, EAGAIN = 0, int(Errno.EBUSY), int(Errno.EAGAIN)
GATE = "__ftrace_hash_update_ipmodify()"


def _refuse(ctx: Counters, why: str) -> int:
    ctx.note(f"{GATE}: -EBUSY, {why}")
    return EBUSY


def _real_ipmodify(rec: Record) -> bool:
    """The record holds an IPMODIFY ops that is not a direct ops."""
    return any(OpsFlag.IPMODIFY in o.flags and OpsFlag.DIRECT not in o.flags for o in rec.ops)


def _ops_func(k: Kernel, ops: Ops, cmd: OpsCmd, ctx: Counters, caller: str) -> int:
    from . import bpf  # the only owner with an ops_func in the catalog
    ctx.callbacks += 1
    ret = bpf.ops_func(k, ops.owner, cmd, ctx)
    ctx.note(f"{caller}: ops_func({cmd.value}) -> {Errno.name_of(ret)}")
    return ret


def hash_update_ipmodify(k: Kernel, ops: Ops, rec: Record, ctx: Counters) -> int:
    """May `ops` join `rec`?  The gate of __ftrace_hash_update_ipmodify() and its designed variants."""
    p, arb = k.policy, k.policy.arbitration
    if arb == "none":
        return OK
    is_ipm, is_direct = OpsFlag.IPMODIFY in ops.flags, OpsFlag.DIRECT in ops.flags
    if not (is_ipm or is_direct):           # passive ops never conflict
        return OK
    if arb == "refuse":                     # pre-6.0: direct ops carry IPMODIFY themselves
        return _refuse(ctx, "the function already has an IPMODIFY ops") if is_ipm and rec.ipmodify else OK
    if arb == "ops_func":                   # 6.0+ __ftrace_hash_update_ipmodify()
        if not rec.ipmodify:
            return OK                       # an IPMODIFY joining a DIRECT is asked in register_ftrace_function()
        if is_ipm:
            return _refuse(ctx, "the function already has an IPMODIFY ops")
        if not ops.has_ops_func:
            return _refuse(ctx, "a direct ops without ops_func cannot share with IPMODIFY")
        return _ops_func(k, ops, OpsCmd.ENABLE_SHARE_IPMODIFY_SELF, ctx, GATE)
    if arb == "ftrace_asks_owner":          # Rostedt: DIRECT is treated as IPMODIFY, the owner is asked
        if is_ipm and _real_ipmodify(rec):
            return _refuse(ctx, "the function already has an IPMODIFY ops")
        holder = rec.direct if is_ipm else (ops if _real_ipmodify(rec) else None)
        if holder is None:
            return OK
        if not holder.has_ops_func:
            return _refuse(ctx, "a direct ops without ops_func cannot share with IPMODIFY")
        ret = _ops_func(k, holder, OpsCmd.SHARE_WITH_IPMODIFY, ctx, GATE)
        if ret == OK:
            rec.shared_ipmodify = True
        return ret
    if arb == "flavors":                    # Song: the owner declares flavor #1/#2/#3
        from . import bpf
        if is_ipm and rec.ipmodify:
            return _refuse(ctx, "the function already has an IPMODIFY ops")
        if is_direct and rec.ipmodify:
            flavor = bpf.flavor(k, ops)
            ctx.note(f"{GATE}: a flavor #{flavor} direct ops joins an IPMODIFY function")
            return {1: EBUSY, 2: EAGAIN, 3: OK}[flavor]
        if is_ipm and rec.direct is not None:
            flavor = bpf.flavor(k, rec.direct)
            if flavor == 1 or (flavor == 2 and p.ipmodify_second == "refuse"):
                return _refuse(ctx, f"the function has a flavor #{flavor} direct ops")
            if flavor == 2:
                return _ops_func(k, rec.direct, OpsCmd.ENABLE_SHARE_IPMODIFY_PEER, ctx, GATE)
        return OK
    raise AssertionError(arb)


def _attach(k: Kernel, ops: Ops, rec: Record):
    rec.ops.append(ops)
    if OpsFlag.IPMODIFY in ops.flags:
        rec.ipmodify = True
    if k.policy.modified_flag and ops.flags & (OpsFlag.IPMODIFY | OpsFlag.DIRECT):
        rec.modified = True


def _detach(ops: Ops, rec: Record):
    if ops in rec.ops:
        rec.ops.remove(ops)
    rec.ipmodify = any(OpsFlag.IPMODIFY in o.flags for o in rec.ops)
    if rec.direct is ops:
        rec.direct = None
    if not rec.ipmodify:
        rec.shared_ipmodify = False


def _peer_prepare(k: Kernel, ops: Ops, ctx: Counters) -> int:
    """prepare_direct_functions_for_ipmodify(): an IPMODIFY ops about to be registered asks every direct
    ops on its functions to share (6.0+, called from register_ftrace_function() only)."""
    if k.policy.arbitration != "ops_func" or OpsFlag.IPMODIFY not in ops.flags:
        return OK
    for func in sorted(ops.funcs):
        direct = k.record(func).direct
        if direct is None:
            continue
        if not direct.has_ops_func:
            ctx.note("prepare_direct_functions_for_ipmodify(): -EBUSY, the direct ops has no ops_func")
            return EBUSY
        ret = _ops_func(k, direct, OpsCmd.ENABLE_SHARE_IPMODIFY_PEER, ctx, "prepare_direct_functions_for_ipmodify()")
        if ret:
            return ret
    return OK


def _peer_cleanup(k: Kernel, ops: Ops, funcs, ctx: Counters):
    """cleanup_direct_functions_after_ipmodify() and the designs' equivalents; errors are ignored."""
    p = k.policy
    if OpsFlag.IPMODIFY not in ops.flags or not p.disable_on_ipmodify_removal:
        return
    cmd = {"ops_func": OpsCmd.DISABLE_SHARE_IPMODIFY_PEER,
           "ftrace_asks_owner": OpsCmd.STOP_SHARE_WITH_IPMODIFY,
           "flavors": OpsCmd.DISABLE_SHARE_IPMODIFY_PEER}.get(p.arbitration)
    if cmd is None:
        return
    for func in sorted(funcs):
        direct = k.record(func).direct
        if direct is not None and direct.has_ops_func and not k.record(func).ipmodify:
            _ops_func(k, direct, cmd, ctx, "cleanup_direct_functions_after_ipmodify()")


def register_ftrace_function(k: Kernel, ops: Ops, ctx: Counters) -> int:
    """register_ftrace_function(): PEER callbacks first, then the gate on every function of the hash."""
    ret = _peer_prepare(k, ops, ctx)
    if ret:
        return ret
    done = []
    for func in sorted(ops.funcs):
        rec = k.record(func)
        ret = hash_update_ipmodify(k, ops, rec, ctx)
        if ret:
            for r in done:                   # rollback, as the gate's rollback: label does
                _detach(ops, r)
            return ret
        _attach(k, ops, rec)
        done.append(rec)
    ops.enabled = True
    ops.seq = k.next_seq()
    return OK


def unregister_ftrace_function(k: Kernel, ops: Ops, ctx: Counters) -> int:
    """unregister_ftrace_function(), then cleanup_direct_functions_after_ipmodify()."""
    for func in ops.funcs:
        _detach(ops, k.record(func))
    ops.enabled = False
    _peer_cleanup(k, ops, ops.funcs, ctx)
    return OK


def ftrace_set_filter_ip(k: Kernel, ops: Ops, func: str, remove: bool, ctx: Counters) -> int:
    """ftrace_set_filter_ip(): on an enabled ops the new hash goes through the gate only - no PEER
    callback (prepare_direct_functions_for_ipmodify() runs in register_ftrace_function() alone)."""
    if remove:
        ops.funcs.discard(func)
        if ops.enabled:
            _detach(ops, k.record(func))
        return OK
    if ops.enabled and func not in ops.funcs:
        ctx.note(f"ftrace_set_filter_ip(): {ops.name} is registered already; the new ip only passes {GATE}")
        rec = k.record(func)
        ret = hash_update_ipmodify(k, ops, rec, ctx)
        if ret:
            return ret
        _attach(k, ops, rec)
    ops.funcs.add(func)
    return OK


def register_ftrace_direct(k: Kernel, ops: Ops, func: str, ctx: Counters) -> int:
    """register_ftrace_direct[_multi](): one direct trampoline per function, then the gate."""
    rec = k.record(func)
    if k.policy.arbitration != "none" and (rec.direct is not None or rec.stale_direct):
        what = "a stale entry (d05cb470663a)" if rec.direct is None else "another direct trampoline"
        ctx.note(f"register_ftrace_direct(): -EBUSY, direct_functions holds {what} for the function")
        return EBUSY
    ops.funcs = {func}
    ret = hash_update_ipmodify(k, ops, rec, ctx)
    if ret:
        if k.policy.retry_leaves_stale_direct:
            rec.stale_direct = True           # d05cb470663a: the new hash entry is not removed
            ctx.note("stale direct_functions entry left behind (d05cb470663a)")
        return ret
    _attach(k, ops, rec)
    rec.direct = ops                          # naive: the newcomer takes the call site, the incumbent
    ops.enabled = True                        # stays counted but is never called again
    ops.seq = k.next_seq()
    return OK


def modify_ftrace_direct(k: Kernel, ops: Ops, func: str, ctx: Counters) -> int:
    """modify_ftrace_direct[_multi](): swap the trampoline in place.  Until 3e9a18e1c3e9 (6.18) this
    path ran neither the IPMODIFY check nor ops_func; the designs that check it reuse the gate."""
    rec = k.record(func)
    if rec.direct is not ops:
        return OK                             # naive: displaced, the swap lands nowhere
    if not k.policy.modify_path_checked:
        if rec.ipmodify:
            ctx.note("modify_ftrace_direct(): no IPMODIFY check and no ops_func on this path (before 3e9a18e1c3e9)")
        return OK
    _detach(ops, rec)                         # ask as if the new image were joining
    try:
        return hash_update_ipmodify(k, ops, rec, ctx) if rec.ipmodify else OK
    finally:
        _attach(k, ops, rec)
        rec.direct = ops


def unregister_ftrace_direct(k: Kernel, ops: Ops, func: str, ctx: Counters) -> int:
    rec = k.record(func)
    if rec.direct is ops or ops in rec.ops:
        _detach(ops, rec)
    ops.enabled = False
    return OK
