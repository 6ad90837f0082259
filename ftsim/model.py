"""The model's front door: attach, detach and call steps on one modelled kernel under one policy.

    m = Model(policies.get("merged", kernel="6.1"))
    m.attach("livepatch", "cmdline_proc_show", "lp")   # -> Step(ret=0, record={'count': 1, 'flags': 'I'})
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from . import bpf, consumers, invariants, kprobes, livepatch
from . import ftrace
from .call import CallOutcome, simulate
from .consumers import BPF, DIRECT, KLP, KPROBE, LIST, ops_flags
from .errors import FtsimError, bad
from .flags import Errno
from .functions import is_injectable
from .policy import Policy
from .state import Counters, Handle, Kernel, Ops


_ENTRY = {  # the kernel entry points each mechanism attaches and detaches through
    KLP: ("klp_patch_func()", "klp_unpatch_func()"),
    KPROBE: ("register_kprobe()", "unregister_kprobe()"),
    BPF: ("bpf_trampoline_link_prog()", "bpf_trampoline_unlink_prog()"),
    DIRECT: ("register_ftrace_direct()", "unregister_ftrace_direct()"),
    LIST: ("register_ftrace_function()", "unregister_ftrace_function()"),
}


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

    def as_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("call", "notes")}
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

    def __init__(self, policy: Policy, injectable=is_injectable):
        self.policy = policy
        self.kernel = Kernel(policy, injectable)
        self.steps = 0

    # -- steps -------------------------------------------------------------------------------
    def attach(self, consumer: str, function: str, handle: str | None = None) -> Step:
        c = consumers.get(consumer)
        handle = handle or self.free_handle(consumer)
        if handle in self.kernel.handles:
            raise bad("handle", handle, "a name not used before in this scenario")
        ctx = Counters()
        h = self.kernel.handles[handle] = Handle(handle, consumer, function)
        if c.mechanism == KLP:
            ret = livepatch.attach(self.kernel, handle, function, ctx)
        elif c.mechanism == KPROBE:
            ret = kprobes.attach(self.kernel, handle, c, function, ctx)
        elif c.mechanism == BPF:
            ret = bpf.attach(self.kernel, handle, c, function, ctx)
        else:
            flags = ops_flags(c, direct_carries_ipmodify=self.policy.direct_carries_ipmodify)
            h.ops = Ops(f"{consumer}:{handle}", flags, funcs={function})
            if c.mechanism == DIRECT:
                ret = ftrace.register_ftrace_direct(self.kernel, h.ops, function, ctx)
            else:
                ret = ftrace.register_ftrace_function(self.kernel, h.ops, ctx)
        h.told = ret
        if ret:
            h.detached = True                      # nothing to detach later
        else:
            self.kernel.live.setdefault(function, {})[handle] = h
        return self._step("attach", consumer, function, handle, ret, ctx)

    def detach(self, handle: str) -> Step:
        h = self.kernel.handles.get(handle)
        if h is None:
            raise bad("handle", handle, sorted(self.live_handles()) or "no handle is attached")
        if h.detached and h.told == 0:
            raise FtsimError(f"handle: {handle!r} is detached already")
        ctx = Counters()
        if h.detached:                              # its attach failed: nothing to unregister
            ctx.note(f"{handle} was never attached (attach returned {Errno.name_of(h.told)})")
            return self._step("detach", h.consumer, h.func, handle, int(Errno.ENOENT), ctx)
        mech = consumers.get(h.consumer).mechanism
        k = self.kernel
        if mech == KLP:
            ret = livepatch.detach(k, handle, h.func, ctx)
        elif mech == KPROBE:
            ret = kprobes.detach(k, handle, h.func, ctx)
        elif mech == BPF:
            ret = bpf.detach(k, handle, h.func, ctx)
        elif mech == DIRECT:
            ret = ftrace.unregister_ftrace_direct(k, h.ops, h.func, ctx)
        else:
            ret = ftrace.unregister_ftrace_function(k, h.ops, ctx)
        h.detached = True
        self.kernel.live[h.func].pop(handle, None)
        return self._step("detach", h.consumer, h.func, handle, ret, ctx)

    def call(self, function: str) -> Step:
        out = simulate(self.kernel, function)
        return self._step("call", None, function, None, None, Counters(), outcome=out)

    # -- queries -----------------------------------------------------------------------------
    def simulate(self, function: str) -> CallOutcome:
        return simulate(self.kernel, function)

    def attached(self, handle: str) -> bool:
        """Is the consumer's effect really wired into the function (not what its caller was told)?"""
        k = self.kernel
        h = k.handles[handle]
        if h.detached:
            return False
        rec = k.records.get(h.func)
        mech = consumers.get(h.consumer).mechanism
        if mech == KLP:
            entry = k.klp.get(h.func)
            return bool(entry and handle in entry[1] and rec and entry[0] in rec.ops)
        if mech == KPROBE:
            ops = kprobes.ops_of(k, h.func)
            return bool(ops and handle in k.probes[h.func][1] and rec and ops in rec.ops)
        if mech == BPF:
            tr = k.tramps.get(h.func)
            return bool(tr and rec and rec.direct is tr.ops and any(p.handle == handle for p in tr.live_progs))
        if mech == DIRECT:
            return bool(rec and rec.direct is h.ops)
        return bool(rec and h.ops in rec.ops)

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

    def _step(self, op, consumer, function, handle, ret, ctx: Counters, outcome=None) -> Step:
        self.steps += 1
        if not ctx.notes and op != "call":
            mech = consumers.get(consumer).mechanism
            ctx.note(f"{_ENTRY[mech][op == 'detach']}: no conflict" if ret == 0 else Errno.name_of(ret))
        attached = self.attached(handle) if handle else None
        violations = invariants.check(self, function, outcome)
        return Step(self.steps, op, consumer, function, handle, ret, attached, ctx.callbacks, ctx.retries,
                    ctx.regenerations, self.line(function), violations, ctx.notes, outcome)
