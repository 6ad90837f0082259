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


# -- typed validation, presets loaded lazily and one by one ------------------------------------------------

import numbers
import os
import subprocess
import sys

from ftsim import cli


@pytest.mark.parametrize("kwargs, field", [
    (dict(workloads=1.0), "workloads"), (dict(start=-1), "start"), (dict(workloads=True), "workloads"),
    (dict(seed=True), "seed"), (dict(seed=-1), "seed"), (dict(seed=2**63), "seed"), (dict(seed=1.5), "seed"),
    (dict(n_events=np.float64(3)), "n_events"), (dict(seed="1"), "seed"), (dict(seed=None), "seed"),
    (dict(n_events=10**6, workloads=100), "workloads x n_events"),
])
def test_generate_arrays_sizes_are_typed(kwargs, field):
    with pytest.raises(FtsimError) as e:
        workload.generate_arrays(workload.resolve("uniform"), **{"n_events": 10, **kwargs})
    assert str(e.value).startswith(field) and "\n" not in str(e.value)


def test_numpy_integers_are_integers():
    p = workload.resolve("uniform", functions=np.int16(5), max_live=np.uint8(4))
    a = workload.generate_arrays(p, seed=np.int64(7), n_events=np.int32(30), workloads=np.uint16(2), start=np.int8(1))
    b = workload.generate_arrays(workload.resolve("uniform", functions=5, max_live=4), 7, 30, 2, 1)
    assert all((a[k] == b[k]).all() for k in ("time", "func", "code", "handle"))
    with pytest.raises(FtsimError, match="not allowed"):
        workload.generate_arrays({"functions": 3})


@pytest.mark.parametrize("kwargs, field", [
    (dict(rate=5e-324), "rate"), (dict(rate=float("inf")), "rate"), (dict(rate=float("nan")), "rate"),
    (dict(burst_gap=5e-324), "burst_gap"), (dict(functions=10**5000), "functions"), (dict(zipf=10**400), "zipf"),
    (dict(lifetimes=[1, 2]), "lifetimes"), (dict(lifetimes="abc"), "lifetimes"), (dict(lifetimes=7), "lifetimes"),
    (dict(lifetimes={"default": 5e-324}), "lifetimes[livepatch]"), (dict(lifetimes={1: 2.0}), "lifetimes consumer"),
    (dict(lifetimes={"default": True}), "lifetimes[livepatch]"), (dict(mix=[("livepatch", 1.0)]), "mix"),
    (dict(mix={"livepatch": "1"}), "mix[livepatch]"), (dict(mix={("a",): 1.0}), "mix consumer"),
    (dict(functions=True), "functions"), (dict(functions=16.0), "functions"), (dict(call_share=None), "call_share"),
    (dict(max_live=10**30), "max_live"),
])
def test_params_refuse_what_breaks_the_generator(kwargs, field):
    with pytest.raises(FtsimError) as e:
        workload.params(**kwargs)
    msg = str(e.value)
    assert msg.startswith(field) and "\n" not in msg and len(msg) < 400 and "allowed" in msg


def test_huge_values_are_shown_briefly():
    with pytest.raises(FtsimError) as e:
        workload.params(functions=10**5000)            # repr() of this int would raise
    assert "<an integer of 16610 bits>" in str(e.value)


def _preset_dir(tmp_path, monkeypatch, files):
    for name, text in files.items():
        (tmp_path / f"{name}.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.setattr(workload, "PRESET_DIR", tmp_path)
    monkeypatch.setattr(workload, "_PRESETS", None)


GOOD = json.dumps({k: v for k, v in json.loads((workload.PRESET_DIR / "uniform.json").read_text()).items()})


@pytest.mark.parametrize("text, needle", [
    ("{", "not valid JSON"), ("[]", "a JSON object"), (b"\xff\xfe{}", "not UTF-8"), ("[" * 100000, "not valid JSON"),
    ('{"a": 1, "a": 2}', "given twice"), ("1" * 5000, "not valid JSON"),
    (GOOD.replace('"lifetimes": {', '"lifetimes": [').replace('}, "mix"', '], "mix"'), "not valid JSON"),
    (GOOD.replace('"zipf": 1.1', '"zipf": NaN'), "zipf"), (GOOD.replace('"zipf": 1.1', '"zipf": 1e999'), "zipf"),
    (GOOD.replace('"functions": 16', '"functions": ' + "9" * 5000), "not valid JSON"),
    (json.dumps({**json.loads(GOOD), "lifetimes": [1, 2]}), "lifetimes"),
    (json.dumps({**json.loads(GOOD), "description": ["x"]}), "description"),
])
def test_one_bad_preset_file_breaks_only_itself(tmp_path, monkeypatch, capsys, text, needle):
    _preset_dir(tmp_path, monkeypatch, {"good": GOOD, "bad": text})
    assert list(workload.PRESETS) == ["good"] and workload.resolve("good").functions == 16
    with pytest.raises(FtsimError) as e:
        workload.resolve("bad")
    assert needle in str(e.value) and "\n" not in str(e.value) and "bad.json" in str(e.value)
    assert cli.main(["table", "--policy", "naive"]) == 0                     # every command still works
    capsys.readouterr()
    assert cli.main(["sweep", "--preset", "bad", "--out", str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.json" in err


def test_special_files_among_presets_do_not_hang(tmp_path, monkeypatch):
    os.mkfifo(tmp_path / "fifo.json")
    os.symlink("/dev/zero", tmp_path / "zero.json")
    _preset_dir(tmp_path, monkeypatch, {"good": GOOD})
    assert list(workload.PRESETS) == ["good"]
    with pytest.raises(FtsimError, match="a FIFO"):
        workload.resolve("fifo")
    with pytest.raises(FtsimError, match="a character device"):
        workload.load_preset(tmp_path / "zero.json")


def test_presets_load_lazily():
    code = ("import ftsim.workload as w, ftsim.metrics, ftsim.sweep, ftsim.cli; assert w._PRESETS is None; "
            "w.PRESETS; assert w._PRESETS is not None")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("bad_w", [-1, 3, 1.0, True])
def test_frame_index_is_checked(bad_w):
    arr = workload.generate_arrays(workload.resolve("uniform"), 0, 10, 3)
    with pytest.raises(FtsimError, match="^w: "):
        workload.frame(arr, bad_w)


@pytest.mark.parametrize("row, field", [
    ((0.0, "f٣", None, "call", None), "function"), ((0.0, "f99999", None, "call", None), "function"),
    (("x", "f0", None, "call", None), "time"), ((float("nan"), "f0", None, "call", None), "time"),
    ((0.0, "f0", ["kprobe"], "attach", "h"), "consumer"), ((0.0, "f0", "kprobe", "attach", ["h"]), "attach handle"),
    ((0.0, "f0", "kprobe", "jump", "h"), "op"),
])
def test_from_frame_checks_every_field(row, field):
    df = pd.DataFrame([row], columns=["time", "function", "consumer", "op", "handle"])
    with pytest.raises(FtsimError) as e:
        workload.from_frame(df)
    assert str(e.value).startswith(field) and "\n" not in str(e.value)
    with pytest.raises(FtsimError, match="^instances"):
        workload.from_frame(df.iloc[:0], instances=0)
