"""kprobes on ftrace: every probe shares one of two global ops (kernel/kprobes.c).

`kprobe_ipmodify_ops` (IPMODIFY|SAVE_REGS) serves probes with a post_handler, `kprobe_ftrace_ops`
(SAVE_REGS) the rest; each is registered when its count goes 0 -> 1 and otherwise only gains a
filter ip.  Probes on one address aggregate; the aggregate stays on the ops its first probe chose.
"""
from __future__ import annotations

from . import ftrace
from .consumers import Consumer
from .flags import Errno, OpsFlag
from .state import Counters, Kernel, Ops

FTRACE_OPS, IPMODIFY_OPS = "kprobe_ftrace_ops", "kprobe_ipmodify_ops"


def _ops(k: Kernel, name: str) -> Ops:
    if name not in k.kprobe_ops:
        flags = OpsFlag.SAVE_REGS | (OpsFlag.IPMODIFY if name == IPMODIFY_OPS else OpsFlag.NONE)
        k.kprobe_ops[name] = Ops(name, flags)
        k.kprobe_cnt[name] = 0
    return k.kprobe_ops[name]


def _arm(k: Kernel, name: str, func: str, ctx: Counters) -> int:
    """__arm_kprobe_ftrace(): set the filter ip, register the ops if it is the first probe."""
    ops = _ops(k, name)
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


def _disarm(k: Kernel, name: str, func: str, ctx: Counters):
    """__disarm_kprobe_ftrace(): the last probe unregisters the ops, then the filter ip goes."""
    ops = _ops(k, name)
    if k.kprobe_cnt[name] == 1:
        ftrace.unregister_ftrace_function(k, ops, ctx)
    k.kprobe_cnt[name] -= 1
    ftrace.ftrace_set_filter_ip(k, ops, func, True, ctx)


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
        k.probes[func][1].insert(0, handle)      # add_new_kprobe(): list_add_rcu, no re-arming
        ctx.note(f"register_aggr_kprobe(): joined the probe at this address, still on {k.probes[func][0]}")
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
    k.probes[func] = (name, [handle])
    return 0


def detach(k: Kernel, handle: str, func: str, ctx: Counters) -> int:
    if handle in k.unarmed:              # __get_valid_kprobe() finds nothing: nothing to undo
        k.unarmed.discard(handle)
        return 0
    name, members = k.probes[func]
    members.remove(handle)
    if not members:
        _disarm(k, name, func, ctx)
        del k.probes[func]
    return 0


def ops_of(k: Kernel, func: str) -> Ops | None:
    entry = k.probes.get(func)
    return k.kprobe_ops[entry[0]] if entry else None
