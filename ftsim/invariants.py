"""Named invariants, checked after every step and reported (never raised).

Each has a name a reader can search for.  `check()` returns the names broken in the current state of
the function a step touched (a step attaches, detaches or calls on one function only; a shared ops can
make a step change another function, which that function's next step reports), plus the two that
concern the step or the whole kernel: `NoWarn` and `FtraceAlive`.
"""
from __future__ import annotations

from .call import ORIG, CallOutcome
from .consumers import CATALOG, KLP
from .flags import OpsFlag

# -- safety of one function ------------------------------------------------------------------------
AT_MOST_ONE_IPMODIFY = "AtMostOneIPModify"
AT_MOST_ONE_DIRECT = "AtMostOneDirect"
NO_SILENT_BYPASS = "NoSilentBypass"
NO_SILENT_DISCARD = "NoSilentDiscard"
TOLD_IMPLIES_ATTACHED = "ToldImpliesAttached"
REFCOUNT_NON_NEGATIVE = "RefCountNonNegative"
# -- the kernel's health --------------------------------------------------------------------------
NO_WARN = "NoWarn"
FTRACE_ALIVE = "FtraceAlive"

#: name -> what it says (the order is the order of reports)
INVARIANTS = {
    AT_MOST_ONE_IPMODIFY: "at most one FTRACE_OPS_FL_IPMODIFY ops is attached to a function",
    AT_MOST_ONE_DIRECT: "at most one direct trampoline (FTRACE_OPS_FL_DIRECT ops) is attached to a function",
    NO_SILENT_BYPASS: "no call runs the original body while a livepatch on it reported success",
    NO_SILENT_DISCARD: "no ip write (livepatch redirect, override stub) by a consumer that reported success "
                       "is overwritten by another handler or ignored by a trampoline",
    TOLD_IMPLIES_ATTACHED: "every consumer told 0 and not detached is really attached",
    REFCOUNT_NON_NEGATIVE: "kprobe ops counts (kprobe_ftrace_enabled, kprobe_ipmodify_enabled) are never negative",
    NO_WARN: "no step reaches a WARN, WARN_ON_ONCE or BUG in the kernel source (the reason names the site)",
    FTRACE_ALIVE: "ftrace is not killed (ftrace_kill() has not run: ftrace_disabled is 0)",
}


def check(model, func: str | None, outcome: CallOutcome | None = None, warns=()) -> list[str]:
    """Invariants broken after a step on `func` (the call outcome is simulated if not given) that
    reached the WARN sites ``warns``."""
    k = model.kernel
    broken = []
    live = k.live_on(func) if func else {}          # handles told 0 and not detached
    rec = k.records.get(func) if func else None
    if rec is not None and not k.oops:
        if sum(OpsFlag.IPMODIFY in o.flags for o in rec.ops) > 1:
            broken.append(AT_MOST_ONE_IPMODIFY)
        if sum(OpsFlag.DIRECT in o.flags for o in rec.ops) > 1:
            broken.append(AT_MOST_ONE_DIRECT)
        out = outcome if outcome is not None else model.simulate(func)
        if out.oops is None:
            if out.body_ran == ORIG and any(CATALOG[h.consumer].mechanism == KLP for h in live.values()):
                broken.append(NO_SILENT_BYPASS)
            if any(h in live and _discarded(out, h, t) for h, t in out.ip_writes):
                broken.append(NO_SILENT_DISCARD)
    # a step changes attachment only on its own function, so the live handles there are enough; after
    # an oops nothing is attached any more, which NoWarn (the BUG) reports
    if not k.oops and any(not model.attached(h) for h in live):
        broken.append(TOLD_IMPLIES_ATTACHED)
    if any(c < 0 for c in k.kprobe_cnt.values()):
        broken.append(REFCOUNT_NON_NEGATIVE)
    if warns:
        broken.append(NO_WARN)
    if k.dead:
        broken.append(FTRACE_ALIVE)
    return broken


def _discarded(out: CallOutcome, handle: str, target: str) -> bool:
    if target != out.list_target:
        return True                                  # an older ip writer overwrote it
    if out.target != target:
        return not target == "new"                   # trampoline ignored it (a livepatch: NoSilentBypass)
    return False
