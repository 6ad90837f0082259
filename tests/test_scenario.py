"""Scenario files: the shipped ones hold under the designs they are written for; bad input is refused
with a one-line error naming file, line and token; random text never crashes the parser or the model."""
import json
import subprocess
import sys
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from ftsim import consumers, policy, scenario
from ftsim.model import Model
from ftsim.cli import main
from ftsim.errors import FtsimError

SCEN = Path(__file__).resolve().parent.parent / "data" / "scenarios"
#: both sides of every boundary of data/kernel/changes.csv, mainline and stable, and the kernels users run
BUG_KERNELS = ["6.1", "6.1.159", "6.1.160", "6.1.192", "6.3", "6.4", "6.6", "6.6.9", "6.6.10", "6.6.117", "6.6.118",
               "6.6.119", "6.6.120", "6.12", "6.12.58", "6.12.59", "6.12.61", "6.12.62", "6.12.117", "6.13", "6.14",
               "6.17.8", "6.17.9", "6.17.11", "6.17.12", "6.18", "6.19", "7.0", "7.2.13", "7.3-rc7", "7.3"]
PAIR_POLICIES = [("pre-6.0", None), ("merged", "6.1.192"), ("merged", "6.12.117"), ("merged", "7.2.13"),
                 ("merged", None)]


def targets(path: Path):
    """Which (policy, kernel) a shipped file is written for, from its name."""
    name = path.stem
    if name.startswith("thread-"):
        design = name[len("thread-"):]
        return [("merged", k) for k in BUG_KERNELS] if design == "merged" else [(design, None)]
    if name.startswith("bug-"):
        return [("merged", k) for k in BUG_KERNELS]
    return PAIR_POLICIES


CASES = [(p, pol, k) for p in sorted(SCEN.glob("*.fts")) for pol, k in targets(p)]


@pytest.mark.parametrize("path,pol,kernel", CASES, ids=[f"{p.stem}-{pol}-{k or 'newest'}" for p, pol, k in CASES])
def test_shipped_scenarios_hold(path, pol, kernel):
    sc = scenario.parse_file(path)
    rows = scenario.run(sc, policy.get(pol, kernel=kernel))
    failed = [f"line {d['line']}: {'; '.join(d['failures'])}" for d in rows if not d["expect_ok"]]
    assert not failed, "\n".join(failed)
    assert any(st.expect for st in sc.steps), "a shipped scenario states expectations"


def test_every_file_starts_with_what_it_shows():
    for path in SCEN.glob("*.fts"):
        assert scenario.parse_file(path).comments, f"{path.name} has no leading comment"


def test_pair_files_cover_ipmodify_and_direct_consumers_in_both_orders():
    seen = set()                                  # (incumbent, contender): an attach right after another
    for path in SCEN.glob("pairs-*.fts"):
        prev = None
        for st in scenario.parse_file(path).steps:
            if st.op == "attach" and prev is not None:
                seen.add((prev, st.consumer))
            prev = st.consumer if st.op == "attach" else None
    for a in ("livepatch", "kprobe-post", "fail-function"):
        for b in ("bpf-fexit", "bpf-fentry", "bpf-fmod-ret", "bpf-fmod-ret-pass", "direct", "livepatch"):
            if a != "livepatch" and b not in ("bpf-fexit", "livepatch"):
                continue
            assert (a, b) in seen and (b, a) in seen, (a, b)


@pytest.mark.parametrize("text,needle", [
    ("attach livepach f", "consumer 'livepach' is unknown; allowed: livepatch"),
    ("attach livepatch 9f", "function '9f' is not a C identifier"),
    ("attach livepatch f as", "expected 'attach CONSUMER FUNCTION [as HANDLE]'"),
    ("detach lp", "handle 'lp' is unknown"),
    ("attach livepatch f as lp\ndetach lp\ndetach lp", "detached already"),
    ("attach livepatch f as lp\nattach kprobe f as lp", "handle 'lp' is taken (line 1)"),
    ("attach livepatch f => -EBUS", "expectation '-EBUS' is unknown"),
    ("attach livepatch f => regen=x", "regen='x': expected a count"),
    ("attach livepatch f => record=1:Q", "record='1:Q'"),
    ("attach livepatch f => violations=Nope", "violations: 'Nope' is unknown"),
    ("attach livepatch f =>[linus] 0", "expectation selector 'linus' is unknown"),
    ("jump f", "step 'jump' is unknown; allowed: attach, detach, call"),
    ("call", "expected 'call FUNCTION'"),
])
def test_bad_lines_name_file_line_and_token(text, needle):
    with pytest.raises(scenario.ScenarioError) as e:
        scenario.parse_text(text, "x.fts")
    msg = str(e.value)
    assert needle in msg and msg.startswith("x.fts:") and "\n" not in msg


WORDS = st.sampled_from(["attach", "detach", "call", "as", "=>", "=>[merged<6.18]", "=>[pre-6.0]", "0",
                         "-EBUSY", "regen=1", "record=2:RID", "body=new", "violations=-", "#", "f", "g",
                         "lp", "x", *consumers.NAMES])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(WORDS, max_size=7).map(" ".join), max_size=8).map("\n".join),
       st.sampled_from(policy.NAMES))
