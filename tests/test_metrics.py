"""Metrics, summaries with confidence intervals, and plots of randomized workloads."""
import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from ftsim import metrics, policy, workload
from ftsim.errors import FtsimError

COLS = ["time", "function", "consumer", "op", "handle"]


M, M61 = policy.get("merged").label, policy.get("merged", kernel="6.1").label   # merged 7.3, merged 6.1


@pytest.fixture(scope="module")
def out():
    return metrics.Outcomes(preset="security-response", workloads=40, events=150, seed=2)


def test_summary_shape_and_intervals(out):
    s = out.df_summary()
    assert list(s.index) == [p.label for p in policy.all_policies()]
    assert list(s.columns.get_level_values(0).unique()) == list(metrics.METRICS)
    for m in metrics.METRICS:
        t = s[m].dropna()
        assert list(s[m].columns) == ["mean", "ci_low", "ci_high"]
        assert (t["ci_low"] <= t["mean"] + 1e-12).all() and (t["mean"] <= t["ci_high"] + 1e-12).all()


def test_workload_table_and_metric_contract(out):
    df = out.df_workloads()
    assert len(df) == 40 * 5 and list(df.columns[:2]) == ["policy", "workload"]
    assert set(metrics.METRICS) <= set(df.columns)
    for name, (desc, unit) in metrics.METRICS.items():
        assert desc and unit
    shares = [m for m in metrics.METRICS if "share" in m or "refused" in m or m == "order_sensitivity"]
    v = df[shares].to_numpy(float)
    assert np.nanmin(v) >= 0 and np.nanmax(v) <= 1


def _frame(rows):
    return workload.from_frame(pd.DataFrame(rows, columns=COLS))


def test_metrics_by_hand():
    """fexit then livepatch on one function: pre-6.0 refuses the livepatch (-EBUSY); merged takes it
    after an -EAGAIN retry; naive bypasses it for the whole time the two share the function."""
    arrays = _frame([(0.0, "f0", "bpf-fexit", "attach", "a"), (1.0, "f0", "livepatch", "attach", "lp"),
                     (2.0, "f0", None, "call", None), (4.0, "f0", None, "call", None)])
    df, _ = metrics.compute(arrays, policy.all_policies())
    df = df.set_index("policy")
    assert df.loc["pre-6.0", "livepatch_refused"] == 1.0 and df.loc[M, "livepatch_refused"] == 0.0
    assert df.loc["naive", "bypass_call_share"] == 1.0 and df.loc["naive", "bypass_time_share"] == 1.0
    assert df.loc[M, "bypass_time_share"] == 0.0
    assert df.loc[M, "regenerations_per_1k"] > 0
    assert np.isnan(df.loc["pre-6.0", "bypass_time_share"])          # no livepatch ever attached


def test_told_but_not_attached_counts_the_614_kprobe():
    """livepatch then kprobe-post: from 6.14 the probe is told 0 and arms nothing (1 of 2 attaches told 0);
    on 6.1 it is refused with -EBUSY, so every attach told 0 is attached."""
    arrays = _frame([(0.0, "f0", "livepatch", "attach", "lp"), (1.0, "f0", "kprobe-post", "attach", "kp"),
                     (2.0, "f0", None, "call", None)])
    df, _ = metrics.compute(arrays, [policy.get("merged"), policy.get("merged", kernel="6.1")])
    df = df.set_index("policy")
    assert df.loc[M, "told_unattached_share"] == 0.5 and df.loc[M, "other_refused"] == 0.0
    assert df.loc[M61, "told_unattached_share"] == 0.0 and df.loc[M61, "other_refused"] == 1.0


def test_order_sensitivity_sees_who_came_first():
    """pre-6.0: whichever of livepatch and fexit comes second is refused, so swapping them changes
    the final state; under naive both attach in either order... but a different one is bypassed."""
    arrays = _frame([(0.0, "f0", "livepatch", "attach", "lp"), (1.0, "f0", "bpf-fexit", "attach", "a")])
    df, _ = metrics.compute(arrays, policy.all_policies())
    df = df.set_index("policy")["order_sensitivity"]
    assert df["pre-6.0"] == 1.0 and df[M] == 0.0


