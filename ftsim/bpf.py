"""The BPF trampoline owner: programs on a function share one trampoline (kernel/bpf/trampoline.c).

`update()` is bpf_trampoline_update() with its `again:` loop; `ops_func()` answers ftrace's callbacks
(bpf_tramp_ftrace_ops_func() for the merged design, and the designs' variants).  A trampoline is
registered through an ops of its own (register/modify/unregister_ftrace_direct, 6.0 to 6.19) or, with
``shared_direct_ops`` (7.0+, x86-64), through the one ``direct_ops`` every trampoline shares
(update_ftrace_direct_add/mod/del).  tracing_multi links build their trampolines first and then make
one add and one modify, with no retry.
"""
from __future__ import annotations

from . import ftrace
from .consumers import Consumer, ops_flags
from .flags import Errno, OpsCmd, TrampFlag
from .functions import fmod_ret_allowed
from .state import Counters, Kernel, Ops, Prog, Trampoline

OK, EAGAIN, EBUSY, EINVAL = 0, int(Errno.EAGAIN), int(Errno.EBUSY), int(Errno.EINVAL)
F = TrampFlag
MAX_AGAIN = 4   # the again: loop ends after one retry in every design; a bound keeps a bug finite
SHARED = "direct_ops"
SELF_WARN = "kernel/bpf/trampoline.c:bpf_tramp_ftrace_ops_func"
RELEASE_WARN = "kernel/bpf/syscall.c:bpf_tracing_link_release"


# -- the mechanism: attach, detach, attached ----------------------------------------------------------

def attach(k: Kernel, handle: str, consumer: Consumer, func: str, ctx: Counters) -> int:
    """bpf_trampoline_link_prog(): add the program (hlist head: newest first), rebuild, undo on error."""
    if consumer.bpf_kind == "fmod_ret" and not fmod_ret_allowed(func, k.injectable):
        ctx.note(f"{func}() is not modifiable: fmod_ret needs ALLOW_ERROR_INJECTION or a security_ hook "
                 "(check_attach_modify_return)")
        return EINVAL
    tr = _trampoline(k, func)
    prog = Prog(handle, consumer.bpf_kind, consumer.fmod_skips, consumer.multi)
    tr.progs.insert(0, prog)
    ret = attach_multi(k, tr, ctx) if consumer.multi else update(k, tr, ctx)
    if ret:
        tr.progs.remove(prog)
        _put(k, tr)
    return ret


def detach(k: Kernel, handle: str, func: str, ctx: Counters) -> int:
    """bpf_trampoline_unlink_prog() then bpf_trampoline_put(): the link's release is told nothing
    (close() returns 0); an error is only a WARN_ON_ONCE there."""
    tr = k.tramps.get(func)
    if tr is None:
        return OK
    gone = [p for p in tr.progs if p.handle == handle]
    tr.progs = [p for p in tr.progs if p.handle != handle]
    if k.policy.shared_direct_ops:
        # bpf_trampoline_remove_prog() patches every live image to skip the program (7.x)
        tr.live_progs = [p for p in tr.live_progs if p.handle != handle]
    ret = _detach_multi(k, tr, ctx) if gone and gone[0].multi else update(k, tr, ctx)
    if ret:
        ctx.warn(RELEASE_WARN, "WARN_ON_ONCE")
    _put(k, tr)
    return OK


def attached(k: Kernel, handle) -> bool:
    tr = k.tramps.get(handle.func)
    rec = k.records.get(handle.func)
    return bool(tr and rec and tr.registered and rec.direct is tr.ops and tr.ops.enabled
                and any(p.handle == handle.name for p in tr.live_progs))


def _trampoline(k: Kernel, func: str) -> Trampoline:
    tr = k.tramps.get(func)
    if tr is None:
        p = k.policy
        if p.shared_direct_ops:
            ops = k.shared.get(SHARED)
            if ops is None:
                ops = k.shared[SHARED] = Ops(SHARED, "bpf", ops_flags_bpf(k), ops_func)
        else:
            has_cb = p.arbitration in ("ops_func", "ftrace_asks_owner", "flavors")
            ops = Ops(f"bpf_trampoline:{func}", "bpf", ops_flags_bpf(k), ops_func if has_cb else None)
        tr = k.tramps[func] = Trampoline(func, ops)
    return tr


