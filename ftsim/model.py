"""The model's front door: attach, detach and call steps on one modelled kernel under one policy.

    m = Model(policies.get("merged", kernel="6.1.192"))
    m.attach("livepatch", "cmdline_proc_show", "lp")   # -> Step(ret=0, record={'count': 1, 'flags': 'I'})

After a kernel oops nothing runs: every later step is reported with ``ret`` None and the oops named.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from . import call as calls
from . import consumers, invariants
from .call import CallOutcome
from .errors import FtsimError, bad
from .flags import Errno
from .functions import is_injectable
from .mechanisms import MECHANISMS
from .policy import Policy
from .state import Counters, Handle, Kernel


@dataclass
class Step:
    """One step's outcome; `as_json()` gives the keys of `ftsim scenario --json`."""
    step: int
    op: str
    consumer: str | None
    function: str
    handle: str | None
    ret: int | None
    attached: bool | None
    callbacks: int
    retries: int
    regenerations: int
    record: dict
    violations: list[str]
    notes: list[str] = field(default_factory=list)
    call: CallOutcome | None = None
    warns: list[str] = field(default_factory=list)
    #: ran | oops (this step oopsed the kernel) | not run (an earlier step did)
    outcome: str = "ran"

    def as_json(self) -> dict:
        # shallow: asdict() would deep-copy the CallOutcome only to drop it
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("call", "notes")}
        d["record"], d["violations"], d["warns"] = dict(self.record), list(self.violations), list(self.warns)
        d["reason"] = "; ".join(self.notes)
        if self.call is not None:
            c = self.call
            d.update(body_ran=c.body_ran, result_from=c.result_from, fired=list(c.fired),
                     attributed_to=dict(c.attributed_to), ip_seen=dict(c.ip_seen),
                     return_seen=dict(c.return_seen))
        return d

    @property
    def ret_name(self) -> str:
        return Errno.name_of(self.ret)


class Model:
    """A modelled kernel: consumers attach and detach by handle, functions are called."""

    def __init__(self, policy: Policy, injectable=is_injectable, kernel: Kernel | None = None):
        self.policy = policy
        self.kernel = kernel if kernel is not None else Kernel(policy, injectable)
        self.steps = 0
        self.last_ctx = Counters()      # the last step's counters (the batch engine reads its scans)

    # -- steps -------------------------------------------------------------------------------
    def attach(self, consumer: str, function: str, handle: str | None = None) -> Step:
        c = consumers.check_available(consumer, self.policy)
        handle = handle or self.free_handle(consumer)
        if handle in self.kernel.handles:
            raise bad("handle", handle, "a name not used before in this scenario")
        h = self.kernel.handles[handle] = Handle(handle, consumer, function)
        if self.kernel.oops:
            h.detached = True
            return self._not_run("attach", consumer, function, handle)
        ctx = Counters()
        ret = MECHANISMS[c.mechanism].attach(self.kernel, h, c, ctx)
        if self.kernel.oops:
            ret = None
        h.told = ret
        if ret == 0:
            self.kernel.live.setdefault(function, {})[handle] = h
        else:
            h.detached = True                      # nothing to detach later
        return self._step("attach", consumer, function, handle, ret, ctx)

    def detach(self, handle: str) -> Step:
        h = self.kernel.handles.get(handle)
        if h is None:
            raise bad("handle", handle, sorted(self.live_handles()) or "no handle is attached")
        if h.detached and h.told == 0:
            raise FtsimError(f"handle: {handle!r} is detached already")
        if self.kernel.oops:
            h.detached = True
            self.kernel.live.get(h.func, {}).pop(handle, None)
            return self._not_run("detach", h.consumer, h.func, handle)
        ctx = Counters()
        if h.detached:                              # its attach failed: nothing to unregister
            ctx.note(f"{handle} was never attached (attach returned {Errno.name_of(h.told)})")
            return self._step("detach", h.consumer, h.func, handle, int(Errno.ENOENT), ctx)
        mech = MECHANISMS[consumers.get(h.consumer).mechanism]
        ret = mech.detach(self.kernel, h, ctx)
        h.detached = True
        self.kernel.live[h.func].pop(handle, None)
        return self._step("detach", h.consumer, h.func, handle, None if self.kernel.oops else ret, ctx)

    def call(self, function: str) -> Step:
        if self.kernel.oops:
            return self._not_run("call", None, function, None)
        ctx = Counters()
        out = calls.apply(self.kernel, function, ctx)
        return self._step("call", None, function, None, None, ctx, outcome=out)

    # -- queries -----------------------------------------------------------------------------
    def simulate(self, function: str) -> CallOutcome:
        return calls.simulate(self.kernel, function)

    def attached(self, handle: str) -> bool:
        """Is the consumer's effect really wired into the function (not what its caller was told)?"""
        h = self.kernel.handles[handle]
        if h.detached or self.kernel.oops:
            return False
        return MECHANISMS[consumers.get(h.consumer).mechanism].attached(self.kernel, h)

    def live_handles(self) -> list[str]:
        return [n for n, h in self.kernel.handles.items() if not h.detached]

    def free_handle(self, consumer: str) -> str:
        if consumer not in self.kernel.handles:
            return consumer
        n = 2
        while f"{consumer}-{n}" in self.kernel.handles:
            n += 1
        return f"{consumer}-{n}"

    def line(self, function: str) -> dict:
        return self.kernel.line(function)

    def _not_run(self, op, consumer, function, handle) -> Step:
        self.steps += 1
        self.last_ctx = Counters()
        return Step(self.steps, op, consumer, function, handle, None, None, 0, 0, 0, {"count": 0, "flags": ""},
                    [], [f"not run: the kernel oopsed ({self.kernel.oops})"], outcome="not run")

    def _step(self, op, consumer, function, handle, ret, ctx: Counters, outcome=None) -> Step:
        self.steps += 1
        self.last_ctx = ctx
        if not ctx.notes and op != "call":
            entry = MECHANISMS[consumers.get(consumer).mechanism].entry
            ctx.note(f"{entry[op == 'detach']}: no conflict" if ret == 0 else Errno.name_of(ret))
        attached = self.attached(handle) if handle else None
        violations = invariants.check(self, function, outcome, ctx.warns)
        return Step(self.steps, op, consumer, function, handle, ret, attached, ctx.callbacks, ctx.retries,
                    ctx.regenerations, self.line(function), violations, ctx.notes, outcome, list(ctx.warns),
                    "oops" if self.kernel.oops else "ran")     # a step that runs on an oopsed kernel caused it