def test_plots_return_labelled_figures(out):
    for fig, needle in [(out.plot_comparison("bypass_time_share"), "bypass_time_share"),
                        (out.plot_exposure(), "Exposure"), (out.plot_cost_safety(), "Cost"),
                        (out.plot_heat_strip("merged"), "merged")]:
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        assert ax.get_xlabel() and ax.get_ylabel()
        title = ax.get_title() + (fig._suptitle.get_text() if fig._suptitle else "")
        assert needle in title
    ax = out.plot_comparison("livepatch_refused").axes[0]
    heights = [b.get_height() for b in ax.patches]
    assert heights == pytest.approx(list(out.df_summary()["livepatch_refused"]["mean"].fillna(0)))


def test_outcomes_are_seeded_and_take_names_or_policies():
    a = metrics.Outcomes(workloads=10, events=50, seed=5, policies=["merged", "song"]).df_summary()
    b = metrics.Outcomes(workloads=10, events=50, seed=5, policies=[policy.get("merged"), "song"]).df_summary()
    assert a.equals(b) and list(a.index) == [M, "song"]


@pytest.mark.parametrize("kwargs", [dict(workloads=0), dict(events=-1), dict(policies=["nope"]),
                                    dict(engine="fast"), dict(mix={"x": 1}), dict(functions=0)])
def test_outcomes_bad_input(kwargs):
    with pytest.raises(FtsimError):
        metrics.Outcomes(**{"workloads": 5, "events": 20, **kwargs})


def test_bad_metric_names_the_choices(out):
    with pytest.raises(FtsimError, match="livepatch_refused"):
        out.plot_comparison("nope")


def test_chunked_compute_equals_one_piece(monkeypatch):
    arrays = workload.generate_arrays(workload.resolve("observability"), seed=4, n_events=80, workloads=9)
    one, res1 = metrics.compute(arrays, policy.all_policies())
    monkeypatch.setattr(metrics, "CHUNK", 4)
    many, res2 = metrics.compute(arrays, policy.all_policies(), progress=False)
    pd.testing.assert_frame_equal(one, many)
    for k in res1:
        assert (res1[k] == res2[k]).all()


# -- bad input: one-line errors, nothing that hangs --------------------------------------------------------

def _arrays():
    return workload.generate_arrays(workload.resolve("uniform"), seed=1, n_events=20, workloads=2)


def _with(**change):
    a = _arrays()
    a.update(change)
    return a


@pytest.mark.parametrize("arrays, pols, field", [
    (_arrays(), [], "policies"), (_arrays(), "nope", "policy"), (_arrays(), 5, "policies"), (_arrays(), [5], "policies"),
    (_arrays(), ["merged", "merged"], "policies"), ({}, "all", "arrays"), ([1, 2], "all", "arrays"),
    (_with(code=np.full((2, 20), 999, np.int16)), "all", "arrays['code']"),
    (_with(func=np.full((2, 20), -1, np.int16)), "all", "arrays['func']"),
    (_with(time=np.full((2, 20), np.inf)), "all", "arrays['time']"),
    (_with(handle=np.zeros((2, 21), np.int32)), "all", "arrays['handle'] shape"),
    (_with(code=np.zeros(20, np.int16)), "all", "arrays['code']"),
    (_with(instances=0), "all", "arrays['instances']"), (_with(instances=True), "all", "arrays['instances']"),
    (_with(code=np.zeros((2, 20))), "all", "arrays['code']"),
])
def test_compute_checks_its_input(arrays, pols, field):
    with pytest.raises(FtsimError) as e:
        metrics.compute(arrays, pols)
    assert str(e.value).startswith(field) and "\n" not in str(e.value)


@pytest.mark.parametrize("bins", [0, -1, 10**9, 2.5, True, "40", None])
def test_df_exposure_bins_are_bounded(out, bins):
    with pytest.raises(FtsimError, match="^bins: "):
        out.df_exposure(bins)
    assert len(out.df_exposure(np.int64(3))) == 3 * len(out.policies)


@pytest.mark.parametrize("call", [lambda o: o.plot_comparison(["x"]), lambda o: o.df_heat(["merged"]),
                                  lambda o: o.df_heat("linus"), lambda o: metrics.summarize("x"),
                                  lambda o: metrics.summarize(o.df_workloads(), "livepatch_refused")])
def test_getters_refuse_wrong_types(out, call):
    with pytest.raises(FtsimError):
        call(out)


def test_outcomes_take_numpy_integers():
    a = metrics.Outcomes(workloads=np.int64(4), events=np.int32(30), seed=np.uint8(2), policies="naive").df_workloads()
    b = metrics.Outcomes(workloads=4, events=30, seed=2, policies="naive").df_workloads()
    pd.testing.assert_frame_equal(a, b)
