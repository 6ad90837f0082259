"""ftrace's side of the arbitration: registering ops, filter changes, direct calls (kernel/trace/ftrace.c).

Every rule that decides whether an IPMODIFY or DIRECT ops may join a function lives here, branched on
the policy's `arbitration` field.  ftrace knows nothing of BPF: it asks a direct ops' owner through
the callback the ops carries (``ops.ops_func``), as the kernel calls ``ops->ops_func()``.
"""
from __future__ import annotations

from .flags import Errno, OpsCmd, OpsFlag
from .functions import address_order
from .state import Counters, Kernel, Ops, Record

OK, EBUSY, EAGAIN, EINVAL, ENODEV = 0, int(Errno.EBUSY), int(Errno.EAGAIN), int(Errno.EINVAL), int(Errno.ENODEV)
GATE = "__ftrace_hash_update_ipmodify()"


def _refuse(ctx: Counters, why: str) -> int:
    ctx.note(f"{GATE}: -EBUSY, {why}")
    return EBUSY


def ftrace_kill(k: Kernel, ctx: Counters, site: str):
    """FTRACE_WARN_ON(): WARN at ``site``, then ftrace_kill() sets ftrace_disabled (kernel/trace/ftrace.c)."""
    ctx.warn(site, "FTRACE_WARN_ON")
    if not k.dead:
        ctx.note("ftrace_kill(): ftrace is disabled from now on (ftrace_disabled = 1)")
    k.dead = True


def call_ops_func(k: Kernel, ops: Ops, cmd: OpsCmd, func: str, ctx: Counters, caller: str) -> int:
    """ops->ops_func(ops, ip, cmd): the owner answers for the function ``func``."""
    if ops.zombie:
        oops(k, ctx, {"bpf": "kernel/bpf/trampoline.c:bpf_trampoline_update (NULL pointer dereference: the "
                             "trampoline was freed while its ops stayed registered)"}.get(
            ops.kind, f"kernel/trace/ftrace.c:{caller.rstrip('()')} (an ops freed while registered)"))
        return EBUSY
    ctx.callbacks += 1
    ret = ops.ops_func(k, ops, func, cmd, ctx)
    ctx.note(f"{caller}: ops_func({cmd.value}, {func}) -> {Errno.name_of(ret)}")
    return ret


def oops(k: Kernel, ctx: Counters, site: str):
    """A kernel oops (NULL pointer dereference, use after free): the machine is gone."""
    ctx.warn(site, "BUG: oops")
    k.oops = k.oops or site


def _real_ipmodify(rec: Record) -> bool:
    """The record holds an IPMODIFY ops that is not a direct ops."""
    return any(OpsFlag.IPMODIFY in o.flags and OpsFlag.DIRECT not in o.flags for o in rec.ops)


def hash_update_ipmodify(k: Kernel, ops: Ops, rec: Record, ctx: Counters, update_target: bool = False) -> int:
    """May `ops` join `rec`?  The per-record gate of __ftrace_hash_update_ipmodify() and its designed
    variants (``update_target``: the modify path asks again for a record the ops already holds)."""
    p, arb = k.policy, k.policy.arbitration
    if arb == "none":
        return OK
    is_ipm, is_direct = OpsFlag.IPMODIFY in ops.flags, OpsFlag.DIRECT in ops.flags
    if not (is_ipm or is_direct):           # passive ops never conflict
        return OK
    if arb == "refuse":                     # pre-6.0: direct ops carry IPMODIFY themselves, so the
        if update_target:                   # record's IPMODIFY on the modify path is the ops' own
            return OK
        return _refuse(ctx, "the function already has an IPMODIFY ops") if is_ipm and rec.ipmodify else OK
    if arb == "ops_func":                   # 6.0+ __ftrace_hash_update_ipmodify()
        if not rec.ipmodify:
            return OK                       # an IPMODIFY joining a DIRECT is asked in register_ftrace_function()
        if is_ipm:
            return _refuse(ctx, "the function already has an IPMODIFY ops")
        if ops.ops_func is None:
            return _refuse(ctx, "a direct ops without ops_func cannot share with IPMODIFY")
        return call_ops_func(k, ops, OpsCmd.ENABLE_SHARE_IPMODIFY_SELF, rec.func, ctx, GATE)
    if arb == "ftrace_asks_owner":          # Rostedt: DIRECT is treated as IPMODIFY, the owner is asked
        if is_ipm and _real_ipmodify(rec):
            return _refuse(ctx, "the function already has an IPMODIFY ops")
        holder = rec.direct if is_ipm else (ops if _real_ipmodify(rec) else None)
        if holder is None:
            return OK
        if holder.ops_func is None:
            return _refuse(ctx, "a direct ops without ops_func cannot share with IPMODIFY")
        return call_ops_func(k, holder, OpsCmd.SHARE_WITH_IPMODIFY, rec.func, ctx, GATE)
    if arb == "flavors":                    # Song: the owner declares flavor #1/#2/#3
        if is_ipm and rec.ipmodify:
            return _refuse(ctx, "the function already has an IPMODIFY ops")
        if is_direct and rec.ipmodify:
            flavor = _flavor(k, ops, rec.func)
            ctx.note(f"{GATE}: a flavor #{flavor} direct ops joins an IPMODIFY function")
            return {1: EBUSY, 2: EAGAIN, 3: OK}[flavor]
        if is_ipm and rec.direct is not None and p.peer_sent_from == "gate":
            return _ask_peer(k, rec.direct, rec.func, ctx, GATE)
        return OK
    raise AssertionError(arb)


