"""Pictures and numbers of the locking model (ftsim.locking): the swim-lane timeline of one schedule and a
timed Monte Carlo of the PEER callback's transient -EAGAIN."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .locking import DIRECT, FTRACE, LOCKS, TR, _enabled, _move, df_trace, interleavings, program


def plot_swimlanes(design: str = "merged-blocking", threads=("bpf_link", "klp_register")):
    """The shortest deadlocking schedule (or, without one, the schedule that shows the trylock failing)
    as a swim-lane timeline: one lane per thread, one box per step, coloured by the lock it touches."""
    r = interleavings(design, threads)
    sched = r.deadlock if r.deadlock is not None else _trylock_schedule(design, threads)
    return _plot_swimlanes(df_trace(design, threads, sched), design)


def _trylock_schedule(design, threads):
    """The shortest schedule in which a trylock fails (the merged design's transient -EAGAIN)."""
    progs = [program(design, t) for t in threads]
    init = (tuple(0 for _ in threads), (None,) * len(LOCKS), ("",) * len(threads))
    frontier, seen = [(init, [])], {init}
    while frontier:
        nxt = []
        for state, path in frontier:
            for t in range(len(threads)):
                if _enabled(progs[t], state[0][t], state[1], t):
                    s2, failed = _move(progs, state, t)
                    if failed:
                        return _finish(progs, s2, path + [(t, state[0][t])], t)
                    if s2 not in seen:
                        seen.add(s2)
                        nxt.append((s2, path + [(t, state[0][t])]))
        frontier = nxt
    return []


def _finish(progs, state, path, first):
    """Run the failing thread to its end, then the others in order."""
    order = [first] + [t for t in range(len(progs)) if t != first]
    progress = True
    while progress:
        progress = False
        for t in order:
            while _enabled(progs[t], state[0][t], state[1], t):
                path = path + [(t, state[0][t])]
                state = _move(progs, state, t)[0]
                progress = True
    return path


COLORS = {TR: "#d62728", DIRECT: "#1f77b4", FTRACE: "#2ca02c"}


SHORT = {TR: "tr", DIRECT: "direct", FTRACE: "ftrace"}


def _label(action: str) -> str:
    """A box label: `lock tr`, `try tr: FAIL`, `BLOCKED on direct`, or the op's first words."""
    for m, short in SHORT.items():
        if f"({m})" in action:
            if action.startswith("blocked"):
                return f"BLOCKED\non {short}"
            if "trylock" in action:
                return f"try {short}\n" + ("FAIL" if "fails" in action else "ok")
            return ("unlock " if "unlock" in action else "lock ") + short
    words = action.split(":")[0].replace("_", " ").split()
    return "\n".join([" ".join(words[:2]), " ".join(words[2:4])]).strip()


def _plot_swimlanes(trace: pd.DataFrame, design: str):
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    threads = list(dict.fromkeys(trace["thread"]))
    width = max(6.0, 0.62 * trace["t"].max() + 2)
    fig = Figure(figsize=(width, 1.4 + 1.0 * len(threads)))
    ax = fig.subplots()
    held = {t: "" for t in threads}
    for _, row in trace.iterrows():
        y = threads.index(row["thread"])
        lock = next((m for m in LOCKS if f"({m})" in row["action"]), None)
        blocked = row["action"].startswith("blocked")
        color = "#000000" if blocked else COLORS.get(lock, "#dddddd")
        ax.barh(y, 0.92, left=row["t"] - 0.46, height=0.5, color=color)
        ax.text(row["t"], y, _label(row["action"]), ha="center", va="center", fontsize=6.5,
                color="white" if lock or blocked else "black")
        held[row["thread"]] = row["holds"]
        for th, holds in held.items():                  # thin strips: locks each thread holds after the step
            for i, m in enumerate(LOCKS):
                if m in holds.split(", "):
                    ax.barh(threads.index(th) + 0.33 + 0.07 * i, 1.0, left=row["t"] - 0.5, height=0.06,
                            color=COLORS[m])
    ax.set_yticks(range(len(threads)), threads)
    ax.set_xticks(sorted(set(trace["t"])))
    ax.set_xlabel("step of the schedule (thin strips under a lane: locks that thread holds)")
    ax.set_ylim(-0.5, len(threads) - 0.4)
    ax.invert_yaxis()
    dead = trace["action"].str.startswith("blocked").any()
    ax.set_title(f"{design}: " + ("the shortest deadlocking schedule" if dead else "a schedule where the trylock fails"))
    ax.legend(handles=[Patch(color=c, label=m) for m, c in COLORS.items()] + [Patch(color="#000000", label="blocked")],
              fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=4, frameon=False)
    fig.tight_layout()
    return fig


# -- timed Monte Carlo ----------------------------------------------------------------------------
#: The share of a BPF update's tr->mutex hold spent before direct_mutex (building the image), under
#: direct_mutex + ftrace_lock (modify_ftrace_direct), and after (publishing, unlock).  Assumptions.
PHASES = (0.4, 0.5, 0.1)


def monte_carlo(rate: float, hold_ms: float, trials: int = 2000, seed: int = 42, phases=PHASES) -> dict:
    """A livepatch registers at a random time while BPF updates hit the same trampoline as a Poisson
    stream (`rate` per second), each holding tr->mutex `hold_ms` ms (FIFO).  The registration takes
    direct_mutex (waiting out an update inside modify_ftrace_direct), then tries tr->mutex.

    :returns: ``p_eagain`` (merged: the trylock fails), ``p_deadlock`` (a blocking mutex_lock: the
      holder is still before direct_mutex, so both wait forever), ``wait_ms`` (Rostedt's lock-dropping
      retry: mean time the registration waits for tr->mutex instead), ``utilisation`` (rate x hold)
    """
    rng = np.random.default_rng(seed)
    h = hold_ms / 1000.0
    a, b, _ = (p * h for p in phases)
    horizon = max(40 * h, 10.0 / rate)              # warm-up long enough to forget the empty start
    eagain = deadlock = 0
    waits = []
    for _ in range(trials):
        n = rng.poisson(rate * horizon)
        arrivals = np.sort(rng.uniform(0.0, horizon, n))
        t_reg = horizon
        end = -1.0
        spans = []
        for x in arrivals:
            start = max(x, end)
            end = start + h
            spans.append((start, end))
        # the registration takes direct_mutex: wait while an update is inside its direct phase
        t = t_reg
        for s, e in spans:
            if s + a <= t < s + a + b:
                t = s + a + b
        holder = next(((s, e) for s, e in spans if s <= t < e), None)
        if holder is not None:
            eagain += 1
            if t < holder[0] + a:
                deadlock += 1
            waits.append(max(e for s, e in spans if s <= t) - t)    # every queued update goes first
        else:
            waits.append(0.0)
    return {"rate": rate, "hold_ms": hold_ms, "trials": trials, "p_eagain": eagain / trials,
            "p_deadlock": deadlock / trials, "wait_ms": 1000.0 * float(np.mean(waits)),
            "utilisation": min(1.0, rate * h)}


def df_monte_carlo(rates=(1, 3, 10, 30, 100, 300), holds_ms=(0.1, 1.0, 5.0), trials: int = 1000,
                   seed: int = 42) -> pd.DataFrame:
    """`monte_carlo` over a grid.

    :returns: a :class:`pandas.DataFrame` with one row per (rate, hold): ``rate`` (BPF updates per
      second), ``hold_ms``, ``trials``, ``p_eagain``, ``p_deadlock``, ``wait_ms``, ``utilisation``.
    """
    rows = [monte_carlo(r, hm, trials, seed + i) for i, (hm, r) in
            enumerate((hm, r) for hm in holds_ms for r in rates)]
    return pd.DataFrame(rows)


def plot_monte_carlo(df: pd.DataFrame):
    """P(transient -EAGAIN) against BPF update rate, one line per hold time, utilisation dashed."""
    return _plot_mc(df)


def _plot_mc(df: pd.DataFrame):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.subplots()
    for hm, g in df.groupby("hold_ms"):
        line, = ax.plot(g["rate"], g["p_eagain"], marker="o", label=f"hold {hm:g} ms")
        ax.plot(g["rate"], g["utilisation"], linestyle="--", color=line.get_color(), alpha=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("BPF trampoline updates per second")
    ax.set_ylabel("P(livepatch gets -EAGAIN)")
    ax.set_ylim(0, 1.02)
    ax.set_title("Merged PEER trylock: transient -EAGAIN (dashed: tr->mutex utilisation)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
