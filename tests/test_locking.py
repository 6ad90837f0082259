"""The locking model: hand-counted schedules, the PEER deadlock a blocking mutex_lock would cause, the
trylock's transient -EAGAIN, the designs compared, and the Monte Carlo's shape."""
import pytest

from ftsim import locking as K, lockstats as S
from ftsim.errors import FtsimError
from ftsim.locking import DIRECT, TR, L, RET, U

PAIR = ("bpf_link", "klp_register")


def test_schedules_counted_by_hand():
    a = [L(TR, "a"), U(TR, "a"), RET("0", "a")]
    # one lock, two threads: whoever locks first must finish its critical section -> 2 orders of the
    # critical sections, and the other thread's lock/unlock/ret then run alone; the rets may interleave
    r = K.interleavings("merged", ("a", "b"), programs={"a": a, "b": a})
    # a: L U R, b: L U R; b may lock only after a's U: schedules = a-first (a's R before/after b's 3 steps:
    # 4 places) + b-first (4) = 8
    assert r.schedules == 8 and r.outcomes == {"a=0 | b=0": 8} and r.deadlock is None
    abba = {"a": [L(TR, "a"), L(DIRECT, "a"), U(DIRECT, "a"), U(TR, "a"), RET("0", "a")],
            "b": [L(DIRECT, "b"), L(TR, "b"), U(TR, "b"), U(DIRECT, "b"), RET("0", "b")]}
    r = K.interleavings("merged", ("a", "b"), programs=abba)
    assert r.outcomes["DEADLOCK"] == 2 and len(r.deadlock) == 2


def test_blocking_peer_deadlocks_with_the_bpf_attach():
    r = K.interleavings("merged-blocking", PAIR)
    assert r.outcomes["DEADLOCK"] > 0
    assert sorted(r.stuck) == ["bpf_link waits for direct_mutex held by klp_register",
                               "klp_register waits for tr->mutex held by bpf_link"]
    trace = r.df_trace()
    assert trace["action"].iloc[0] == "mutex_lock(tr->mutex)" and trace["thread"].iloc[0] == "bpf_link"
    assert trace["action"].str.startswith("blocked").sum() == 2
    assert len(r.deadlock) == 6


@pytest.mark.parametrize("threads", [PAIR, PAIR + ("bpf_link2",), PAIR + ("klp_unregister",)])
def test_trylock_never_deadlocks_and_gives_transient_eagain(threads):
    r = K.interleavings("merged", threads)
    assert "DEADLOCK" not in r.outcomes
    klp = {o.split(" | ")[1] for o in r.outcomes}
    assert klp == {"klp_register=0", "klp_register=-EAGAIN"}


def test_designs_compared():
    df = K.df_designs(thread_sets=(PAIR,)).set_index("design")
    assert df.loc["merged", "deadlocks"] == 0 and df.loc["merged-blocking", "deadlocks"] > 0
    # Rostedt's first proposal calls back with ftrace_lock held: every schedule deadlocks
    assert df.loc["rostedt-callback", "deadlocks"] == df.loc["rostedt-callback", "schedules"]
    assert df.loc["rostedt-drop", "outcomes"] == f"bpf_link=0 | klp_register=0 x{df.loc['rostedt-drop', 'schedules']}"
    assert "-EBUSY" in df.loc["song-refuse", "outcomes"] and "-EAGAIN" not in df.loc["song-refuse", "outcomes"]


def test_bad_names():
    with pytest.raises(FtsimError):
        K.interleavings("nope", PAIR)
    with pytest.raises(FtsimError):
        K.interleavings("merged", ("bpf_link", "nope"))


def test_monte_carlo_shape():
    low = S.monte_carlo(1, 0.1, trials=500, seed=1)
    high = S.monte_carlo(1000, 5.0, trials=300, seed=1)
    mid = S.monte_carlo(100, 1.0, trials=3000, seed=1)
    assert low["p_eagain"] < 0.01 and high["p_eagain"] > 0.95
    assert mid["p_deadlock"] <= mid["p_eagain"]
    assert abs(mid["p_eagain"] - mid["utilisation"]) < 0.04          # about the share of time tr->mutex is held
    assert S.monte_carlo(100, 1.0, trials=200, seed=7) == S.monte_carlo(100, 1.0, trials=200, seed=7)


def test_plots_show_their_data():
    df = S.df_monte_carlo(rates=(10, 100), holds_ms=(1.0,), trials=100)
    ax = S.plot_monte_carlo(df).axes[0]
    assert list(ax.lines[0].get_ydata()) == list(df["p_eagain"]) and ax.get_xscale() == "log"
    sw = S.plot_swimlanes("merged-blocking", PAIR).axes[0]
    assert [t.get_text() for t in sw.get_yticklabels()] == list(PAIR)
    assert "deadlock" in sw.get_title()


def _doc_columns(fn):
    import re
    return re.findall(r"``(\w+)``", fn.__doc__.split(":returns:")[1])


def test_frames_match_their_docstrings():
    r = K.interleavings("merged-blocking", PAIR)
    assert list(r.df_outcomes().columns) == _doc_columns(K.Interleavings.df_outcomes)
    assert list(r.df_trace().columns) == _doc_columns(K.Interleavings.df_trace)[:5]
    assert list(K.df_designs(thread_sets=(PAIR,)).columns) == _doc_columns(K.df_designs)
    assert list(S.df_monte_carlo(rates=(10,), holds_ms=(1.0,), trials=10).columns) == _doc_columns(S.df_monte_carlo)


@pytest.mark.parametrize("design", ["merged", "rostedt-drop"])
def test_song_eagain_is_internal(design):
    # the SELF -EAGAIN and its retry run under tr->mutex, in lock order: never a deadlock with the
    # livepatch leaving, and the BPF caller is always told 0
    r = K.interleavings(design, ("bpf_register", "klp_unregister"))
    assert "DEADLOCK" not in r.outcomes
    assert all(o.startswith("bpf_register=0") for o in r.outcomes)


def test_blocking_disable_peer_deadlocks_too():
    r = K.interleavings("merged-blocking", ("bpf_register", "klp_unregister"))
    assert sorted(r.stuck) == ["bpf_register waits for direct_mutex held by klp_unregister",
                               "klp_unregister waits for tr->mutex held by bpf_register"]