def _flavor(k: Kernel, ops: Ops, func: str) -> int:
    """Song's flavor of a direct ops, as its owner declares it (a direct ops without a callback is #1)."""
    if ops.ops_func is None:
        return 1
    return ops.ops_func(k, ops, func, OpsCmd.DECLARE_FLAVOR, None)


def _ask_peer(k: Kernel, direct: Ops, func: str, ctx: Counters, caller: str) -> int:
    """Song: an IPMODIFY ops meets a direct ops: #3 shares, #1 never, #2 is asked to become #3."""
    flavor = _flavor(k, direct, func)
    if flavor == 1 or (flavor == 2 and k.policy.ipmodify_second == "refuse"):
        return _refuse(ctx, f"the function has a flavor #{flavor} direct ops")
    if flavor == 2:
        return call_ops_func(k, direct, OpsCmd.ENABLE_SHARE_IPMODIFY_PEER, func, ctx, caller)
    return OK


def ipmodify_update(k: Kernel, ops: Ops, old: set, new: set, ctx: Counters, update_target: bool = False) -> int:
    """__ftrace_hash_update_ipmodify(ops, old_hash, new_hash, update_target): walk the records in address
    order (do_for_each_ftrace_rec) and ask the gate for each one joining the hash (every one of ``new``
    when ``update_target``); sets and clears FTRACE_FL_IPMODIFY; on a refusal the records set so far
    are rolled back.  Returns the first error."""
    if not ops.enabled:
        return OK
    is_ipm = OpsFlag.IPMODIFY in ops.flags
    if not (is_ipm or OpsFlag.DIRECT in ops.flags) or k.policy.arbitration == "none":
        if is_ipm:
            for f in new - old:
                k.record(f).ipmodify = True
            for f in old - new:
                k.record(f).recompute_ipmodify()
        return OK
    done = []
    for f in address_order(old | new if update_target else old ^ new):   # unchanged records: nothing to ask
        in_new = f in new
        rec = k.record(f)
        if in_new:
            ret = hash_update_ipmodify(k, ops, rec, ctx, update_target)
            if k.oops:
                return ret or EBUSY
            if ret:
                for r in done:
                    r.ipmodify = False
                if update_target:
                    ctx.passes.append(f)
                return ret
            if is_ipm and not rec.ipmodify:
                rec.ipmodify = True
                done.append(rec)
        elif is_ipm:
            rec.ipmodify = False
    if update_target:
        ctx.passes.append("")
    return OK


def _attach(k: Kernel, ops: Ops, rec: Record):
    """__ftrace_hash_rec_update(): the record gains the ops (count, DIRECT, the sticky M)."""
    if ops not in rec.ops:
        rec.ops.append(ops)
    if OpsFlag.IPMODIFY in ops.flags:
        rec.ipmodify = True
    if k.policy.modified_flag and (rec.ipmodify or OpsFlag.DIRECT in ops.flags):
        rec.modified = True


def _detach(ops: Ops, rec: Record):
    if ops in rec.ops:
        rec.ops.remove(ops)
    rec.recompute_ipmodify()
    if rec.direct is ops:
        # naive only: another direct ops still on the record is found in direct_functions again
        rest = [o for o in rec.ops if OpsFlag.DIRECT in o.flags]
        rec.direct = max(rest, key=lambda o: o.seq) if rest else None


def _peer_prepare(k: Kernel, ops: Ops, ctx: Counters) -> int:
    """prepare_direct_functions_for_ipmodify(): an IPMODIFY ops about to be registered asks every direct
    ops on its functions to share (6.0+, called from register_ftrace_function() only; Song's v2 did
    the same when peer_sent_from == "register")."""
    p = k.policy
    if OpsFlag.IPMODIFY not in ops.flags:
        return OK
    if not (p.arbitration == "ops_func" or (p.arbitration == "flavors" and p.peer_sent_from == "register")):
        return OK
    caller = "prepare_direct_functions_for_ipmodify()"
    for func in address_order(ops.funcs):
        direct = k.record(func).direct
        if direct is None:
            continue
        if p.arbitration == "flavors":
            ret = _ask_peer(k, direct, func, ctx, caller)
        elif direct.ops_func is None:
            ctx.note(f"{caller}: -EBUSY, the direct ops has no ops_func")
            return EBUSY
        else:
            ret = call_ops_func(k, direct, OpsCmd.ENABLE_SHARE_IPMODIFY_PEER, func, ctx, caller)
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
    for func in address_order(funcs):
        direct = k.record(func).direct          # the direct ops referencing the ip (ops_references_ip)
        if direct is not None and direct.ops_func is not None:
            call_ops_func(k, direct, cmd, func, ctx, "cleanup_direct_functions_after_ipmodify()")
            if k.oops:
                return


