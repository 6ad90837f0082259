"""The five designs as declarative policies: a record of choices the rules consult.

`get(name, **overrides)` builds one; `df_policies()` prints them side by side.  Rules never test a
policy's *name*: they read its fields, so a notebook can flip one choice and watch what changes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

import pandas as pd

from .errors import bad

ARBITRATION = ("none", "refuse", "ops_func", "ftrace_asks_owner", "flavors")
IPMODIFY_SECOND = ("peer-callback", "refuse")
NEWEST_KERNEL = "6.18"


@dataclass(frozen=True)
class Policy:
    name: str
    #: How IPMODIFY/DIRECT conflicts are settled:
    #:  none - nothing is checked (strawman); refuse - -EBUSY (pre-6.0, direct ops carry IPMODIFY);
    #:  ops_func - SELF/PEER/DISABLE_PEER callbacks + -EAGAIN retry (merged);
    #:  ftrace_asks_owner - ftrace calls ops_func on every conflict and records the share (Rostedt);
    #:  flavors - the owner declares #1/#2/#3, -EAGAIN then rebuild as #3 (Song).
    arbitration: str
    direct_carries_ipmodify: bool = field(default=False, metadata={
        "doc": "direct ops register with FTRACE_OPS_FL_IPMODIFY (pre-6.0 MULTI_FLAGS)"})
    direct_treated_as_ipmodify: bool = field(default=False, metadata={
        "doc": "ftrace treats DIRECT like IPMODIFY without the flag (Rostedt 2022-07-13)"})
    modify_path_checked: bool = field(default=True, metadata={
        "doc": "modify_ftrace_direct() arbitrates IPMODIFY (false 6.0-6.17; 3e9a18e1c3e9 in 6.18)"})
    retry_leaves_stale_direct: bool = field(default=False, metadata={
        "doc": "a failed register_ftrace_direct() leaves its direct_functions entry "
               "(d05cb470663a, 6.7-6.17 and 6.6.10+; fixed by 56b3c85e153b)"})
    modified_flag: bool = field(default=False, metadata={
        "doc": "records show the sticky M (FTRACE_FL_MODIFIED) letter"})
    callback_may_regenerate: bool = field(default=True, metadata={
        "doc": "Rostedt: ops_func may rebuild the trampoline before answering yes (else only yes/no)"})
    ipmodify_second: str = field(default="peer-callback", metadata={
        "doc": "Song: IPMODIFY arriving on a #2 direct ops: ftrace asks the owner to become #3 "
               "(peer-callback, v2 prepare_direct_functions_for_ipmodify) or refuses with -EBUSY"})
    fentry_only_declares_share: bool = field(default=True, metadata={
        "doc": "Song: a fentry-only trampoline registers as flavor #3 (else #2, learns by -EAGAIN)"})
    disable_on_ipmodify_removal: bool = field(default=True, metadata={
        "doc": "the direct owner is told when the IPMODIFY ops leaves and drops ORIG_STACK"})
    kprobe_arm_error_dropped: bool = field(default=False, metadata={
        "doc": "register_kprobe() returns 0 when arming on ftrace failed and the probe is in no table "
               "(__register_kprobe, 54c79390119d): merged from 6.14 on; off for the other designs"})
    kernel: str | None = field(default=None, metadata={"doc": "merged: kernel version modelled"})

    def __post_init__(self):
        if self.arbitration not in ARBITRATION:
            raise bad("arbitration", self.arbitration, ARBITRATION)
        if self.ipmodify_second not in IPMODIFY_SECOND:
            raise bad("ipmodify_second", self.ipmodify_second, IPMODIFY_SECOND)

    @property
    def label(self) -> str:
        """The name, with the kernel version when it is not the newest behaviour: merged, merged[6.1]."""
        return f"{self.name}[{self.kernel}]" if self.kernel and self.kernel != NEWEST_KERNEL else self.name

    def describe(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}


def parse_version(text: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?(?:[-+~].*)?", str(text).strip())
    if not m:
        raise bad("kernel", text, "a version such as 6.1, 6.6.10 or 6.18")
    return int(m[1]), int(m[2]), int(m[3] or 0)


def merged_for(kernel: str) -> dict[str, object]:
    """The merged design's version-dependent choices (kernel-facts.md section 5).

    Debian's 6.1.192 was observed in the kernel lab: it bypasses the livepatch on the modify path
    (no 3e9a18e1c3e9) and lets fexit attach after a livepatch (no d05cb470663a).  From 6.14 a kprobe
    whose arming fails is told 0 (54c79390119d, kernel/kprobes.c __register_kprobe(); still in 6.18).
    """
    v = parse_version(kernel)
    if v < (6, 0, 0):
        raise bad("kernel", kernel, "6.0 or newer for 'merged' (use the 'pre-6.0' policy before)")
    return {
        "modify_path_checked": v >= (6, 18, 0),
        "retry_leaves_stale_direct": (6, 6, 10) <= v < (6, 18, 0),
        "modified_flag": v >= (6, 4, 0),
        "kprobe_arm_error_dropped": v >= (6, 14, 0),
        "kernel": kernel,
    }


_DESIGNS = {
    "pre-6.0": dict(arbitration="refuse", direct_carries_ipmodify=True, disable_on_ipmodify_removal=False),
    "rostedt": dict(arbitration="ftrace_asks_owner", direct_treated_as_ipmodify=True),
    "song": dict(arbitration="flavors", disable_on_ipmodify_removal=False),
    "merged": dict(arbitration="ops_func"),
    "naive": dict(arbitration="none", modify_path_checked=False, disable_on_ipmodify_removal=False),
}
NAMES = tuple(_DESIGNS)


def get(name: str, **overrides) -> Policy:
    """A design by name, with optional overrides of its fields (e.g. kernel='6.1' for merged)."""
    if name not in _DESIGNS:
        raise bad("policy", name, NAMES)
    allowed = {f.name for f in fields(Policy)} - {"name", "arbitration"}
    for key in overrides:
        if key not in allowed:
            raise bad(f"{name} option", key, sorted(allowed))
    params = dict(_DESIGNS[name])
    if name == "merged":
        params.update(merged_for(overrides.pop("kernel", None) or NEWEST_KERNEL))
    elif overrides.get("kernel"):
        raise bad("kernel", overrides["kernel"], "only with policy 'merged'")
    params.update({k: v for k, v in overrides.items() if v is not None})
    return Policy(name=name, **params)


def all_policies(**merged_overrides) -> list[Policy]:
    return [get(n, **(merged_overrides if n == "merged" else {})) for n in NAMES]


def df_policies(policies: list[Policy] | None = None) -> pd.DataFrame:
    """Policies side by side: one row per choice (with its meaning), one column per policy."""
    policies = policies or all_policies()
    docs = {f.name: f.metadata.get("doc", "") for f in fields(Policy)}
    docs["arbitration"] = "how IPMODIFY/DIRECT conflicts are settled"
    table = pd.DataFrame({p.label: p.describe() for p in policies})
    table.insert(0, "meaning", [docs[k] for k in table.index])
    table.index.name = "choice"
    return table

