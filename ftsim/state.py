"""The model's state: ftrace ops, per-function records, and what each consumer owns.

Nothing here decides anything; the rules live in ftrace.py, kprobes.py, livepatch.py and bpf.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .flags import OpsFlag, TrampFlag
from .policy import Policy


@dataclass(eq=False)
class Ops:
    """A `struct ftrace_ops`: flags, filter hash (`funcs`), and its place in ftrace_ops_list."""
    name: str
    flags: OpsFlag
    has_ops_func: bool = False
    funcs: set[str] = field(default_factory=set)
    enabled: bool = False
    seq: int = -1            # add_ftrace_ops() puts an ops at the head: larger seq = newer = runs first
    owner: object = None     # the Trampoline of a BPF fops

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
    shared_ipmodify: bool = False  # Rostedt: ftrace's own record that a direct ops agreed to share

    @property
    def count(self) -> int:
        return len(self.ops)

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
    kind: str          # fentry | fexit | fmod_ret
    skips: bool        # fmod_ret returning non-zero


@dataclass(eq=False)
class Trampoline:
    """A `struct bpf_trampoline`: its programs (newest first, as the hlist keeps them), its work flags
    (`tr->flags`), and the image that is live (flags and programs as built)."""
    func: str
    ops: Ops
    progs: list[Prog] = field(default_factory=list)
    flags: TrampFlag = TrampFlag.NONE
    live_flags: TrampFlag | None = None      # None: no cur_image
    live_progs: list[Prog] = field(default_factory=list)


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
    """What one step cost: ops_func callbacks from ftrace, -EAGAIN retries, trampoline images built."""
    callbacks: int = 0
    retries: int = 0
    regenerations: int = 0
    notes: list[str] = field(default_factory=list)

    def note(self, text: str):
        self.notes.append(text)


class Kernel:
    """All state of one modelled kernel under one policy."""

    def __init__(self, policy: Policy, injectable=None):
        self.policy = policy
        self.records: dict[str, Record] = {}
        self.handles: dict[str, Handle] = {}
        self.live: dict[str, dict[str, Handle]] = {}   # func -> handles told 0 and not detached
        self.kprobe_ops: dict[str, Ops] = {}
        self.kprobe_cnt: dict[str, int] = {}
        self.probes: dict[str, tuple[str, list[str]]] = {}   # func -> (ops name, members newest first)
        self.unarmed: set[str] = set()        # handles of probes told 0 while arming failed: in no table
        self.klp: dict[str, tuple[Ops, list[str]]] = {}       # func -> (klp_ops, func_stack newest first)
        self.tramps: dict[str, Trampoline] = {}
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
        """The function's enabled_functions line as {'count': N, 'flags': 'RIDM'} (count 0: no line)."""
        rec = self.records.get(func)
        if rec is None:
            return {"count": 0, "flags": ""}
        return {"count": rec.count, "flags": rec.letters(self.policy.modified_flag) if rec.count else ""}