def register_ftrace_function(k: Kernel, ops: Ops, ctx: Counters, peer: bool = True) -> int:
    """register_ftrace_function(): PEER callbacks first (``peer``; the _nolock variant has none), then
    ftrace_startup(): -ENODEV once ftrace is killed, else the gate on every function of the hash."""
    if peer:
        ret = _peer_prepare(k, ops, ctx)
        if ret or k.oops:
            return ret
    if k.dead:
        ctx.note("ftrace_startup(): -ENODEV, ftrace is disabled")
        return ENODEV
    ops.enabled = True                       # the gate only looks at registered ops
    ret = ipmodify_update(k, ops, set(), set(ops.funcs), ctx)
    if ret:
        ops.enabled = False
        return ret
    for func in address_order(ops.funcs):
        _attach(k, ops, k.record(func))
    ops.seq = k.next_seq()
    return OK


def unregister_ftrace_function(k: Kernel, ops: Ops, ctx: Counters) -> int:
    """unregister_ftrace_function(): ftrace_shutdown() (-ENODEV once killed: the ops stays registered),
    then cleanup_direct_functions_after_ipmodify(), which runs either way."""
    if k.dead:
        ctx.note(f"ftrace_shutdown(): -ENODEV, ftrace is disabled; {ops.name} stays on ftrace_ops_list")
        ret = ENODEV
    elif not ops.enabled:                        # __unregister_ftrace_function(): WARN_ON(!ENABLED)
        ctx.warn("kernel/trace/ftrace.c:__unregister_ftrace_function", "WARN_ON (the ops is not registered)")
        ret = EBUSY
    else:
        for func in ops.funcs:
            _detach(ops, k.record(func))
        ops.enabled = False
        ret = OK
    _peer_cleanup(k, ops, ops.funcs, ctx)
    return ret


def ftrace_set_filter_ip(k: Kernel, ops: Ops, func: str, remove: bool, ctx: Counters) -> int:
    """ftrace_set_filter_ip(): -ENODEV once killed; on an enabled ops the new hash goes through the
    gate only - no PEER callback (prepare_direct_functions_for_ipmodify() runs in
    register_ftrace_function() alone)."""
    if k.dead:
        ctx.note("ftrace_set_hash(): -ENODEV, ftrace is disabled")
        return ENODEV
    if remove:
        if func not in ops.funcs:
            return int(Errno.ENOENT)
        if ops.enabled:
            ipmodify_update(k, ops, set(ops.funcs), set(ops.funcs) - {func}, ctx)
            _detach(ops, k.record(func))
        ops.funcs.discard(func)
        return OK
    if ops.enabled and func not in ops.funcs:
        ctx.note(f"ftrace_set_filter_ip(): {ops.name} is registered already; the new ip only passes {GATE}")
        ret = ipmodify_update(k, ops, set(ops.funcs), set(ops.funcs) | {func}, ctx)
        if ret:
            return ret
        _attach(k, ops, k.record(func))
    ops.funcs.add(func)
    return OK


# -- direct calls, one ops per trampoline (register_ftrace_direct[_multi], 6.0 to 6.19) -------------

def register_ftrace_direct(k: Kernel, ops: Ops, func: str, ctx: Counters) -> int:
    """register_ftrace_direct[_multi](): one direct trampoline per function, then
    register_ftrace_function_nolock() (the gate, no PEER)."""
    if k.dead:
        # register_fentry() ignores ftrace_set_filter_ip()'s -ENODEV: the filter hash stays empty and
        # register_ftrace_direct[_multi]() answers -EINVAL before it looks at direct_functions
        ctx.note("ftrace_set_filter_ip(): -ENODEV (ignored); register_ftrace_direct(): -EINVAL, empty filter hash")
        return EINVAL
    rec = k.record(func)
    if k.policy.arbitration != "none" and (rec.direct is not None or rec.stale_direct):
        what = "a stale entry (d05cb470663a)" if rec.direct is None else "another direct trampoline"
        ctx.note(f"register_ftrace_direct(): -EBUSY, direct_functions holds {what} for the function")
        return EBUSY
    ops.funcs = {func}
    ops.has_func = True
    ret = register_ftrace_function(k, ops, ctx, peer=False)
    if ret:
        if k.policy.retry_leaves_stale_direct and not k.dead:
            rec.stale_direct = True           # d05cb470663a: the new hash entry is not removed
            ctx.note("stale direct_functions entry left behind (d05cb470663a)")
            note = k.policy.note_unknown("retry_leaves_stale_direct")
            if note:
                ctx.note(note)
        return ret
    rec.direct = ops                          # naive: the newcomer takes the call site, the incumbent
    return OK                                 # stays counted but is never called again


