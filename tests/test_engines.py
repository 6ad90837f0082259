"""The batch engine reproduces the reference engine exactly: per event, per metric, every design."""
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ftsim import batch, cache, engine, metrics, policy, workload
from ftsim.consumers import NAMES as CONSUMERS

os.environ.setdefault("FTSIM_CACHE", "off")   # these tests build the tables from the model, not from disk

POLICIES = policy.all_policies() + [policy.get("merged", kernel="6.1"), policy.get("merged", kernel="6.12")]
if "kprobe_arm_error_dropped" in {f.name for f in __import__("dataclasses").fields(policy.Policy)}:
    POLICIES.append(policy.get("merged", kprobe_arm_error_dropped=True))
COLS = ["time", "function", "consumer", "op", "handle"]


def _compare(arrays, pols=POLICIES):
    b = batch.run(arrays, pols)
    for i, p in enumerate(pols):
        r = engine.run(arrays, p, memo_calls=False)
        for k in engine.RESULT_FIELDS:
            assert (r[k] == b[k][i]).all(), (p.label, k, np.argwhere(r[k] != b[k][i])[:3].tolist())


@st.composite
def workloads(draw):
    """Random event lists over few functions (so events pile up on one function), valid detaches."""
    n_func = draw(st.integers(1, 3))
    instances = draw(st.integers(1, 2))
    consumers = draw(st.lists(st.sampled_from(CONSUMERS), min_size=1, max_size=8, unique=True))
    rows, live, k = [], [], 0
    for t in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["attach", "attach", "detach", "call"]))
        fn = f"f{draw(st.integers(0, n_func - 1))}"
        if kind == "detach" and live:
            h, f2, c = live.pop(draw(st.integers(0, len(live) - 1)))
            rows.append((float(t), f2, c, "detach", h))
        elif kind == "attach":
            c = draw(st.sampled_from(consumers))
            if sum(1 for _, f2, c2 in live if (f2, c2) == (fn, c)) < instances:
                k += 1
                live.append((f"h{k}", fn, c))
                rows.append((float(t), fn, c, "attach", f"h{k}"))
        else:
            rows.append((float(t), fn, None, "call", None))
    rows.append((float(len(rows) + 1), "f0", None, "call", None))
    return workload.from_frame(pd.DataFrame(rows, columns=COLS), instances)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads())
def test_batch_equals_reference_on_random_event_lists(arrays):
    _compare(arrays)


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(sorted(workload.PRESETS)), st.integers(0, 10**6), st.integers(1, 3))
def test_batch_equals_reference_on_generated_workloads_and_metrics(preset, seed, instances):
    p = workload.resolve(preset, instances=instances)
    arrays = workload.generate_arrays(p, seed=seed, n_events=120, workloads=3)
    _compare(arrays)
    a, _ = metrics.compute(arrays, POLICIES[:5], "batch")
    r, _ = metrics.compute(arrays, POLICIES[:5], "reference")
    pd.testing.assert_frame_equal(a, r)


def _peer_gap(with_probe_elsewhere: bool):
    rows = [(0.0, "f1", "bpf-override-return", "attach", "elsewhere")] if with_probe_elsewhere else []
    rows += [(1.0, "f0", "livepatch", "attach", "lp"), (2.0, "f0", "bpf-override-return", "attach", "bor"),
             (3.0, "f0", None, "call", None)]
    return workload.from_frame(pd.DataFrame(rows, columns=COLS))


@pytest.mark.parametrize("pol", policy.NAMES)
def test_a_probe_on_another_function_decides_who_wins_the_ip(pol):
    """The shared kprobe ops registered for f1 is older than f0's klp_ops, so on f0 it runs last and its
    override stub wins; without it, the kprobe ops registers after klp_ops and the livepatch wins."""
    p = [policy.get(pol)]
    near, far = batch.run(_peer_gap(False), p), batch.run(_peer_gap(True), p)
    lp, bor = 1 + CONSUMERS.index("livepatch"), 1 + CONSUMERS.index("bpf-override-return")
    assert near["src"][0, 0, -1] == lp and far["src"][0, 0, -1] == bor
    for arrays in (_peer_gap(False), _peer_gap(True)):
        _compare(arrays, p)


def test_refused_attach_then_detach_is_enoent_in_both_engines():
    rows = [(0.0, "f0", "bpf-fexit", "attach", "a"), (1.0, "f0", "livepatch", "attach", "lp"),
            (2.0, "f0", "livepatch", "detach", "lp")]
    arrays = workload.from_frame(pd.DataFrame(rows, columns=COLS))
    r = batch.run(arrays, [policy.get("pre-6.0")])
    assert list(r["ret"][0, 0]) == [0, -16, -2]
    _compare(arrays)


