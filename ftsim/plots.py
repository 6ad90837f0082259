"""Plot helpers for workload outcomes: each takes a ``df_*`` table and returns a matplotlib Figure
(never shown, never registered with pyplot, so dashboards and scripts own their figures)."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

COLORS = {"pre-6.0": "#9e9e9e", "rostedt": "#7aa6d6", "song": "#8cc084", "merged": "#f0a35e", "naive": "#d65f5f"}


def _color(label: str) -> str:
    return COLORS.get(label.split("[")[0], "#7aa6d6")


def _unit(metric: str) -> str:
    from .metrics import METRICS
    return METRICS[metric][1] if metric in METRICS else ""


def _plot_comparison(s, metric: str, what: str) -> Figure:
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    mean = s["mean"].to_numpy(float)
    lo = np.nan_to_num(mean - s["ci_low"].to_numpy(float))
    hi = np.nan_to_num(s["ci_high"].to_numpy(float) - mean)
    ax.bar(list(s.index), np.nan_to_num(mean), color=[_color(p) for p in s.index])
    ax.errorbar(list(s.index), np.nan_to_num(mean), yerr=[lo, hi], fmt="none", ecolor="0.2", capsize=4)
    ax.set_ylabel(f"{metric}\n({_unit(metric)})")
    ax.set_xlabel("design (policy)")
    ax.set_title(f"{metric}: mean and 95% CI per design\n{what}", fontsize=10)
    return fig


def _plot_exposure(df, what: str) -> Figure:
    fig = Figure(figsize=(8, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, sharex=True)
    for label, g in df.groupby("policy", sort=False):
        ax1.plot(g["time"], g["bypassed"], label=label, color=_color(label))
        ax2.plot(g["time"], g["discarded"], label=label, color=_color(label))
    ax1.set_ylabel("livepatches bypassed\n(share of livepatched functions)")
    ax2.set_ylabel("mutations discarded\n(share of functions with a mutator)")
    for ax in (ax1, ax2):
        ax.set_xlabel("time (s)")
    ax1.legend(fontsize=8)
    fig.suptitle(f"Exposure to silent bypass and discard over time\n{what}", fontsize=10)
    return fig


def _plot_cost_safety(summary, what: str) -> Figure:
    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.add_subplot()
    cost = summary[("regenerations_per_1k", "mean")] + summary[("retries_per_1k", "mean")]
    risk = summary[("bypass_time_share", "mean")].fillna(0) + summary[("discard_time_share", "mean")].fillna(0)
    for label in summary.index:
        ax.scatter(cost[label], risk[label], s=60, color=_color(label))
        ax.annotate(label, (cost[label], risk[label]), textcoords="offset points", xytext=(5, 4), fontsize=9)
    ax.set_xlabel("regenerations + retries (per 1,000 events)")
    ax.set_ylabel("exposure: bypass + discard time share")
    ax.set_title(f"Cost versus safety per design\n{what}", fontsize=10)
    return fig


def _plot_heat_strip(df, policy: str, what: str) -> Figure:
    fig = Figure(figsize=(9, 2.6), layout="constrained")
    ax = fig.add_subplot()
    calls = df["calls"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = np.vstack([df["bypassed_calls"] / np.maximum(calls, 1), df["discarded_calls"] / np.maximum(calls, 1),
                          df["refused"] / np.maximum(df["attaches"].to_numpy(float), 1)])
    im = ax.imshow(rows, aspect="auto", cmap="magma_r", vmin=0, vmax=max(float(np.nanmax(rows)), 1e-9))
    ax.set_yticks(range(3), ["bypassed calls", "discarded calls", "refused attaches"])
    ax.set_ylabel("exposure (share)")
    step = max(1, len(df) // 16)
    ax.set_xticks(range(0, len(df), step), list(df.index)[::step])
    ax.set_xlabel("function (most popular first)")
    fig.colorbar(im, ax=ax, label="share")
    ax.set_title(f"Per-function exposure under {policy}\n{what}", fontsize=10)
    return fig