def ops_flags_bpf(k: Kernel):
    from .consumers import CATALOG
    return ops_flags(CATALOG["bpf-fentry"], direct_carries_ipmodify=k.policy.direct_carries_ipmodify)


def _put(k: Kernel, tr: Trampoline):
    """bpf_trampoline_put(): the last reference frees the trampoline (and, 6.x, its ops - even when a
    killed ftrace kept the ops registered: it stays on ftrace_ops_list, freed)."""
    if tr.progs or tr.live_flags is not None:
        return
    del k.tramps[tr.func]
    if tr.ops.enabled and not k.policy.shared_direct_ops:
        tr.ops.zombie = True                     # kfree(tr->fops): the record still lists it


# -- bpf_trampoline_update() ----------------------------------------------------------------------

def _flags_for(tr: Trampoline) -> TrampFlag:
    """Clear all but SHARE_IPMODIFY, then CALL_ORIG|SKIP_FRAME with fexit/fmod_ret (fsession has an exit
    node), else RESTORE_REGS."""
    base = tr.flags & F.SHARE_IPMODIFY
    if any(p.kind in ("fexit", "fmod_ret", "fsession") for p in tr.progs):
        return base | F.CALL_ORIG | F.SKIP_FRAME
    return base | F.RESTORE_REGS


def update(k: Kernel, tr: Trampoline, ctx: Counters) -> int:
    """bpf_trampoline_update(): compute tr->flags, build an image, register or modify, retry on -EAGAIN;
    on any error the previous flags come back."""
    p = k.policy
    orig = tr.flags
    if not tr.progs:
        if tr.live_flags is None:
            return OK
        err = _unregister(k, tr, ctx)
        tr.live_flags, tr.live_progs = None, []     # the image is put whatever unregister said
        if err:
            tr.flags = orig
        else:
            tr.registered = False
        return err
    tr.flags = _flags_for(tr)
    if tr.sticky_orig_stack:
        tr.flags |= F.SHARE_IPMODIFY              # Song v2: tr->indirect_call keeps ORIG_STACK
    err = OK
    for _ in range(MAX_AGAIN):
        # again: a trampoline that shares with IPMODIFY and calls the body follows the stack's ip
        if F.SHARE_IPMODIFY in tr.flags and F.CALL_ORIG in tr.flags:
            tr.flags |= F.ORIG_STACK
        ctx.regenerations += 1
        live = tr.live_flags is not None
        err = _modify(k, tr, ctx) if live else _register(k, tr, ctx)
        if k.oops:
            break
        if err == EAGAIN and p.arbitration in ("ops_func", "flavors"):
            if p.arbitration == "flavors" and live and p.modify_eagain == "refuse":
                ctx.warn("kernel/bpf/trampoline.c:bpf_trampoline_update (Song v2: WARN_ON_ONCE(tr->cur_image))",
                         "WARN_ON_ONCE")
                break
            ctx.retries += 1
            ctx.note("bpf_trampoline_update(): -EAGAIN, rebuild with BPF_TRAMP_F_SHARE_IPMODIFY and retry")
            if p.arbitration == "flavors":
                tr.flags |= F.SHARE_IPMODIFY     # Song: the owner rebuilds itself as flavor #3
                if not live and not p.fentry_only_declares_share and F.CALL_ORIG not in tr.flags:
                    tr.sticky_orig_stack = True
            elif p.again_clears_func:
                tr.ops.has_func = False          # "reset fops->func and fops->trampoline for re-register"
                note = p.note_unknown("again_clears_func")
                ctx.note("bpf_trampoline_update(): tr->fops->func = NULL before retrying (00963a2e75a8)"
                         + (f"; {note}" if note else ""))
            continue
        break
    if err == OK:
        tr.live_flags, tr.live_progs = tr.flags, list(tr.progs)
        tr.registered = True
    else:
        tr.flags = orig
    return err


def _register(k: Kernel, tr: Trampoline, ctx: Counters) -> int:
    if k.policy.shared_direct_ops:
        return ftrace.update_ftrace_direct_add(k, tr.ops, tr.func, ctx)
    return ftrace.register_ftrace_direct(k, tr.ops, tr.func, ctx)


def _modify(k: Kernel, tr: Trampoline, ctx: Counters) -> int:
    if k.policy.shared_direct_ops:
        return ftrace.update_ftrace_direct_mod(k, tr.ops, ctx)
    return ftrace.modify_ftrace_direct(k, tr.ops, tr.func, ctx)


