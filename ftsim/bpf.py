"""The BPF trampoline owner: programs on a function share one trampoline (kernel/bpf/trampoline.c).

`update()` is bpf_trampoline_update() with its `again:` loop; `ops_func()` answers ftrace's callbacks
(bpf_tramp_ftrace_ops_func() for the merged design, and the designs' variants).
"""
from __future__ import annotations

from . import ftrace
from .consumers import Consumer, ops_flags
from .flags import Errno, OpsCmd, TrampFlag
from .state import Counters, Kernel, Ops, Prog, Trampoline

OK, EAGAIN, EBUSY, EINVAL = 0, int(Errno.EAGAIN), int(Errno.EBUSY), int(Errno.EINVAL)
F = TrampFlag
MAX_AGAIN = 4   # the again: loop ends after one retry in every design; a bound keeps a bug finite


def attach(k: Kernel, handle: str, consumer: Consumer, func: str, ctx: Counters) -> int:
    """bpf_trampoline_link_prog(): add the program (hlist head: newest first), rebuild, undo on error."""
    if consumer.needs_error_injection and not k.injectable(func):
        ctx.note(f"{func}() is not modifiable: fmod_ret needs ALLOW_ERROR_INJECTION (bpf_check_attach_target)")
        return EINVAL
    tr = k.tramps.get(func)
    if tr is None:
        p = k.policy
        ops = Ops(f"bpf_trampoline:{func}", ops_flags(consumer, direct_carries_ipmodify=p.direct_carries_ipmodify),
                  has_ops_func=p.arbitration in ("ops_func", "ftrace_asks_owner", "flavors"))
        tr = k.tramps[func] = Trampoline(func, ops)
        ops.owner = tr
    prog = Prog(handle, consumer.bpf_kind, consumer.fmod_skips)
    tr.progs.insert(0, prog)
    ret = update(k, tr, ctx)
    if ret:
        tr.progs.remove(prog)
        if not tr.progs and tr.live_flags is None:
            del k.tramps[func]        # bpf_trampoline_put(): the last reference goes
    return ret


def detach(k: Kernel, handle: str, func: str, ctx: Counters) -> int:
    """bpf_trampoline_unlink_prog(): remove the program and rebuild (or unregister when none is left)."""
    tr = k.tramps.get(func)
    if tr is None:
        return OK
    tr.progs = [p for p in tr.progs if p.handle != handle]
    ret = update(k, tr, ctx)
    if not tr.progs:
        del k.tramps[func]
    return ret


def update(k: Kernel, tr: Trampoline, ctx: Counters) -> int:
    """bpf_trampoline_update(): compute tr->flags, build an image, register or modify, retry on -EAGAIN."""
    if not tr.progs:
        if tr.live_flags is not None:
            ftrace.unregister_ftrace_direct(k, tr.ops, tr.func, ctx)
            tr.live_flags, tr.live_progs = None, []
        return OK
    p = k.policy
    base = tr.flags & F.SHARE_IPMODIFY
    if any(pr.kind in ("fexit", "fmod_ret") for pr in tr.progs):
        base |= F.CALL_ORIG | F.SKIP_FRAME
    else:
        base |= F.RESTORE_REGS
    tr.flags = base
    err = OK
    for _ in range(MAX_AGAIN):
        # again: a trampoline that shares with IPMODIFY and calls the body follows the stack's ip
        if F.SHARE_IPMODIFY in tr.flags and F.CALL_ORIG in tr.flags:
            tr.flags |= F.ORIG_STACK
        ctx.regenerations += 1
        if tr.live_flags is not None:
            err = ftrace.modify_ftrace_direct(k, tr.ops, tr.func, ctx)
        else:
            err = ftrace.register_ftrace_direct(k, tr.ops, tr.func, ctx)
        if err == EAGAIN and p.arbitration in ("ops_func", "flavors"):
            ctx.retries += 1
            ctx.note("bpf_trampoline_update(): -EAGAIN, rebuild with BPF_TRAMP_F_SHARE_IPMODIFY and retry")
            if p.arbitration == "flavors":
                tr.flags |= F.SHARE_IPMODIFY     # Song: the owner rebuilds itself as flavor #3
            continue
        break
    if err == OK:
        tr.live_flags, tr.live_progs = tr.flags, list(tr.progs)
    return err


def flavor(k: Kernel, ops: Ops) -> int:
    """Song's flavor of a direct ops: 1 never shares, 2 calls the original body, 3 follows regs->ip."""
    tr = ops.owner
    if not ops.has_ops_func or tr is None:
        return 1
    if F.ORIG_STACK in tr.flags:
        return 3
    if F.CALL_ORIG not in tr.flags:
        return 3 if (F.SHARE_IPMODIFY in tr.flags or k.policy.fentry_only_declares_share) else 2
    return 2


def _safe(tr: Trampoline) -> bool:
    return F.CALL_ORIG not in tr.flags or F.ORIG_STACK in tr.flags


def ops_func(k: Kernel, tr: Trampoline, cmd: OpsCmd, ctx: Counters) -> int:
    """The trampoline's answer to ftrace (bpf_tramp_ftrace_ops_func() in 6.0+, variants otherwise).
    Lock contention on tr->mutex (the PEER trylock's -EAGAIN) is modelled in ftsim.locking."""
    if cmd is OpsCmd.ENABLE_SHARE_IPMODIFY_SELF:
        if F.CALL_ORIG in tr.flags and F.ORIG_STACK not in tr.flags:
            if F.SHARE_IPMODIFY in tr.flags:
                return EBUSY                      # WARN_ON_ONCE: the retry did not help
            tr.flags |= F.SHARE_IPMODIFY
            return EAGAIN                         # rebuild in bpf_trampoline_update()'s again: loop
        return OK                                 # fentry-only: SHARE_IPMODIFY stays clear
    if cmd is OpsCmd.ENABLE_SHARE_IPMODIFY_PEER:
        tr.flags |= F.SHARE_IPMODIFY
        if not _safe(tr):
            return update(k, tr, ctx)
        return OK
    if cmd in (OpsCmd.DISABLE_SHARE_IPMODIFY_PEER, OpsCmd.STOP_SHARE_WITH_IPMODIFY):
        tr.flags &= ~F.SHARE_IPMODIFY
        if F.ORIG_STACK in tr.flags:
            return update(k, tr, ctx)
        return OK
    if cmd is OpsCmd.SHARE_WITH_IPMODIFY:         # Rostedt's proposal
        if _safe(tr):
            tr.flags |= F.SHARE_IPMODIFY
            return OK
        if not k.policy.callback_may_regenerate:
            return EBUSY
        tr.flags |= F.SHARE_IPMODIFY
        if tr.live_flags is not None:
            return update(k, tr, ctx)             # IPMODIFY arrives second: rebuild the live image
        tr.flags |= F.ORIG_STACK                  # registering now: rebuild before answering yes
        ctx.regenerations += 1
        return OK
    raise AssertionError(cmd)
