"""kprobes on ftrace: every probe shares one of two global ops (kernel/kprobes.c).

`kprobe_ipmodify_ops` (IPMODIFY|SAVE_REGS) serves probes with a post_handler, `kprobe_ftrace_ops`
(SAVE_REGS) the rest; each is registered when its count goes 0 -> 1 and otherwise only gains a
filter ip.  Probes on one address aggregate: the aggregate stays armed on the ops its first probe
chose, but once a member with a post_handler joins, the aggregate's post_handler is set for good
(kept on ftrace probes "to identify this aggrprobe armed with kprobe_ipmodify_ops"), and disarming
picks the ops by it: an aggregate armed on kprobe_ftrace_ops is then disarmed from the wrong ops.

This module also owns the shared ops' cross-function context for the batch engine (``context`` /
``install``): whether other functions hold the ops, its count, and where its registration falls among
the function's own ops.
"""
from __future__ import annotations

from . import ftrace
from .consumers import Consumer
from .flags import Errno, OpsFlag
from .state import Counters, Kernel, Ops

FTRACE_OPS, IPMODIFY_OPS = "kprobe_ftrace_ops", "kprobe_ipmodify_ops"
KOPS = (FTRACE_OPS, IPMODIFY_OPS)
DISARM_WARN = "kernel/kprobes.c:__disarm_kprobe_ftrace"


def shared_ops(k: Kernel, name: str) -> Ops:
    """The global kprobe_ftrace_ops / kprobe_ipmodify_ops (created on first use)."""
    if name not in k.kprobe_ops:
        flags = OpsFlag.SAVE_REGS | (OpsFlag.IPMODIFY if name == IPMODIFY_OPS else OpsFlag.NONE)
        k.kprobe_ops[name] = Ops(name, "kprobe", flags)
        k.kprobe_cnt[name] = 0
    return k.kprobe_ops[name]


def _arm(k: Kernel, name: str, func: str, ctx: Counters) -> int:
    """__arm_kprobe_ftrace(): set the filter ip, register the ops if its count is 0."""
    ops = shared_ops(k, name)
    ret = ftrace.ftrace_set_filter_ip(k, ops, func, False, ctx)
    if ret:
        return ret
    if k.kprobe_cnt[name] == 0:
        ret = ftrace.register_ftrace_function(k, ops, ctx)
        if ret:
            ftrace.ftrace_set_filter_ip(k, ops, func, True, ctx)
            return ret
    k.kprobe_cnt[name] += 1
    return 0


def _disarm(k: Kernel, name: str, func: str, ctx: Counters) -> int:
    """__disarm_kprobe_ftrace(): the count at 1 unregisters the ops (a failure is a WARN and stops
    here), then the count drops and the filter ip goes (a failure: WARN_ONCE)."""
    ops = shared_ops(k, name)
    if k.kprobe_cnt[name] == 1:
        if ops.funcs - {func}:
            ctx.unreg_under = name                # other functions' probes lose the ops with it
        ret = ftrace.unregister_ftrace_function(k, ops, ctx)
        if k.oops:
            return ret or int(Errno.EBUSY)
        if ret:
            ctx.warn(DISARM_WARN, f"WARN (Failed to unregister kprobe-ftrace, {Errno.name_of(ret)})")
            return ret
    k.kprobe_cnt[name] -= 1
    ret = ftrace.ftrace_set_filter_ip(k, ops, func, True, ctx)
    if ret:
        ctx.warn(DISARM_WARN, f"WARN_ONCE (Failed to disarm kprobe-ftrace, {Errno.name_of(ret)})")
        if func in ops.funcs:
            ctx.irregular = True              # the count dropped, the filter ip stayed
    return ret


# -- the mechanism: attach, detach, attached ----------------------------------------------------------

def attach(k: Kernel, handle: str, consumer: Consumer, func: str, ctx: Counters) -> int:
    """register_kprobe(): join the aggregate on this address, or arm a new probe."""
    if consumer.needs_error_injection and not k.injectable(func):
        ctx.note(f"{func}() is not on the error-injection list")
        # fail_function.c fei_write() answers -ERANGE; perf_event_attach_bpf_prog() -EINVAL
        return int(Errno.ERANGE if consumer.name == "fail-function" else Errno.EINVAL)
    if consumer.name == "fail-function" and any(
            h.consumer == "fail-function" for h in k.live_on(func).values()):
        ctx.note("fei_write(): -EBUSY, the function is injected already")
        return int(Errno.EBUSY)
    if func in k.probes:
        name, members, post = k.probes[func]
        members.insert(0, handle)                # add_new_kprobe(): list_add_rcu, no re-arming
        k.probes[func] = (name, members, post or consumer.post_handler)
        ctx.note(f"register_aggr_kprobe(): joined the probe at this address, still on {name}")
        return 0
    name = IPMODIFY_OPS if consumer.post_handler else FTRACE_OPS   # arm_kprobe_ftrace()
    ret = _arm(k, name, func, ctx)
    if ret and k.policy.kprobe_arm_error_dropped:
        # __register_kprobe() (6.14+, 54c79390119d): the probe leaves kprobe_table again, 0 is returned;
        # a later probe at this address does not find it and arms afresh
        ctx.note(f"register_kprobe(): arming failed ({Errno.name_of(ret)}) but 0 is returned (54c79390119d)")
        k.unarmed.add(handle)
        return 0
    if ret:
        return ret
    k.probes[func] = (name, [handle], consumer.post_handler)
    return 0


def disarm_ops(k: Kernel, func: str) -> str | None:
    """The shared ops the probe at ``func`` is disarmed from when its last member goes (None: no probe):
    disarm_kprobe_ftrace() picks it by the aggregate's post_handler (kprobe_aggr_keeps_post), which can
    name the other ops than the one it is armed on; a fixed kprobes disarms from where it armed."""
    if func not in k.probes:
        return None
    name, _, post = k.probes[func]
    return (IPMODIFY_OPS if post else FTRACE_OPS) if k.policy.kprobe_aggr_keeps_post else name


def detach(k: Kernel, handle: str, func: str, ctx: Counters) -> int:
    """unregister_kprobe() (void: the caller is told nothing).  The last member disarms the aggregate
    from the ops its post_handler names; if that fails the probe stays armed and in kprobe_table with
    its module gone."""
    if handle in k.unarmed:              # __get_valid_kprobe() finds nothing: nothing to undo
        k.unarmed.discard(handle)
        return 0
    name, members, post = k.probes[func]
    if len(members) > 1:
        members.remove(handle)
        return 0
    disarm = disarm_ops(k, func)
    if disarm != name:
        ctx.note(f"disarm_kprobe_ftrace(): the aggregate is armed on {name} but its post_handler names {disarm}")
    ret = _disarm(k, disarm, func, ctx)
    if ret:
        k.probes[func] = (name, members, post)
        k.zombies.add(func)                          # still armed, its handlers' module unloaded
        ctx.note(f"unregister_kprobe(): the probe stays armed on {name}; its module is unloaded")
        return 0
    if disarm != name:                                # cannot happen: the filter ip was never there
        raise AssertionError("disarmed from the wrong ops")
    del k.probes[func]
    return 0


def attached(k: Kernel, h) -> bool:
    if h.name in k.unarmed or h.func in k.zombies:
        return False
    entry = k.probes.get(h.func)
    rec = k.records.get(h.func)
    if not entry or rec is None or h.name not in entry[1]:
        return False
    ops = k.kprobe_ops[entry[0]]
    return ops.enabled and h.func in ops.funcs and ops in rec.ops