def modify_ftrace_direct(k: Kernel, ops: Ops, func: str, ctx: Counters) -> int:
    """modify_ftrace_direct[_multi](): swap the trampoline in place.  Before 3e9a18e1c3e9 this path ran
    neither the IPMODIFY check nor ops_func; from it on it asks the gate again for its own records
    (update_target), and the designs that check it reuse the gate."""
    rec = k.record(func)
    if rec.direct is not ops:
        return OK                             # naive: displaced, the swap lands nowhere
    if k.dead:
        ctx.note("modify_ftrace_direct(): registering tmp_ops fails with -ENODEV, ftrace is disabled")
        return ENODEV
    note = k.policy.note_unknown("modify_path_checked")
    if note and rec.ipmodify:
        ctx.note(note)
    if not k.policy.modify_path_checked:
        if rec.ipmodify:
            ctx.note("modify_ftrace_direct(): no IPMODIFY check and no ops_func on this path (before 3e9a18e1c3e9)")
        return OK
    return ipmodify_update(k, ops, set(ops.funcs), set(ops.funcs), ctx, update_target=True)


def unregister_ftrace_direct(k: Kernel, ops: Ops, func: str, ctx: Counters) -> int:
    """unregister_ftrace_direct[_multi](): unregister, drop the direct_functions entry, clear func."""
    rec = k.record(func)
    ret = unregister_ftrace_function(k, ops, ctx)
    if rec.direct is ops and not ret:
        rec.direct = None
    ops.has_func = False                      # "cleanup for possible another register call"
    return ret


# -- one direct ops for every BPF trampoline (HAVE_SINGLE_FTRACE_DIRECT_OPS, 7.0+) -----------------

def update_ftrace_direct_add(k: Kernel, ops: Ops, func: str, ctx: Counters) -> int:
    """update_ftrace_direct_add(): an ip already in direct_functions -> -EINVAL; the first ip registers
    the ops (register_ftrace_function_nolock), later ones move its hash: either way only the new ip
    passes the gate, and an error leaves nothing behind."""
    rec = k.record(func)
    if rec.direct is not None or rec.stale_direct:
        ctx.note("update_ftrace_direct_add(): -EINVAL, the ip is in direct_functions already")
        return EINVAL
    if not ops.funcs:
        ops.funcs = {func}
        ops.has_func = True
        ret = register_ftrace_function(k, ops, ctx, peer=False)
        if ret:
            ops.funcs = set()
            return ret
    else:
        if k.dead:
            ctx.note("ftrace_update_ops(): -ENODEV, ftrace is disabled")
            return ENODEV
        ret = ipmodify_update(k, ops, set(ops.funcs), set(ops.funcs) | {func}, ctx)
        if ret:
            return ret
        ops.funcs.add(func)
        _attach(k, ops, rec)
    rec.direct = ops
    return OK


def update_ftrace_direct_mod(k: Kernel, ops: Ops, ctx: Counters) -> int:
    """update_ftrace_direct_mod(): __ftrace_hash_update_ipmodify(ops, orig_hash, orig_hash, true) over
    the whole shared filter: every record of the ops that has FTRACE_FL_IPMODIFY is sent SELF, in
    address order, and the first error is returned (7.2 kernel/trace/ftrace.c update_ftrace_direct_mod)."""
    if k.dead:
        ctx.note("update_ftrace_direct_mod(): registering tmp_ops fails with -ENODEV, ftrace is disabled")
        return ENODEV
    return ipmodify_update(k, ops, set(ops.funcs), set(ops.funcs), ctx, update_target=True)


def update_ftrace_direct_del(k: Kernel, ops: Ops, func: str, ctx: Counters) -> int:
    """update_ftrace_direct_del(): the ip leaves the shared filter (no SELF); the last one unregisters."""
    rec = k.record(func)
    if ops.funcs == {func}:
        ret = unregister_ftrace_function(k, ops, ctx)
        if ret:
            return ret
        ops.funcs = set()
        ops.has_func = False
    else:
        if k.dead:
            ctx.note("ftrace_update_ops(): -ENODEV, ftrace is disabled")
            return ENODEV
        ops.funcs.discard(func)
        _detach(ops, rec)
    if rec.direct is ops:
        rec.direct = None
    return OK
