"""Order sensitivity: for every multiset of attachments on one function, do the end state or the
refusals depend on the order?  (Notebook 07; ``ftsim.explore`` re-exports these.)"""
from __future__ import annotations

import itertools

import pandas as pd

from .flags import Errno
from .invariants import check
from .model import Model
from .policy import Policy
from .search_space import DEFAULT_CONSUMERS, FUNCTIONS, apply

def _end_state(pol: Policy, order, func: str):
    m = Model(pol)
    refused = []
    for c in order:
        d = apply(m, ("attach", c, func))
        if d["ret"]:
            refused.append((c, Errno.name_of(d["ret"])))
    out = m.simulate(func)
    attached = sorted(m.kernel.handles[h].consumer for h in m.live_handles() if m.attached(h))
    result = out.result_from if out.result_from in ("orig", "none") else m.kernel.handles[out.result_from].consumer
    end = (f"{m.line(func)['count']}:{m.line(func)['flags'].replace('M', '')}", tuple(attached),
           out.body_ran, result, tuple(check(m, func, out)))
    return end, tuple(sorted(refused))


def df_order_sensitivity(pol: Policy, consumers=DEFAULT_CONSUMERS, max_size: int = 4) -> pd.DataFrame:
    """For every multiset of 1..max_size attachments on one function: do the end state or the
    refusals depend on the order?

    :returns: a :class:`pandas.DataFrame` with one row per multiset:
      * ``policy``, ``multiset`` (consumers joined by ``+``), ``size``
      * ``orders``: distinct orders tried (all permutations)
      * ``end_states``: distinct end states (record line, consumers attached, body run, who decided
        the result, invariants broken)
      * ``refusal_sets``: distinct sets of refused attaches (consumer and errno)
      * ``sensitive``: more than one end state or refusal set
      * ``example``: two orders that differ (``a>b | b>a``), empty when insensitive
    """
    func = FUNCTIONS[0]
    rows = []
    for size in range(1, max_size + 1):
        for ms in itertools.combinations_with_replacement(consumers, size):
            outcomes = {}
            for order in sorted(set(itertools.permutations(ms))):
                outcomes[order] = _end_state(pol, order, func)
            ends = {o[0] for o in outcomes.values()}
            refs = {o[1] for o in outcomes.values()}
            sensitive = len(ends) > 1 or len(refs) > 1
            example = ""
            if sensitive:
                first = next(iter(outcomes))
                other = next(o for o, v in outcomes.items() if v != outcomes[first])
                example = ">".join(first) + " | " + ">".join(other)
            rows.append({"policy": pol.label, "multiset": "+".join(ms), "size": size, "orders": len(outcomes),
                         "end_states": len(ends), "refusal_sets": len(refs), "sensitive": sensitive,
                         "example": example})
    return pd.DataFrame(rows)


def df_order_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Share of order-sensitive multisets: policies as index, one column per multiset size."""
    return df.groupby(["policy", "size"], sort=False)["sensitive"].mean().unstack("size")


def plot_order_sensitivity(df: pd.DataFrame):
    """Bar chart of `df_order_summary(df)`: one group per policy, one bar per multiset size."""
    return _plot_order(df_order_summary(df))


def _plot_order(summary: pd.DataFrame):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    n = len(summary.columns)
    width = 0.8 / n
    for i, size in enumerate(summary.columns):
        ax.bar([j + i * width for j in range(len(summary))], summary[size], width, label=f"{size} attaches")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(summary))], list(summary.index))
    ax.set_ylabel("share of multisets order-sensitive")
    ax.set_ylim(0, 1)
    ax.set_title("Does the order of attaches change the outcome?")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