def _unregister(k: Kernel, tr: Trampoline, ctx: Counters) -> int:
    if k.policy.shared_direct_ops:
        return ftrace.update_ftrace_direct_del(k, tr.ops, tr.func, ctx)
    return ftrace.unregister_ftrace_direct(k, tr.ops, tr.func, ctx)


# -- tracing_multi links (7.x) --------------------------------------------------------------------

def attach_multi(k: Kernel, tr: Trampoline, ctx: Counters) -> int:
    """bpf_trampoline_multi_attach() for one function: the image is built with trampoline_multi_ops
    (which only record the ip), then one update_ftrace_direct_add (a new trampoline) or _mod (a live
    one); an error (-EAGAIN included) unlinks and restores the old flags: no retry."""
    if not k.policy.tracing_multi:
        raise AssertionError("tracing_multi links on a kernel without them")
    old_flags, old_live = tr.flags, tr.live_flags
    tr.flags = _flags_for(tr)
    if F.SHARE_IPMODIFY in tr.flags and F.CALL_ORIG in tr.flags:
        tr.flags |= F.ORIG_STACK
    ctx.regenerations += 1
    err = _modify(k, tr, ctx) if old_live is not None else _register(k, tr, ctx)
    if err:
        ctx.note(f"bpf_trampoline_multi_attach(): {Errno.name_of(err)}, rollback_unlink restores the old "
                 "flags (no retry for tracing_multi links)")
        tr.flags = old_flags
        return err
    tr.live_flags, tr.live_progs = tr.flags, list(tr.progs)
    tr.registered = True
    return OK


def _detach_multi(k: Kernel, tr: Trampoline, ctx: Counters) -> int:
    """bpf_trampoline_multi_detach(): one del or mod, its error a WARN_ON_ONCE."""
    orig = tr.flags
    if not tr.progs:
        err = _unregister(k, tr, ctx)
        tr.live_flags, tr.live_progs = None, []
        tr.registered = tr.registered and bool(err)
        return err
    tr.flags = _flags_for(tr)
    if F.SHARE_IPMODIFY in tr.flags and F.CALL_ORIG in tr.flags:
        tr.flags |= F.ORIG_STACK
    ctx.regenerations += 1
    err = _modify(k, tr, ctx)
    if err:
        tr.flags = orig
    else:
        tr.live_flags, tr.live_progs = tr.flags, list(tr.progs)
    return err


# -- the owner's answers to ftrace ----------------------------------------------------------------

def _safe(tr: Trampoline) -> bool:
    return F.CALL_ORIG not in tr.flags or F.ORIG_STACK in tr.flags


def ops_func(k: Kernel, ops: Ops, func: str, cmd: OpsCmd, ctx: Counters | None) -> int:
    """The trampoline's answer to ftrace (bpf_tramp_ftrace_ops_func() in 6.0+: the ip names the
    trampoline, direct_ops_ip_lookup() in 7.x; and the designs' variants).  Lock contention on
    tr->mutex (the PEER trylock's -EAGAIN) is modelled in ftsim.locking."""
    tr = k.tramps.get(func)
    if tr is None or (cmd in (OpsCmd.ENABLE_SHARE_IPMODIFY_PEER, OpsCmd.DISABLE_SHARE_IPMODIFY_PEER)
                      and tr.live_flags is None):
        if cmd is OpsCmd.DECLARE_FLAVOR:
            return 1
        ftrace.oops(k, ctx, "kernel/bpf/trampoline.c:bpf_trampoline_update (NULL pointer dereference: the "
                            "trampoline's image is gone while its ops stays registered)")
        return EBUSY
    if cmd is OpsCmd.DECLARE_FLAVOR:         # Song: 1 never shares, 2 calls the original body, 3 follows regs->ip
        if F.ORIG_STACK in tr.flags or tr.sticky_orig_stack:
            return 3
        if F.CALL_ORIG not in _flags_for(tr):
            return 3 if (F.SHARE_IPMODIFY in tr.flags or k.policy.fentry_only_declares_share) else 2
        return 2
    if cmd is OpsCmd.ENABLE_SHARE_IPMODIFY_SELF:
        if F.CALL_ORIG in tr.flags and F.ORIG_STACK not in tr.flags:
            if F.SHARE_IPMODIFY in tr.flags:
                ctx.warn(SELF_WARN, "WARN_ON_ONCE")   # the retry did not help
                return EBUSY
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
