"""The five designs as declarative policies: a record of choices the rules consult.

`get(name, kernel=..., **overrides)` builds one; `df_policies()` prints them side by side.  Rules never
test a policy's *name*: they read its fields, so a notebook can flip one choice and watch what changes.

This is the one place that maps kernel versions to behaviour: `merged_for()` derives every
version-dependent field of the merged design from ``data/kernel/changes.csv`` (per change: the commit,
its mainline release, the first release of each stable series that carries it, the fields it moves).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field, fields
from functools import lru_cache

import pandas as pd

from . import versions
from .errors import FtsimError, bad
from .paths import DATA

ARBITRATION = ("none", "refuse", "ops_func", "ftrace_asks_owner", "flavors")
IPMODIFY_SECOND = ("peer-callback", "refuse")
PEER_SENT_FROM = ("gate", "register")
MODIFY_EAGAIN = ("retry", "refuse")
FPROBE = ("own", "fgraph", "split")
NEWEST_KERNEL = str(versions.NEWEST)
USER_KERNELS = versions.USER_KERNELS


@dataclass(frozen=True)
class Policy:
    name: str
    #: How IPMODIFY/DIRECT conflicts are settled:
    #:  none - nothing is checked (strawman); refuse - -EBUSY (pre-6.0, direct ops carry IPMODIFY);
    #:  ops_func - SELF/PEER/DISABLE_PEER callbacks + -EAGAIN retry (merged);
    #:  ftrace_asks_owner - ftrace treats DIRECT as IPMODIFY, calls ops_func on every conflict and
    #:  records the share itself (Rostedt, 2022-07-13);
    #:  flavors - the owner declares #1/#2/#3, -EAGAIN then rebuild as #3 (Song).
    arbitration: str
    direct_carries_ipmodify: bool = field(default=False, metadata={
        "doc": "direct ops register with FTRACE_OPS_FL_IPMODIFY (pre-6.0 MULTI_FLAGS)"})
    modify_path_checked: bool = field(default=True, metadata={
        "doc": "modify_ftrace_direct() arbitrates IPMODIFY (3e9a18e1c3e9)"})
    retry_leaves_stale_direct: bool = field(default=False, metadata={
        "doc": "a failed register_ftrace_direct() leaves its direct_functions entry (d05cb470663a; "
               "fixed by 56b3c85e153b)"})
    again_clears_func: bool = field(default=False, metadata={
        "doc": "bpf_trampoline_update()'s -EAGAIN block clears tr->fops->func before retrying (00963a2e75a8; "
               "removed by 56b3c85e153b): on the modify path the ops stays registered without a func"})
    modified_flag: bool = field(default=False, metadata={
        "doc": "records show the sticky M (FTRACE_FL_MODIFIED, 6ce2c04fcbca) letter"})
    kprobe_arm_error_dropped: bool = field(default=False, metadata={
        "doc": "register_kprobe() returns 0 when arming on ftrace failed and the probe is in no table "
               "(__register_kprobe, 54c79390119d)"})
    kprobe_aggr_keeps_post: bool = field(default=True, metadata={
        "doc": "a kprobe aggregate keeps a post_handler once a member with one joins, and is disarmed from the "
               "ops that post_handler names, not the one it was armed on (kernel/kprobes.c add_new_kprobe, "
               "__disarm_kprobe_ftrace; every kernel to 7.3-rc7); false: a fixed kprobes"})
    shared_direct_ops: bool = field(default=False, metadata={
        "doc": "all BPF trampolines share one direct ops (HAVE_SINGLE_FTRACE_DIRECT_OPS, 424f6a361096): an "
               "add checks only the new ip, a modify sends SELF for every IPMODIFY record of the shared ops"})
    tracing_multi: bool = field(default=False, metadata={
        "doc": "tracing_multi links (fentry/fexit .multi): one add and one modify, no -EAGAIN retry"})
    fsession: bool = field(default=False, metadata={
        "doc": "fsession links: one program on the trampoline's entry and exit"})
    fprobe: str = field(default="own", metadata={
        "doc": "fprobe: own ops with SAVE_REGS (own), a subop of fgraph's graph_ops (fgraph, 4346ba160409), or "
               "entry-only on one shared ftrace_ops and the rest on graph_ops (split)"})
    callback_may_regenerate: bool = field(default=True, metadata={
        "doc": "Rostedt: ops_func may rebuild the trampoline before answering yes (else only yes/no); the "
               "rebuild needs ftrace_lock, held here: these results assume his lock-drop variant "
               "(2022-07-15, ftsim.locking models both)"})
    ipmodify_second: str = field(default="peer-callback", metadata={
        "doc": "Song: IPMODIFY arriving on a #2 direct ops: ftrace asks the owner to become #3 "
               "(peer-callback, v2 prepare_direct_functions_for_ipmodify) or refuses with -EBUSY"})
    peer_sent_from: str = field(default="gate", metadata={
        "doc": "Song: where that ask is made: at the gate, for every IPMODIFY hash change (gate: the email's "
               "intent), or from register_ftrace_function() only (register: v2 3/5, which has the PEER gap)"})
    modify_eagain: str = field(default="retry", metadata={
        "doc": "Song: an -EAGAIN on the modify path (a live trampoline gains fexit on an IPMODIFY function): "
               "rebuild and retry (retry: the email), or fail (refuse: v2 5/5 WARN_ON_ONCE(tr->cur_image))"})
    fentry_only_declares_share: bool = field(default=True, metadata={
        "doc": "Song: a fentry-only trampoline registers as flavor #3 (the email); false: v2, it is #2, gets "
               "-EAGAIN, retries and keeps ORIG_STACK for every later image (sticky tr->indirect_call)"})
    disable_on_ipmodify_removal: bool = field(default=True, metadata={
        "doc": "the direct owner is told when the IPMODIFY ops leaves and drops ORIG_STACK"})
    kernel: str | None = field(default=None, metadata={"doc": "merged: kernel version modelled"})
    unknown: tuple = field(default=(), metadata={
        "doc": "changes whose presence in this kernel is not known (modelled as not carried; reported)"})
    kernel_given: str | None = field(default=None, compare=False, metadata={
        "doc": "the kernel as the user wrote it (uname -r, Debian ABI name)"})

    def __post_init__(self):
        if self.arbitration not in ARBITRATION:
            raise bad("arbitration", self.arbitration, ARBITRATION)
        for name, allowed in (("ipmodify_second", IPMODIFY_SECOND), ("peer_sent_from", PEER_SENT_FROM),
                              ("modify_eagain", MODIFY_EAGAIN), ("fprobe", FPROBE)):
            if getattr(self, name) not in allowed:
                raise bad(name, getattr(self, name), allowed)

    @property
    def label(self) -> str:
        """Design and kernel (``merged 7.3``, ``merged 6.1.192``), plus the fields set by hand."""
        base = f"{self.name} {self.kernel}" if self.kernel else self.name
        changed = self.changed()
        return base + (" [" + ", ".join(f"{k}={_fmt(v)}" for k, v in changed.items()) + "]" if changed else "")

    def changed(self) -> dict:
        """Fields that differ from the design's own values at this kernel (``--set`` overrides)."""
        ref = get(self.name, kernel=self.kernel) if self.kernel else get(self.name)
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.compare and f.name not in ("name", "unknown") and getattr(self, f.name) != getattr(ref, f.name)}

    def describe(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("name", "kernel_given")}

    def note_unknown(self, field_name: str) -> str | None:
        """A note for a step whose rule read ``field_name`` when this kernel's value is not known."""
        for f, change in self.unknown:
            if f == field_name:
                return (f"whether {self.kernel} carries {change} is not known; modelled as not carried "
                        f"(data/kernel/changes.csv)")
        return None


