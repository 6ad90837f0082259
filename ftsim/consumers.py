"""The catalog of consumers: who registers what on a function's fentry site, and how each behaves.

Each entry says which ftrace mechanism it goes through (shared ops are shared in the model too), the
flags of that ops, and what its handler does when the function is called.  The rules that act on these
facts live in ftrace.py, kprobes.py, livepatch.py, bpf.py and call.py; this module only describes.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .errors import bad
from .flags import OpsFlag

#: Mechanisms: how a consumer reaches ftrace.
KLP = "klp"          # one klp_ops per patched function (kernel/livepatch/patch.c klp_patch_func)
KPROBE = "kprobe"    # shared kprobe_ftrace_ops / kprobe_ipmodify_ops (kernel/kprobes.c arm_kprobe_ftrace)
LIST = "list"        # an ftrace_ops of its own in ftrace_ops_list
BPF = "bpf"          # a program on the function's shared BPF trampoline (kernel/bpf/trampoline.c)
DIRECT = "direct"    # register_ftrace_direct*() with no ops_func (samples/ftrace/ftrace-direct*.c)


@dataclass(frozen=True)
class Consumer:
    name: str
    mechanism: str
    description: str
    post_handler: bool = False      # kprobe: post_handler != NULL selects kprobe_ipmodify_ops
    overrides: bool = False         # writes regs->ip to a stub that returns a forced value
    return_hook: bool = False       # sees the return value (function_graph, rethook, fexit)
    bpf_kind: str | None = None     # "fentry" | "fexit" | "fmod_ret" | "fsession"
    fmod_skips: bool = False        # fmod_ret returning non-zero: skips the body
    needs_error_injection: bool = False  # only on ALLOW_ERROR_INJECTION functions (else -EINVAL)
    multi: bool = False             # a tracing_multi link (one add/modify for the link, no retry)
    needs: str | None = None        # the Policy field that must be true for the consumer to exist

    @property
    def writes_ip(self) -> bool:
        """Handlers that change where the call continues (livepatch redirect or override stub)."""
        return self.mechanism == KLP or self.overrides

    @property
    def mutates(self) -> bool:
        """Consumers whose purpose is to change what the call returns."""
        return self.writes_ip or self.fmod_skips


_ENTRIES = [
    Consumer("livepatch", KLP, "livepatch module: klp_ops (IPMODIFY) redirects to the newest patch"),
    Consumer("kprobe-post", KPROBE, "kprobe with a post_handler: kprobe_ipmodify_ops (IPMODIFY|SAVE_REGS)",
             post_handler=True),
    Consumer("kprobe", KPROBE, "kprobe without post_handler: kprobe_ftrace_ops (SAVE_REGS)"),
    Consumer("fail-function", KPROBE, "fail_function error injection: kprobe with a dummy post_handler "
             "(kernel/fail_function.c), so kprobe_ipmodify_ops; pre_handler jumps to a stub",
             post_handler=True, overrides=True, needs_error_injection=True),
    Consumer("bpf-override-return", KPROBE, "BPF kprobe calling bpf_override_return(): kprobe_ftrace_ops, "
             "writes the ip without declaring IPMODIFY", overrides=True, needs_error_injection=True),
    Consumer("ftrace-ops", LIST, "a plain passive ftrace_ops (e.g. perf function events)"),
    Consumer("function-tracer", LIST, "the function tracer's ops (tracefs current_tracer=function)"),
    Consumer("function-graph", LIST, "function_graph tracer: list ops + return hook", return_hook=True),
    Consumer("kretprobe", KPROBE, "kretprobe: kprobe_ftrace_ops + return hook (rethook)", return_hook=True),
    Consumer("fprobe", LIST, "fprobe without exit handler: own ftrace_ops"),
    Consumer("fprobe-exit", LIST, "fprobe with exit handler: own ftrace_ops + rethook", return_hook=True),
    Consumer("bpf-fentry", BPF, "BPF fentry program on the function's trampoline", bpf_kind="fentry"),
    Consumer("bpf-fexit", BPF, "BPF fexit program: the trampoline calls the body (CALL_ORIG)",
             bpf_kind="fexit", return_hook=True),
    Consumer("bpf-fmod-ret", BPF, "BPF fmod_ret returning an error: skips the body",
             bpf_kind="fmod_ret", fmod_skips=True, needs_error_injection=True),
    Consumer("bpf-fmod-ret-pass", BPF, "BPF fmod_ret returning 0: the body runs",
             bpf_kind="fmod_ret", needs_error_injection=True),
    Consumer("bpf-fentry-multi", BPF, "BPF fentry.multi link (tracing_multi): one update_ftrace_direct_add/mod "
             "for the link, an -EAGAIN is not retried", bpf_kind="fentry", multi=True, needs="tracing_multi"),
    Consumer("bpf-fexit-multi", BPF, "BPF fexit.multi link (tracing_multi): CALL_ORIG, an -EAGAIN from SELF is "
             "not retried", bpf_kind="fexit", return_hook=True, multi=True, needs="tracing_multi"),
    Consumer("bpf-fsession", BPF, "BPF fsession link: one program on entry and exit (an entry node on FENTRY, "
             "an exit node on FEXIT: CALL_ORIG)", bpf_kind="fsession", return_hook=True, needs="fsession"),
    Consumer("direct", DIRECT, "a direct ops with no ops_func (Song's flavor #1); its trampoline "
             "returns into the function, so it follows regs->ip"),
]

CATALOG: dict[str, Consumer] = {c.name: c for c in _ENTRIES}
NAMES: tuple[str, ...] = tuple(CATALOG)


def get(name: str) -> Consumer:
    try:
        return CATALOG[name]
    except (KeyError, TypeError):
        raise bad("consumer", name, NAMES) from None


#: the first kernel of each link kind, as data/kernel/changes.csv has it
FIRST = {"tracing_multi": "7.2 (7.0 and 7.1 not known)", "fsession": "7.2 (7.0 and 7.1 not known)"}


def available(policy) -> tuple[str, ...]:
    """The consumers that exist under ``policy`` (the tracing_multi and fsession links need a kernel
    that has them)."""
    return tuple(c.name for c in _ENTRIES if c.needs is None or getattr(policy, c.needs))


def check_available(name: str, policy) -> Consumer:
    """The consumer, or a one-line error naming the first kernel that has it."""
    c = get(name)
    if c.needs is not None and not getattr(policy, c.needs):
        raise bad("consumer", name, f"a consumer of {policy.label} ({name} exists from {FIRST[c.needs]}; "
                                    f"or --set {c.needs}=true)")
    return c


def ops_flags(consumer: Consumer, *, direct_carries_ipmodify: bool = False) -> OpsFlag:
    """Flags of the ftrace ops a consumer registers through (include/linux/ftrace.h names).

    klp_ops: IPMODIFY|PERMANENT (no SAVE_REGS on x86-64, which has DYNAMIC_FTRACE_WITH_ARGS:
    kernel/livepatch/patch.c klp_patch_func).  Direct ops: DIRECT|SAVE_REGS, plus IPMODIFY before 6.0
    (kernel/trace/ftrace.c MULTI_FLAGS / direct_ops).
    """
    m = consumer.mechanism
    if m == KLP:
        return OpsFlag.IPMODIFY | OpsFlag.PERMANENT
    if m == KPROBE:
        return OpsFlag.SAVE_REGS | (OpsFlag.IPMODIFY if consumer.post_handler else OpsFlag.NONE)
    if m in (BPF, DIRECT):
        extra = OpsFlag.IPMODIFY if direct_carries_ipmodify else OpsFlag.NONE
        return OpsFlag.DIRECT | OpsFlag.SAVE_REGS | extra
    return OpsFlag.NONE


def df_catalog() -> pd.DataFrame:
    """One row per consumer: mechanism, ops, flags (6.0+), call-time behaviour."""
    rows = []
    for c in _ENTRIES:
        if c.mechanism == KPROBE:
            ops = "kprobe_ipmodify_ops" if c.post_handler else "kprobe_ftrace_ops"
        elif c.mechanism == KLP:
            ops = "klp_ops (per function)"
        elif c.mechanism == BPF:
            ops = "bpf_trampoline fops (per function)"
        else:
            ops = "own ftrace_ops"
        flags = ops_flags(c)
        rows.append({"consumer": c.name, "mechanism": c.mechanism, "ops": ops,
                     "flags": "|".join(f.name for f in OpsFlag if f and f in flags) or "-",
                     "writes_ip": c.writes_ip, "return_hook": c.return_hook,
                     "needs_error_injection": c.needs_error_injection, "description": c.description})
    return pd.DataFrame(rows)
