"""The workload generator: presets, determinism, well-formed events, bad input."""
import json

import numpy as np
import pandas as pd
import pytest

from ftsim import workload
from ftsim.consumers import NAMES as CONSUMERS
from ftsim.errors import FtsimError


def test_presets_are_complete_and_described():
    assert {"uniform", "observability", "security-response", "bpf-lsm"} <= set(workload.PRESETS)
    for name, p in workload.PRESETS.items():
        assert set(p) == set(workload.KEYS), name
        assert p["description"] and "\n" not in p["description"]
        assert set(p["mix"]) <= set(CONSUMERS) and p["functions"] >= 1


def test_generate_is_seeded_and_tidy():
    a = workload.generate("uniform", seed=3, n_events=120)
    b = workload.generate("uniform", seed=3, n_events=120)
    c = workload.generate("uniform", seed=4, n_events=120)
    assert list(a.columns) == ["time", "function", "consumer", "op", "handle"]
    assert len(a) == 120 and a.equals(b) and not a.equals(c)
    assert a["time"].is_monotonic_increasing
    assert set(a["op"]) <= {"attach", "detach", "call"}


@pytest.mark.parametrize("preset", sorted(workload.PRESETS))
def test_detaches_follow_their_attaches_and_limits_hold(preset):
    p = workload.resolve(preset)
    arr = workload.generate_arrays(p, seed=1, n_events=400, workloads=3)
    for w in range(3):
        df = workload.frame(arr, w)
        live = {}
        for _, fn, c, op, h in df.itertuples(index=False):
            if op == "attach":
                assert h not in live
                live[h] = (fn, c)
                assert len(live) <= p.max_live
                assert sum(v == (fn, c) for v in live.values()) <= p.instances
            elif op == "detach":
                assert live.pop(h) == (fn, c)
        back = workload.from_frame(df, p.instances)
        assert (back["code"][0] == arr["code"][w]).all() and (back["func"][0] == arr["func"][w]).all()


def test_a_workload_does_not_depend_on_its_batch():
    p = workload.resolve("security-response")
    big = workload.generate_arrays(p, seed=7, n_events=150, workloads=4)
    one = workload.generate_arrays(p, seed=7, n_events=150, workloads=1, start=2)
    for k in ("time", "func", "code", "handle"):
        assert (big[k][2] == one[k][0]).all()
    assert workload.generate("security-response", seed=7, n_events=150).equals(workload.frame(big, 0))


def test_mix_and_functions_override_the_preset():
    df = workload.generate("uniform", seed=0, n_events=300, mix={"livepatch": 1.0}, functions=3)
    assert set(df["consumer"].dropna()) == {"livepatch"}
    assert set(df["function"]) <= {"f0", "f1", "f2"}


@pytest.mark.parametrize("kwargs, field", [
    (dict(n_events=0), "n_events"),
    (dict(n_events=-5), "n_events"),
    (dict(functions=0), "functions"),
    (dict(zipf=7.5), "zipf"),
    (dict(zipf=-1), "zipf"),
    (dict(mix={"livepatch": 0.0}), "mix"),
    (dict(mix={"livepach": 1.0}), "mix consumer"),
    (dict(mix={"livepatch": -1.0}), "mix[livepatch]"),
    (dict(call_share=1.5), "call_share"),
    (dict(instances=9), "instances"),
    (dict(lifetimes={"default": 0}), "lifetimes[livepatch]"),
    (dict(preset="nope"), "preset"),
    (dict(colour="red"), "workload parameter"),
])
def test_bad_input_is_one_clear_line(kwargs, field):
    with pytest.raises(FtsimError) as e:
        workload.generate(**kwargs)
    msg = str(e.value)
    assert msg.startswith(field) and "\n" not in msg and "allowed" in msg


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_preset_file_with_missing_or_extra_key(tmp_path, change):
    d = dict(workload.PRESETS["uniform"])
    if change == "missing":
        del d["zipf"]
    else:
        d["colour"] = "red"
    path = tmp_path / "p.json"
    path.write_text(json.dumps(d))
    with pytest.raises(FtsimError, match="zipf" if change == "missing" else "colour"):
        workload.load_preset(path)


def test_from_frame_rejects_a_detach_of_nothing():
    df = pd.DataFrame([(0.0, "f0", "kprobe", "detach", "h1")], columns=["time", "function", "consumer", "op", "handle"])
    with pytest.raises(FtsimError, match="detach handle"):
        workload.from_frame(df)
