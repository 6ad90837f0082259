"""The model's state: ftrace ops, per-function records, what each consumer owns, and ftrace's health.

Nothing here decides anything; the rules live in ftrace.py, kprobes.py, livepatch.py, bpf.py and
plainops.py.  An ops carries what the kernel's ``struct ftrace_ops`` carries: its flags, its filter,
its handler (``func``, None once the owner cleared it) and its owner's callback (``ops_func``), so
ftrace calls the owner without knowing who it is.

``encode()`` / ``decode()`` are the one serialisation of a kernel: a tuple of plain values, equal
for two kernels that differ only in handle names (renamed in order of first appearance) and in
absolute ops sequence numbers (replaced by their rank).  The explorer uses it as its state key, the
batch engine as its per-function state and its snapshot.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .flags import OpsFlag, TrampFlag
from .policy import Policy

#: kinds of ops (who owns it, and so which handler runs at a call): see consumers.py
KINDS = ("klp", "kprobe", "list", "bpf", "direct", "shared")


@dataclass(eq=False)
class Ops:
    """A `struct ftrace_ops`.  Lifecycle: created -> filter set (``funcs``) -> registered
    (``enabled``, placed at the head of ftrace_ops_list: ``seq``) -> unregistered; after
    ``ftrace_kill()`` an unregister fails and the ops stays on the list (``zombie`` once its owner's
    memory is freed)."""
    name: str
    kind: str
    flags: OpsFlag
    ops_func: Callable | None = None   # the owner's answer to FTRACE_OPS_CMD_* (bpf_tramp_ftrace_ops_func)
    has_func: bool = True              # ops->func set; False after 6.1's -EAGAIN block cleared it
    funcs: set[str] = field(default_factory=set)
    enabled: bool = False
    seq: int = -1                      # add_ftrace_ops() puts an ops at the head: larger = newer = runs first
    zombie: bool = False               # still on ftrace_ops_list, its owner gone (module unloaded, ops freed)

    def __repr__(self):
        return f"Ops({self.name})"


@dataclass(eq=False)
class Record:
    """A `struct dyn_ftrace`: what enabled_functions shows for one function."""
    func: str
    ops: list[Ops] = field(default_factory=list)
    ipmodify: bool = False       # FTRACE_FL_IPMODIFY
    direct: Ops | None = None    # FTRACE_FL_DIRECT + the direct_functions entry
    modified: bool = False       # FTRACE_FL_MODIFIED (sticky "M")
    stale_direct: bool = False   # a direct_functions entry left by a failed register (d05cb470663a)

    @property
    def count(self) -> int:
        return len(self.ops)

    def recompute_ipmodify(self):
        """FTRACE_FL_IPMODIFY after an ops left: set while any IPMODIFY ops remains."""
        self.ipmodify = any(OpsFlag.IPMODIFY in o.flags for o in self.ops)

    def letters(self, with_m: bool) -> str:
        s = ""
        if any(OpsFlag.SAVE_REGS in o.flags for o in self.ops):
            s += "R"
        if self.ipmodify:
            s += "I"
        if self.direct is not None:
            s += "D"
        if with_m and self.modified:
            s += "M"
        return s


@dataclass
class Prog:
    handle: str
    kind: str          # fentry | fexit | fmod_ret | fsession
    skips: bool        # fmod_ret returning non-zero
    multi: bool = False   # a tracing_multi link (7.x): one add/modify per link, no retry


@dataclass(eq=False)
class Trampoline:
    """A `struct bpf_trampoline`: its programs (newest first, as the hlist keeps them), its work flags
    (`tr->flags`), and the image that is live (flags and programs as built; None: no cur_image)."""
    func: str
    ops: Ops
    progs: list[Prog] = field(default_factory=list)
    flags: TrampFlag = TrampFlag.NONE
    live_flags: TrampFlag | None = None
    live_progs: list[Prog] = field(default_factory=list)
    registered: bool = False     # its ip is in the (shared or own) direct ops' filter
    sticky_orig_stack: bool = False   # Song v2: tr->indirect_call, ORIG_STACK for every later image


@dataclass
class Handle:
    """What one `attach` step made: the consumer, where, what the caller was told, what it owns."""
    name: str
    consumer: str
    func: str
    told: int | None = None
    detached: bool = False
    ops: Ops | None = None          # list / direct consumers: their own ops


@dataclass
class Counters:
    """What one step cost and met: ops_func callbacks from ftrace, -EAGAIN retries, trampoline images
    built, the WARN sites reached (``file:function``), notes for the step's reason."""
    callbacks: int = 0
    retries: int = 0
    regenerations: int = 0
    warns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    passes: list[str] = field(default_factory=list)   # where each SELF scan of a shared ops stopped
    irregular: bool = False   # a cross-function effect the batch engine does not carry (it reruns the row)
    unreg_under: str | None = None   # a shared kprobe ops unregistered while others are in its filter

    def note(self, text: str):
        self.notes.append(text)

    def warn(self, site: str, what: str = "WARN"):
        """A WARN/WARN_ON_ONCE/BUG site the step reached (NoWarn), named ``file:function``."""
        self.warns.append(site)
        self.notes.append(f"{what} at {site}")


