"""Preset dicts (and the same as JSON files): near-valid presets, mutated, give Params and a workload
that runs, or a one-line FtsimError; never another exception, never a hang."""
import json
import math

import hypothesis.strategies as st
import numpy as np
from hypothesis import given

from ftsim import consumers, metrics, policy, workload
from test_fuzz_support import Tally, fuzz_settings

NASTY = [0, -1, 1, 2, 3, 8, 64, 65, 4096, 4097, 0.0, 0.5, 0.999, 1.0, 1.5, 1e-9, 1e-10, 5e-324, 1e308, 1e9, 1e12,
         1e13, math.inf, -math.inf, math.nan, True, False, None, "1", "", "x", [], {}, [1], {"a": 1}, 2**70,
         10**400, np.int64(3), np.float32(0.25), np.bool_(True), np.uint8(2), -0.0]
NAMES = list(consumers.NAMES) + ["default", "livepach", "", "LIVEPATCH", "kprobe "]


@st.composite
def preset(draw):
    base = json.loads(json.dumps(workload.PRESETS[draw(st.sampled_from(sorted(workload.PRESETS)))]))
    for _ in range(draw(st.integers(0, 3))):
        how = draw(st.sampled_from(["value", "value", "delete", "add", "lifetimes", "mix", "nested-type"]))
        if how == "value":
            base[draw(st.sampled_from(workload.KEYS))] = draw(st.sampled_from(NASTY))
        elif how == "delete":
            base.pop(draw(st.sampled_from(workload.KEYS)), None)
        elif how == "add":
            base[draw(st.sampled_from(["colour", "Zipf", "mixes", ""]))] = 1
        elif how in ("lifetimes", "mix"):
            d = base.get(how)
            if isinstance(d, dict):
                d[draw(st.sampled_from(NAMES))] = draw(st.sampled_from(NASTY))
        else:
            base[draw(st.sampled_from(["lifetimes", "mix"]))] = draw(st.sampled_from(
                [[], [["livepatch", 1.0]], "livepatch", 3, None, {}, {"livepatch": {}}, {"livepatch": [1]}]))
    return base


POLS = [("merged", None), ("merged", "6.1"), ("pre-6.0", None), ("naive", None), ("song", None), ("rostedt", None)]


def _run(d, pk, seed, events, workloads, run_engine):
    p = workload.check_preset(d, "fuzz")
    arrays = workload.generate_arrays(p, seed, events, workloads)
    assert np.isfinite(arrays["time"]).all()
    if run_engine:
        df, _ = metrics.compute(arrays, [policy.get(pk[0], kernel=pk[1])], persist=False)
        assert len(df) == workloads
    return p


def test_fuzz_preset_dicts():
    tally = Tally("preset dicts")

    @fuzz_settings(400)
    @given(preset(), st.sampled_from(POLS), st.integers(0, 2**63 - 1), st.integers(1, 30), st.integers(1, 3),
           st.integers(0, 3))
    def case(d, pk, seed, events, workloads, engine):
        outcome, _ = tally.guard(d, _run, d, pk, seed, events, workloads, engine == 0)
        tally.extra["valid"] += outcome == "ok"
    case()
    d = tally.check()
    assert tally.extra["valid"] >= 0.2 * tally.cases and tally.counts["error"] >= 0.2 * tally.cases, d


def _plain(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)


def test_fuzz_preset_files(tmp_path):
    tally = Tally("preset files")
    path = tmp_path / "p.json"

    @fuzz_settings(300)
    @given(preset(), st.sampled_from(["", "", "", "truncate", "bom", "dup", "latin1"]))
    def case(d, damage):
        d = {**d, "description": d.get("description", "x")}
        try:
            text = json.dumps(d, default=_plain)
        except (TypeError, ValueError):                  # 10**400 is fine, a numpy bool is not JSON
            return
        if damage == "truncate":
            text = text[:len(text) // 2]
        elif damage == "bom":
            text = "\ufeff" + text
        elif damage == "dup":
            text = text.replace("{", '{"zipf": 1.0, ', 1)
        data = text.encode("latin-1", "replace") if damage == "latin1" else text.encode()
        if damage == "latin1":
            data = data.replace(b'"', b'"\xe9', 1)

        def go():
            path.write_bytes(data)
            workload.load_preset(path)
        tally.guard(data[:300], go)
    case()
    tally.check()
