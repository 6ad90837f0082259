"""Plot and display helpers: the workload-outcome figures (each takes a ``df_*`` table and returns a
matplotlib Figure, never shown, never registered with pyplot, so dashboards and scripts own their
figures), the policy colours, and ``Table``/``fold``, which show a DataFrame as a table that reads
well (prose left-aligned and wrapped, times on one line, Message-IDs and commits as links).

    Table(df, links={"message_id": lore}, nowrap=["when"])     # a notebook cell's last line
    fold(df, "the values behind the figure")                   # the same, folded under a summary line
"""
from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

COLORS = {"pre-6.0": "#9e9e9e", "rostedt": "#7aa6d6", "song": "#8cc084", "merged": "#f0a35e", "naive": "#d65f5f"}


def _color(label: str) -> str:
    """The colour of a policy label (``merged``, ``merged 6.1``, ``merged[6.1]``: the design's)."""
    return COLORS.get(re.split(r"[\[ ]", str(label))[0], "#7aa6d6")


# -- Links --------------------------------------------------------------------------------------------

LORE = "https://lore.kernel.org/all/{}/"
GIT = "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git"
ELIXIR = "https://elixir.bootlin.com/linux/{tag}/A/ident/{ident}"


def lore(message_id: str) -> str:
    """The lore.kernel.org address of a Message-ID ('' for an empty or incomplete one)."""
    m = str(message_id or "").strip().strip("<>")
    return LORE.format(m) if m and "…" not in m and "@" in m else ""


def commit(sha: str) -> str:
    """The git.kernel.org page of a mainline commit (12 or more hex digits; '' otherwise)."""
    s = str(sha or "").strip()
    return f"{GIT}/commit/?id={s}" if re.fullmatch(r"[0-9a-f]{12,40}", s) else ""


def source_file(path: str, tag: str | None = None) -> str:
    """The git.kernel.org page of a file of the kernel tree (at ``tag``, e.g. ``v5.19``; else master)."""
    return f"{GIT}/tree/{path.strip()}" + (f"?h={tag}" if tag else "")


def source_function(name: str, tag: str = "latest") -> str:
    """Where a kernel function is defined and used (Elixir's identifier search at ``tag``)."""
    return ELIXIR.format(tag=tag, ident=name.strip())


# -- Tables that read well -------------------------------------------------------------------------

_TD = "text-align:left;vertical-align:top;padding:2px 6px"
_TH = "text-align:left;vertical-align:bottom;padding:2px 6px"


def _cell(value, link=None, nowrap=False, code=False, raw=False, right=False, extra="") -> str:
    if raw:
        return f'<td style="{_TD}">{value}</td>'
    if isinstance(value, pd.Timestamp):
        text = value.strftime("%Y-%m-%d %H:%M")
    elif value is None or (isinstance(value, float) and np.isnan(value)):
        text = ""
    else:
        text = str(value)
    body = html.escape(text)
    if code and text:
        body = f"<code>{body}</code>"
    href = link(value) if callable(link) else link
    if href:
        body = f'<a href="{html.escape(href)}" target="_blank" rel="noopener">{body}</a>'
    style = (_TD.replace("left", "right") if right else _TD) + (";white-space:nowrap" if nowrap else "") + extra
    return f'<td style="{style}">{body}</td>'


class Table:
    """A DataFrame as an HTML table for reading: text columns left-aligned (prose wraps at word
    boundaries, never cut), ``nowrap`` columns (times, ids) on one line, ``links`` columns as links
    (column -> function value -> address, e.g. ``lore``), ``code`` columns in monospace, numbers
    right-aligned (integers as integers, others to 4 significant digits); ``raw`` columns hold HTML.  The plain-text form is the repr of
    ``plain`` (default: the DataFrame itself)."""

    def __init__(self, df: pd.DataFrame, links: dict | None = None, nowrap=(), code=(), index: bool = True,
                 caption: str | None = None, widths: dict | None = None, raw=(), plain: pd.DataFrame | None = None,
                 prose=(), breakable=()):
        self.df, self.links, self.nowrap, self.code = df, dict(links or {}), set(nowrap), set(code)
        self.prose, self.breakable = set(prose), set(breakable)
        self.index, self.caption, self.widths, self.raw = index, caption, dict(widths or {}), set(raw)
        self.plain = df if plain is None else plain

    def _repr_html_(self) -> str:
        df = self.df
        cols = list(df.columns)
        head = []
        if self.index:
            head.append(f'<th style="{_TH}">{html.escape(str(df.index.name or ""))}</th>')
        for c in cols:
            w = f";min-width:{self.widths[c]}" if c in self.widths else ";min-width:16em" if c in self.prose else ""
            w += ";white-space:nowrap" if len(str(c)) <= 12 else ""
            head.append(f'<th style="{_TH}{w}">{html.escape(str(c))}</th>')
        rows = []
        numeric = {c for c in cols if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])}
        for idx, row in df.iterrows():
            cells = []
            if self.index:
                cells.append(_cell(idx, nowrap=True).replace("<td", "<th", 1).replace("</td>", "</th>"))
            for c in cols:
                v = row[c]
                if isinstance(v, (float, np.floating)) and not np.isnan(v):
                    v = _number(v)
                extra = ";overflow-wrap:anywhere;max-width:15em" if c in self.breakable else ""
                cells.append(_cell(v, self.links.get(c), c in self.nowrap, c in self.code, c in self.raw,
                                   c in numeric, extra))
            rows.append("<tr>" + "".join(cells) + "</tr>")
        cap = f"<caption style=\"text-align:left\">{html.escape(self.caption)}</caption>" if self.caption else ""
        return (f'<table class="ftsim-table dataframe">{cap}<thead><tr>{"".join(head)}</tr></thead>'
                f'<tbody>{"".join(rows)}</tbody></table>')

    def __repr__(self) -> str:
        return (self.caption + "\n" if self.caption else "") + repr(self.plain)