class Kernel:
    """All state of one modelled kernel under one policy."""

    def __init__(self, policy: Policy, injectable=None):
        self.policy = policy
        self.records: dict[str, Record] = {}
        self.handles: dict[str, Handle] = {}
        self.live: dict[str, dict[str, Handle]] = {}   # func -> handles told 0 and not detached
        self.kprobe_ops: dict[str, Ops] = {}
        self.kprobe_cnt: dict[str, int] = {}
        self.probes: dict[str, tuple[str, list[str], bool]] = {}  # func -> (armed on, members newest first, post)
        self.unarmed: set[str] = set()        # handles of probes told 0 while arming failed: in no table
        self.zombies: set[str] = set()        # functions whose kprobe stays armed after its module left
        self.klp: dict[str, tuple[Ops, list[str]]] = {}       # func -> (klp_ops, func_stack newest first)
        self.tramps: dict[str, Trampoline] = {}
        self.shared: dict[str, Ops] = {}      # shared ops by name: the 7.x BPF direct_ops, fprobe/graph ops
        self.dead = False                     # ftrace_disabled: ftrace_kill() ran
        self.oops: str | None = None          # the site of a kernel oops: nothing runs after it
        self._seq = 0
        self.injectable = injectable if injectable is not None else (lambda func: True)

    def record(self, func: str) -> Record:
        rec = self.records.get(func)
        if rec is None:
            rec = self.records[func] = Record(func)
        return rec

    def live_on(self, func: str) -> dict[str, Handle]:
        return self.live.get(func, {})

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def line(self, func: str) -> dict:
        """The function's enabled_functions line as {'count': N, 'flags': 'RIDM'} (count 0: no line;
        a killed ftrace refuses to show the file: no line)."""
        rec = self.records.get(func)
        if rec is None or self.dead:
            return {"count": 0, "flags": ""}
        return {"count": rec.count, "flags": rec.letters(self.policy.modified_flag) if rec.count else ""}


# -- the one serialisation ----------------------------------------------------------------------

def _all_ops(k: Kernel) -> dict[int, Ops]:
    out: dict[int, Ops] = {}
    for rec in k.records.values():
        for o in rec.ops:
            out[id(o)] = o
        if rec.direct is not None:
            out[id(rec.direct)] = rec.direct
    for o, _ in k.klp.values():
        out[id(o)] = o
    for o in list(k.kprobe_ops.values()) + list(k.shared.values()):
        if o.enabled or o.funcs or o.zombie or not o.has_func or (o.kind == "kprobe" and k.kprobe_cnt.get(o.name)):
            out[id(o)] = o                # an unused global ops is no state: it is made again on first use
    for tr in k.tramps.values():
        out[id(tr.ops)] = tr.ops
    for h in k.handles.values():
        if h.ops is not None:
            out[id(h.ops)] = h.ops
    return out


def referenced(k: Kernel) -> set[str]:
    """Handles the kernel's structures still name (a zombie probe keeps its members, say)."""
    out = set(k.unarmed)
    for _, members, _ in k.probes.values():
        out.update(members)
    for _, stack in k.klp.values():
        out.update(stack)
    for tr in k.tramps.values():
        out.update(p.handle for p in tr.progs)
        out.update(p.handle for p in tr.live_progs)
    return out


