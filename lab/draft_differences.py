#!/usr/bin/env python3
"""Draft data/kernel/known-differences.csv from lab/compare.py's differences, with a reason per row
decided by the rules below (what the kernel lab knows about Debian's 6.1).  Rows no rule explains get
the reason UNEXPLAINED and must be looked at (the agreement test fails on them).

    .venv/bin/python lab/draft_differences.py data/kernel/observed-6.1.0-56-amd64.jsonl > data/kernel/known-differences.csv

Steps after a crash vary from run to run (how far a crashing scenario gets), so the committed CSV is the
union of the drafts of several runs.
"""
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402

ROOT = compare.ROOT
NO_EI = ("fail-function", "bpf-override-return")
NO_FPROBE = ("fprobe", "fprobe-exit")
BPF_TRACING = ("bpf-fentry", "bpf-fexit", "bpf-fmod-ret", "bpf-fmod-ret-pass")

R = {
    "noei": "Debian 6.1 has no CONFIG_FUNCTION_ERROR_INJECTION (no fail_function in debugfs, no "
            "bpf_override_return): the consumer cannot attach, the model assumes it can",
    "nofprobe": "CONFIG_FPROBE is off on Debian 6.1: the lab records the step as not run (ret null); the model attaches",
    "nobtf": "__x64_sys_* are not in Debian 6.1's BTF: BPF tracing programs fail to load (-ESRCH), the model attaches them",
    "sysrec": "a livepatch on __x64_sys_getppid/getpid works (the new body runs) but enabled_functions shows "
              "no line named __x64_sys_*: the lab cannot read the record of syscall wrappers",
    "ftrace_dead": "after the modify-path bypass (livepatch, fentry, then fexit) the kernel WARNs at "
                   "kernel/trace/ftrace.c:7660 and from then on enabled_functions shows no line and no "
                   "ftrace handler fires: ftrace disabled itself, which the model does not model",
    "kprobe_aggr": "kprobe-post joining an armed ftrace kprobe on the same address: unregistering later "
                   "fails to disarm (\"Failed to disarm kprobe-ftrace ... (error -2)\"), the aggregate "
                   "probe stays on kprobe_ftrace_ops (record 1:R) and the guest oopses later (6.1 bug)",
    "onemodule": "the lab has one module per consumer kind: a second handle of the same kind is not run",
}


def live_consumers(path, upto_line):
    """consumers attached (by the scenario text) and not detached before upto_line, plus those of the step."""
    from ftsim import scenario
    sc = scenario.parse_file(ROOT / path)
    live = {}
    out = set()
    for st in sc.steps:
        if st.line > upto_line:
            break
        if st.op == "attach":
            live[st.handle] = (st.consumer, st.function)
        out |= {(c, f) for (c, f) in live.values()}
        if st.op == "detach" and st.line < upto_line:
            live.pop(st.handle, None)
    return out


def reason(d, obs_rows):
    f, line = d["file"], int(d["line"])
    row = next((r for r in obs_rows if r["file"] == f and r["line"] == line), {})
    notes = " ".join(row.get("notes", []))
    cons = live_consumers(f, line)
    names = {c for (c, _) in cons}
    funcs = {fn for (_, fn) in cons} | {row.get("function")}
    prior = [r for r in obs_rows if r["file"] == f and r["line"] <= line]
    if any("ftrace.c:7660" in " ".join(r.get("notes", [])) for r in prior):
        return R["ftrace_dead"]
    if any("Failed to disarm kprobe-ftrace" in " ".join(r.get("notes", [])) for r in prior):
        return R["kprobe_aggr"]
    if row.get("consumer") in BPF_TRACING and (row.get("function") or "").startswith("__x64_sys_"):
        return R["nobtf"]
    if "not run in the lab" in notes or "slot is taken" in notes:
        return R["onemodule"]
    if names & set(NO_FPROBE):
        return R["nofprobe"]
    if names & set(NO_EI):
        return R["noei"]
    if any(fn and fn.startswith("__x64_sys_") for fn in funcs):
        if names & set(BPF_TRACING):
            return R["nobtf"]
        if d["field"] == "record":
            return R["sysrec"]
    return "UNEXPLAINED"


def main():
    path = sys.argv[1]
    obs = compare.load(path)
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["file", "line", "field", "observed", "model", "reason"])
    for d in compare.differences(path):
        w.writerow([d["file"], d["line"], d["field"], d["observed"], d["model"], reason(d, obs)])


if __name__ == "__main__":
    main()