def _number(v) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.4g}"


class Folded:
    """A table folded under a one-line summary (HTML ``<details>``): the reader opens it when the
    figure above is not enough; the plain-text form (what nbval compares) is the whole table."""

    def __init__(self, table, summary: str):
        self.table, self.summary = table, summary

    def _repr_html_(self) -> str:
        if hasattr(self.table, "_repr_html_"):
            inner = self.table._repr_html_()
        else:
            inner = f"<pre>{html.escape(self.table if isinstance(self.table, str) else repr(self.table))}</pre>"
        return (f'<details class="ftsim-fold"><summary>{html.escape(self.summary)}</summary>'
                f"{inner}</details>")

    def __repr__(self) -> str:
        body = self.table if isinstance(self.table, str) else repr(self.table)
        return f"{self.summary}\n{body}"


def fold(df, summary: str = "the values behind the figure", **table_kw) -> Folded:
    """``df`` (a DataFrame, a Table or a text) folded under ``summary``."""
    return Folded(df if isinstance(df, Table) or not isinstance(df, pd.DataFrame) else Table(df, **table_kw),
                  summary)


# -- Workload outcomes --------------------------------------------------------------------------------

def _plot_comparison(s, metric: str, what: str, fig: Figure | None = None, unit: str = "") -> Figure:
    """Bars with 95% intervals, one per policy label of ``s`` (index; columns mean, ci_low, ci_high)."""
    fig = fig or Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    mean = s["mean"].to_numpy(float)
    lo = np.nan_to_num(mean - s["ci_low"].to_numpy(float))
    hi = np.nan_to_num(s["ci_high"].to_numpy(float) - mean)
    ax.bar(list(s.index), np.nan_to_num(mean), color=[_color(p) for p in s.index])
    ax.errorbar(list(s.index), np.nan_to_num(mean), yerr=[lo, hi], fmt="none", ecolor="0.2", capsize=4)
    for x, m in enumerate(mean):
        if np.isnan(m):
            ax.text(x, 0, "no data", ha="center", va="bottom", fontsize=8, color="0.4")
    ax.set_ylabel(f"{metric}\n({unit})" if unit else metric)
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


def _plot_cost_safety(summary, what: str, fig: Figure | None = None) -> Figure:
    """Cost (rebuilds + retries per 1,000 events) against exposure (bypass + discard time share), one
    labelled point per policy; labels of points that (nearly) coincide are stacked and joined."""
    fig = fig or Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    cost = summary[("regenerations_per_1k", "mean")] + summary[("retries_per_1k", "mean")]
    risk = summary[("bypass_time_share", "mean")].fillna(0) + summary[("discard_time_share", "mean")].fillna(0)
    for label in summary.index:
        ax.scatter(cost[label], risk[label], s=60, color=_color(label), zorder=3, edgecolor="0.2", linewidth=0.5)
    xr = (cost.max() - cost.min()) or 1.0
    yr = (risk.max() - risk.min()) or 1.0
    # points closer than ~6 % of both axes share a label stack
    order = sorted(summary.index, key=lambda p: (round(risk[p] / yr, 2), cost[p]))
    stacks: list[list[str]] = []
    for p in order:
        for st in stacks:
            q = st[0]
            if abs(cost[p] - cost[q]) / xr < 0.06 and abs(risk[p] - risk[q]) / yr < 0.06:
                st.append(p)
                break
        else:
            stacks.append([p])
    for st in stacks:
        x, y = cost[st[0]], risk[st[0]]
        right = (x - cost.min()) / xr < 0.75
        for k, p in enumerate(st):
            ax.annotate(str(p), (cost[p], risk[p]), textcoords="offset points",
                        xytext=(8 if right else -8, 6 + 13 * k), ha="left" if right else "right", fontsize=9,
                        color="0.1", arrowprops=dict(arrowstyle="-", color="0.6", linewidth=0.6) if k else None)
    ax.margins(x=0.12, y=0.18)
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