def test_random_text_never_crashes(text, pol):
    try:
        sc = scenario.parse_text(text, "fuzz.fts")
    except scenario.ScenarioError:
        return
    rows = scenario.run(sc, policy.get(pol))
    assert len(rows) == len(sc.steps)


def test_policy_and_kernel_errors_are_one_line_value_errors():
    for call in (lambda: policy.get("linus"), lambda: policy.get("merged", kernel="5.19"),
                 lambda: policy.get("merged", kernel="six"), lambda: policy.get("song", kernel="6.1"),
                 lambda: policy.get("song", colour="red")):
        with pytest.raises(FtsimError) as e:
            call()
        assert isinstance(e.value, ValueError) and "allowed" in str(e.value)


def test_cli_exit_codes_and_json(tmp_path, capsys):
    good = SCEN / "thread-merged.fts"
    assert main(["scenario", str(good), "--policy", "merged"]) == 0
    assert main(["scenario", str(good), "--policy", "merged", "--json"]) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines() if l.startswith("{")]
    keys = {"file", "line", "step", "op", "handle", "ret", "callbacks", "retries", "regenerations", "record",
            "violations", "attached", "expect_ok"}
    assert lines and all(keys <= set(d) for d in lines)
    calls = [d for d in lines if d["op"] == "call"]
    assert calls and all({"body_ran", "result_from", "fired", "attributed_to", "ip_seen", "return_seen"} <= set(d)
                         for d in calls)
    wrong = tmp_path / "wrong.fts"
    wrong.write_text("attach livepatch f as lp => -EBUSY\n")
    assert main(["scenario", str(wrong), "--policy", "merged"]) == 1
    assert "wrong.fts:1: expectation failed: ret=-EBUSY (got 0)" in capsys.readouterr().err
    bad = tmp_path / "bad.fts"
    bad.write_text("attach livepatch f\nattach nonsense f\n")
    assert main(["scenario", str(bad), "--policy", "merged"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("bad.fts:2: consumer 'nonsense' is unknown; allowed: " + ", ".join(consumers.NAMES))
    assert main(["scenario", str(tmp_path / "missing.fts"), "--policy", "merged"]) == 2


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "ftsim.cli", "table", "--policy", "pre-6.0"],
                         capture_output=True, text=True, check=True).stdout
    assert "livepatch" in out.splitlines()[0] or "livepatch" in out


def test_who_sees_which_ip_and_which_return_value():
    """ip_seen / return_seen: the kprobe pre_handler and the livepatch handler see the probed address;
    the fexit trampoline, rebuilt with ORIG_STACK beside the livepatch, calls and reports the body the
    livepatch chose (new); a fexit alone sees the original."""
    m = Model(policy.get("merged", kernel="6.12.117"))
    for c, h in (("livepatch", "lp"), ("kprobe", "k"), ("bpf-fexit", "fx")):
        assert m.attach(c, "cmdline_proc_show", h).ret == 0
    out = m.call("cmdline_proc_show").call
    assert out.ip_seen == {"k": "orig", "lp": "orig", "fx": "new"} and out.return_seen == {"fx": "new"}
    m.detach("lp")
    out = m.call("cmdline_proc_show").call
    assert out.ip_seen == {"k": "orig", "fx": "orig"} and out.return_seen == {"fx": "orig"}


# -- Behaviour pinned: every step of every shipped scenario, under every design and kernel boundary -----------
# tests/golden/scenario-digests.json holds, per (file, design, kernel), a digest of every field of every step
# (result, record, counters, fired, ip/return seen, violations, WARN sites, reason and notes). The .fts
# expectations say what a file is written to show; this says nothing else moved. A deliberate change of
# behaviour regenerates it (FTSIM_GOLDEN=update pytest tests/test_scenario.py -k pinned) and says why in
# its commit; `ftsim scenario FILE --policy P --kernel K --json` before and after shows the difference.
PINNED = [(d, None) for d in policy.NAMES if d != "merged"] + [("merged", k) for k in BUG_KERNELS]


def _digest(rows: list[dict]) -> str:
    import hashlib
    keep = [{k: v for k, v in d.items() if k not in ("file", "failures", "expect_ok")} for d in rows]
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def _pinned_digests() -> dict:
    out = {}
    for path in sorted(SCEN.rglob("*.fts")):
        sc = scenario.parse_file(path)
        for design, kernel in PINNED:
            key = f"{path.relative_to(SCEN)}|{design}|{kernel or 'newest'}"
            out[key] = _digest(scenario.run(sc, policy.get(design, kernel=kernel)))
    return out


def test_every_step_of_every_shipped_scenario_is_pinned():
    from golden_support import changed_digests
    changed, stored = changed_digests("scenario-digests.json", _pinned_digests())
    assert not changed, (f"{len(changed)} of {stored} (file, design, kernel) runs changed, e.g. "
                         + "; ".join(changed[:8]) + " (ftsim scenario data/scenarios/FILE --policy P --kernel K)")