def test_tables_persist_between_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("FTSIM_CACHE", str(tmp_path))
    monkeypatch.setattr(batch, "TABLES", {})
    arrays = workload.generate_arrays(workload.resolve("bpf-lsm"), seed=9, n_events=100, workloads=5)
    first = batch.run(arrays, POLICIES, persist=True)
    assert not list(tmp_path.glob("tables-*.pickle"))              # nothing written unless asked
    assert len(batch.save_tables()) == 1
    assert len(list(tmp_path.glob("tables-*.pickle"))) == 1
    monkeypatch.setattr(batch, "TABLES", {})
    again = batch.run(arrays, POLICIES, persist=True)
    saved = batch.tables(1).transitions
    assert saved == batch.tables(1).saved and saved > 0            # nothing had to be recomputed
    for k in engine.RESULT_FIELDS:
        assert (first[k] == again[k]).all()
    n = len(batch.tables(1).snap)                        # saved without spare capacity: grows again
    assert batch.tables(1).next.size == n * batch.tables(1).K
    _compare(workload.generate_arrays(workload.resolve("uniform"), seed=4, n_events=150, workloads=6))
    assert len(batch.tables(1).snap) > n
    monkeypatch.setenv("FTSIM_CACHE", "off")
    assert cache.path_for(1) is None


@pytest.mark.skipif("kprobe_arm_error_dropped" not in {f.name for f in __import__("dataclasses").fields(policy.Policy)},
                    reason="policy choice not in this core")
def test_an_unarmed_probe_holds_no_shared_ops():
    """With the arming error dropped, kprobe-post on a livepatched f0 is told 0 but holds no ops; the
    next kprobe-post (on f1) must still register kprobe_ipmodify_ops and ask f1's trampoline (PEER)."""
    rows = [(0.0, "f1", "bpf-fexit", "attach", "a"), (1.0, "f0", "livepatch", "attach", "lp"),
            (2.0, "f0", "kprobe-post", "attach", "k0"), (3.0, "f1", "kprobe-post", "attach", "k1"),
            (4.0, "f0", "kprobe-post", "detach", "k0"), (5.0, "f1", None, "call", None)]
    arrays = workload.from_frame(pd.DataFrame(rows, columns=COLS))
    p = policy.get("merged", kprobe_arm_error_dropped=True)
    r = engine.run(arrays, p, memo_calls=False)
    assert r["ret"][0, 2] == 0 and r["callbacks"][0, 3] >= 1
    _compare(arrays, [p])


def test_prune_deletes_only_stale_tables_of_other_model_versions(tmp_path, monkeypatch):
    monkeypatch.setenv("FTSIM_CACHE", str(tmp_path))
    now = 1_000_000_000.0
    current = cache.path_for(1)
    current.write_bytes(b"")
    other_old, other_new = tmp_path / "tables-0000-i1.pickle", tmp_path / "tables-1111-i2.pickle"
    legacy = tmp_path / "tables-2222.pickle"                  # the naming before the instances suffix
    for path, age in ((current, 10 * cache.STALE_SECONDS), (other_old, cache.STALE_SECONDS + 1),
                      (other_new, cache.STALE_SECONDS - 60), (legacy, 2 * cache.STALE_SECONDS)):
        path.touch()
        os.utime(path, (now - age, now - age))
    gone = cache.prune(now=now)
    assert sorted(gone) == sorted([other_old, legacy])
    assert current.exists() and other_new.exists() and not other_old.exists()


def test_a_long_discovery_shows_a_bar_and_warm_tables_do_not(monkeypatch):
    monkeypatch.setattr(batch, "TABLES", {})
    monkeypatch.setattr(batch, "DISCOVERY_BAR_AFTER", 0.0)
    bars = []

    class Bar:
        def __init__(self, total, done):
            self.total, self.n, self.closed = total, done, False
            bars.append(self)

        def update(self, n=1):
            self.n += n

        def set_postfix(self, **kw):
            self.postfix = kw

        def close(self):
            self.closed = True

    monkeypatch.setattr(batch, "_discovery_bar", Bar)
    arrays = workload.generate_arrays(workload.resolve("uniform"), seed=3, n_events=60, workloads=4)
    batch.run(arrays, POLICIES[:2])
    assert len(bars) == 1 and bars[0].closed and bars[0].n == bars[0].total == 60
    assert bars[0].postfix["states"] == len(batch.tables(arrays["instances"]).snap)
    batch.run(arrays, POLICIES[:2])                           # every transition known: no bar
    assert len(bars) == 1