def _fmt(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


# -- versions -> behaviour ------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    id: str
    commit: str
    title: str
    mainline: versions.Version
    stable: dict                   # series (major, minor) -> Version | "none" | "not known"
    moves: tuple                   # ((field, value), ...)
    source: str

    def carried(self, v: versions.Version) -> bool | None:
        """Does kernel ``v`` carry this change?  True from its mainline release on; before that only
        through the stable series' first release listed (``none``: never); a series not listed did not
        carry it.  None: not known (the table says so)."""
        if v >= self.mainline:
            return True
        first = self.stable.get(v.series)
        if first is None or first == "none":
            return False
        if first == "not known":
            return None
        return v >= first


@lru_cache(maxsize=1)
def changes() -> tuple[Change, ...]:
    """The behaviour changes of data/kernel/changes.csv, in file order."""
    out = []
    with open(DATA / "kernel" / "changes.csv", newline="") as f:
        for row in csv.DictReader(f):
            stable = {}
            for item in filter(None, (x.strip() for x in row["stable"].split(";"))):
                series, first = item.split("=")
                key = tuple(int(x) for x in series.split("."))
                stable[key] = first if first in ("none", "not known") else versions.parse(first)
            moves = tuple((k, _value(k, v)) for k, v in (m.split("=") for m in row["moves"].split(";")))
            out.append(Change(row["id"], row["commit"], row["title"], versions.parse(row["mainline"]), stable,
                              moves, row["source"]))
    return tuple(out)


def _value(field_name: str, text: str):
    kind = _FIELD_TYPES.get(field_name)
    if kind is bool:
        return text == "true"
    return text


def merged_for(kernel) -> dict[str, object]:
    """The merged design's version-dependent fields at ``kernel`` (any spelling versions.parse takes).

    Starts from 6.0 as merged (every field's default) and applies, in table order, each change this
    kernel carries; a change whose presence is not known is left out and listed in ``unknown``."""
    v = versions.parse(kernel)
    if v < versions.Version(6, 0):
        raise bad("kernel", kernel, "6.0 or newer for 'merged' (use the 'pre-6.0' policy before)")
    out: dict[str, object] = {}
    unknown = []
    for ch in changes():
        c = ch.carried(v)
        if c is None:
            unknown.extend((f, f"{ch.commit} ({ch.title})") for f, _ in ch.moves)
        elif c:
            out.update(ch.moves)
    out.pop("arbitration", None)          # the merged design itself (6.0)
    out["kernel"] = str(v)
    out["unknown"] = tuple(unknown)
    out["kernel_given"] = v.given or str(v)
    return out


_DESIGNS = {
    "pre-6.0": dict(arbitration="refuse", direct_carries_ipmodify=True, disable_on_ipmodify_removal=False),
    "rostedt": dict(arbitration="ftrace_asks_owner"),
    "song": dict(arbitration="flavors", disable_on_ipmodify_removal=False),
    "merged": dict(arbitration="ops_func", modify_path_checked=False),
    "naive": dict(arbitration="none", modify_path_checked=False, disable_on_ipmodify_removal=False),
}
NAMES = tuple(_DESIGNS)
_FIELD_TYPES = {f.name: (bool if f.type in ("bool", bool) else str) for f in fields(Policy)}
#: fields a user may set (``--set FIELD=VALUE``, ``set FIELD=VALUE`` in a scenario file)
SETTABLE = tuple(f.name for f in fields(Policy) if f.name not in ("name", "arbitration", "kernel", "unknown",
                                                                   "kernel_given"))
_CHOICES = {"ipmodify_second": IPMODIFY_SECOND, "peer_sent_from": PEER_SENT_FROM, "modify_eagain": MODIFY_EAGAIN,
            "fprobe": FPROBE}


def field_type(field_name: str) -> type:
    """bool or str: how a settable field's value is written."""
    return _FIELD_TYPES[field_name]


def typed(field_name: str, value):
    """An override's value, typed: booleans only from bool or true/false/yes/no; choices from their list."""
    if field_name not in SETTABLE:
        raise bad("policy field", field_name, SETTABLE)
    if _FIELD_TYPES[field_name] is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in ("true", "yes", "false", "no"):
            return value in ("true", "yes")
        raise bad(field_name, value, "true, false, yes, no")
    if not isinstance(value, str) or value not in _CHOICES[field_name]:
        raise bad(field_name, value, _CHOICES[field_name])
    return value


def parse_set(text: str) -> tuple[str, object]:
    """``FIELD=VALUE`` (the --set syntax) -> (field, typed value)."""
    if not isinstance(text, str) or text.count("=") != 1:
        raise bad("--set", text, "FIELD=VALUE with FIELD one of " + ", ".join(SETTABLE))
    k, v = text.split("=")
    return k, typed(k, v)


def get(name: str, kernel=None, **overrides) -> Policy:
    """A design by name, with optional overrides of its fields (typed, see ``typed``); ``kernel`` only
    for merged (any spelling versions.parse takes; default: the newest modelled kernel)."""
    if not isinstance(name, str) or name not in _DESIGNS:
        raise bad("policy", name, NAMES)
    params = dict(_DESIGNS[name])
    if name == "merged":
        params.update(merged_for(NEWEST_KERNEL if kernel is None else kernel))
    elif kernel is not None:
        raise bad("kernel", kernel, "only with policy 'merged'")
    for key, value in overrides.items():
        if value is not None:
            params[key] = typed(key, value)
    return Policy(name=name, **params)


def all_policies(kernel=None, **merged_overrides) -> list[Policy]:
    return [get(n, kernel=kernel, **merged_overrides) if n == "merged" else get(n) for n in NAMES]


def pick(policies, key: str) -> int:
    """Index of a policy in ``policies`` by label (``merged 6.1.192``) or, when one policy has it, by design
    name (``merged``); else a one-line error listing the labels."""
    labels = [p.label for p in policies]
    if key in labels:
        return labels.index(key)
    named = [i for i, p in enumerate(policies) if p.name == key]
    if len(named) == 1:
        return named[0]
    raise bad("policy", key, labels)


def df_policies(policies: list[Policy] | None = None) -> pd.DataFrame:
    """Policies side by side: one row per choice (with its meaning), one column per policy."""
    policies = policies or all_policies()
    docs = {f.name: f.metadata.get("doc", "") for f in fields(Policy)}
    docs["arbitration"] = "how IPMODIFY/DIRECT conflicts are settled"
    table = pd.DataFrame({p.label: {k: _fmt(v) if not isinstance(v, tuple) else
                                    ("; ".join(c for _, c in v) or "-") for k, v in p.describe().items()}
                          for p in policies})
    table.insert(0, "meaning", [docs[k] for k in table.index])
    table.index.name = "choice"
    return table


def df_changes() -> pd.DataFrame:
    """The behaviour-change table (data/kernel/changes.csv) as the model reads it: one row per change
    with ``id``, ``commit``, ``title``, ``mainline``, ``stable`` (series=first release), ``moves``."""
    return pd.DataFrame([{"id": c.id, "commit": c.commit, "title": c.title, "mainline": str(c.mainline),
                          "stable": "; ".join(f"{a}.{b}={x}" for (a, b), x in c.stable.items()),
                          "moves": "; ".join(f"{k}={_fmt(v)}" for k, v in c.moves)} for c in changes()])


class PolicyError(FtsimError):
    """Kept for callers that catch policy errors specifically."""