def encode(k: Kernel, rename: bool = True, funcs: dict[str, str] | None = None) -> tuple:
    """The kernel as nested tuples of plain values (see the module docstring).

    ``rename``: handles become ``consumer#N`` in order of first appearance, and detached or refused
    handles are left out (nothing reads them); otherwise names are kept.  ``funcs``: rename
    functions (for symmetry reduction), e.g. {"f2": "f0"}."""
    fn = (lambda f: funcs.get(f, f)) if funcs else (lambda f: f)
    names: dict[str, str] = {}
    used = referenced(k)
    handles = [h for h in k.handles.values() if not (rename and h.detached and h.name not in used)]

    def H(handle: str) -> str:
        if not rename:
            return handle
        if handle not in names:
            names[handle] = f"{k.handles[handle].consumer}#{len(names)}"
        return names[handle]

    ops = _all_ops(k)
    owner = {id(h.ops): h.name for h in handles if h.ops is not None}
    rank = {s: i for i, s in enumerate(sorted({o.seq for o in ops.values()}))}
    if rename:                    # names by role, not by history: consumer, function, place in its lists
        place: dict[str, int] = {}
        for _, members, _ in k.probes.values():
            place.update((h, i) for i, h in enumerate(members))
        for _, stack in k.klp.values():
            place.update((h, i) for i, h in enumerate(stack))
        for tr in k.tramps.values():
            place.update((p.handle, i) for i, p in enumerate(tr.progs))
        for h in sorted(handles, key=lambda h: (h.consumer, fn(h.func), h.detached, h.told is None, h.told or 0,
                                                -1 if h.ops is None else rank.get(h.ops.seq, -1),
                                                place.get(h.name, -1), h.name in k.unarmed)):
            H(h.name)

    def oname(o: Ops) -> str:
        if id(o) in owner:
            return f"{o.name.split(':', 1)[0]}:{H(owner[id(o)])}"
        if ":" in o.name and o.kind in ("klp", "bpf"):
            kind, f = o.name.split(":", 1)
            return f"{kind}:{fn(f)}"
        return o.name

    def O(o: Ops | None):
        if o is None:
            return None
        return (oname(o), o.kind, o.flags.value, o.ops_func is not None, o.has_func,
                tuple(sorted(fn(f) for f in o.funcs)), o.enabled, rank[o.seq], o.zombie)

    order = sorted(k.records, key=fn)
    recs = []
    for f in order:
        r = k.records[f]
        if not r.ops and r.direct is None and not (r.ipmodify or r.modified or r.stale_direct):
            continue
        recs.append((fn(f), tuple(oname(o) for o in sorted(r.ops, key=lambda o: o.seq)), r.ipmodify,
                     None if r.direct is None else oname(r.direct), r.modified, r.stale_direct))
    all_ops = tuple(sorted(O(o) for o in ops.values()))
    klp = tuple(sorted((fn(f), oname(o), tuple(H(h) for h in stack)) for f, (o, stack) in k.klp.items()))
    probes = tuple(sorted((fn(f), on, tuple(H(h) for h in members), post)
                          for f, (on, members, post) in k.probes.items()))
    kcnt = tuple(sorted((n, c) for n, c in k.kprobe_cnt.items() if c or k.kprobe_ops[n].enabled
                        or k.kprobe_ops[n].funcs))
    tramps = tuple(sorted((fn(f), oname(t.ops), tuple((H(p.handle), p.kind, p.skips, p.multi) for p in t.progs),
                           t.flags.value, None if t.live_flags is None else t.live_flags.value,
                           tuple((H(p.handle), p.kind, p.skips, p.multi) for p in t.live_progs), t.registered,
                           t.sticky_orig_stack)
                          for f, t in k.tramps.items()))
    hs = tuple(sorted((H(h.name), h.consumer, fn(h.func), h.told, h.detached,
                       None if h.ops is None else oname(h.ops)) for h in handles))
    unarmed = tuple(sorted(H(h) for h in k.unarmed))
    zombies = tuple(sorted(fn(f) for f in k.zombies))
    return (all_ops, tuple(recs), klp, probes, kcnt, tramps, hs, unarmed, zombies, k.dead, k.oops)


def decode(state: tuple, policy: Policy, ops_funcs: dict[str, Callable], injectable=None) -> Kernel:
    """A kernel equal (up to renaming) to the one ``encode`` described; seq numbers are the ranks.
    ``ops_funcs``: the owners' callbacks by ops kind (``model.OPS_FUNCS``)."""
    all_ops, recs, klp, probes, kcnt, tramps, hs, unarmed, zombies, dead, oops = state
    k = Kernel(policy, injectable)
    ops: dict[str, Ops] = {}
    for name, kind, flags, has_ops_func, has_func, funcs, enabled, seq, zombie in all_ops:
        ops[name] = Ops(name, kind, OpsFlag(flags), ops_funcs[kind] if has_ops_func else None, has_func,
                        set(funcs), enabled, seq, zombie)
    k._seq = max((o.seq for o in ops.values()), default=0) + 1
    for f, onames, ipm, direct, modified, stale in recs:
        k.records[f] = Record(f, [ops[n] for n in onames], ipm, None if direct is None else ops[direct],
                              modified, stale)
    for f, oname, stack in klp:
        k.klp[f] = (ops[oname], list(stack))
    for f, on, members, post in probes:
        k.probes[f] = (on, list(members), post)
    for n, o in ops.items():
        if o.kind == "kprobe":
            k.kprobe_ops[n] = o
            k.kprobe_cnt[n] = 0
        elif o.kind == "shared" or (o.kind == "bpf" and ":" not in n):
            k.shared[n] = o
    for n, c in kcnt:
        k.kprobe_cnt[n] = c
    for f, oname, progs, flags, live, live_progs, registered, sticky in tramps:
        tr = Trampoline(f, ops[oname], [Prog(*p) for p in progs], TrampFlag(flags),
                        None if live is None else TrampFlag(live), [Prog(*p) for p in live_progs], registered,
                        sticky)
        k.tramps[f] = tr
    for name, consumer, f, told, detached, oname in hs:
        h = Handle(name, consumer, f, told, detached, None if oname is None else ops[oname])
        k.handles[name] = h
        if told == 0 and not detached:
            k.live.setdefault(f, {})[name] = h
    k.unarmed = set(unarmed)
    k.zombies = set(zombies)
    k.dead, k.oops = dead, oops
    return k
