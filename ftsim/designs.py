"""The designs side by side, without a front end: decision grids, their differences, the shortest
invariant breaks, what a conflict costs, a scenario under every design, and the call path.

The notebooks' dashboards (``ftsim.widgets``) are thin UIs over these functions; every ``df_*`` returns
a tidy DataFrame and every ``plot_*`` a matplotlib Figure built from the matching ``df_*``.
"""
from __future__ import annotations

import itertools
from functools import lru_cache

import pandas as pd

from . import consumers
from . import policy as policies
from . import scenario as scenarios
from .flags import Errno
from .invariants import INVARIANTS
from .paths import DATA
from .callpath import CALL_PATH, df_call_path, plot_call_path  # noqa: F401 - the notebooks' designs.*
from .results import key as _key
from .results import stored
from .rulestable import df_rules, rules_table  # noqa: F401 - the notebooks' designs.*
from .tables import PAIR_FUNCTION, df_decisions

SCENARIOS = DATA / "scenarios"
#: the consumers that take part in the conflict (the grids' default; the others never conflict)
KEY_CONSUMERS = ("livepatch", "kprobe-post", "fail-function", "bpf-override-return", "kprobe",
                 "bpf-fentry", "bpf-fexit", "bpf-fmod-ret", "direct")
VALUES = ("result", "body_ran", "result_from", "record", "violations")


# -- A scenario under every design ----------------------------------------------------------------

def load_scenario(name: str) -> scenarios.Scenario:
    """A scenario of data/scenarios by its file name without ``.fts`` (e.g. ``thread-merged``)."""
    return scenarios.parse_file(SCENARIOS / f"{name}.fts")


def scenario_text(steps, function: str) -> str:
    """A scenario file (data/scenarios/FORMAT.md) from (op, consumer) pairs; ``detach CONSUMER``
    detaches the newest live attach of that consumer, an impossible detach becomes a comment."""
    lines, live = [], []
    counts: dict[str, int] = {}
    for op, consumer in steps:
        if op == "attach":
            counts[consumer] = counts.get(consumer, 0) + 1
            handle = consumer if counts[consumer] == 1 else f"{consumer}-{counts[consumer]}"
            live.append(handle)
            lines.append(f"attach {consumer} {function}" + (f" as {handle}" if handle != consumer else ""))
        elif op == "detach":
            mine = [h for h in live if h == consumer or h.startswith(consumer + "-")
                    and h[len(consumer) + 1:].isdigit()]
            if mine:
                live.remove(mine[-1])
                lines.append(f"detach {mine[-1]}")
            else:
                lines.append(f"# detach {consumer}: nothing of it is attached")
        elif op == "call":
            lines.append(f"call {function}")
    return "\n".join(lines) + "\n"


def df_scenario_by_policy(text, policy_list=None) -> pd.DataFrame:
    """Run one scenario (its text, or a parsed ``Scenario``) under each policy.

    :returns: a DataFrame with one row per step (index: the step's text) and one column per policy;
      a cell reads ``RET COUNT:FLAGS`` for attach/detach, plus ``cb=N retry=N regen=N`` when not zero,
      ``body=B <- R`` for a call, and ``!Name`` for each invariant broken after the step.
    """
    sc = text if isinstance(text, scenarios.Scenario) else scenarios.parse_text(text, "builder")
    cols = {}
    for pol in policy_list or policies.all_policies():
        cells = []
        for d in scenarios.run(sc, pol):
            if d["op"] == "call":
                cell = f"body={d['body_ran']} <- {d['result_from']}"
            else:
                rec = d["record"]
                cell = f"{Errno.name_of(d['ret'])} {rec['count']}:{rec['flags'] or '-'}"
                extra = [f"{k}={d[v]}" for k, v in (("cb", "callbacks"), ("retry", "retries"),
                                                     ("regen", "regenerations")) if d[v]]
                cell += (" " + " ".join(extra)) if extra else ""
            for v in d["violations"]:
                cell += f" !{v}"
            cells.append(cell)
        cols[pol.label] = cells
    index = pd.Index([st.text for st in sc.steps], name="step")
    return pd.DataFrame(cols, index=index)



# -- Labels and stored results ---------------------------------------------------------------------

def label(pol) -> str:
    """What every dashboard output calls a design: its name, and for ``merged`` the kernel modelled
    (``merged 6.18``, ``merged 6.1``), whatever ``Policy.label`` writes (``merged[6.1]`` or, once it
    carries the kernel, ``merged 7.3``)."""
    pol = as_policy(pol)
    text = pol.label
    if pol.name == "merged" and " " not in text:
        text = f"merged {pol.kernel or policies.NEWEST_KERNEL}"
    return text


# -- Decision grids -------------------------------------------------------------------------------

@lru_cache(maxsize=64)
def _decisions(pol: policies.Policy) -> pd.DataFrame:
    return stored(f"decisions-{_key(pol)}", lambda: df_decisions(pol))


def as_policy(design, kernel: str = policies.NEWEST_KERNEL) -> policies.Policy:
    """A Policy from a design name (merged at ``kernel``) or a Policy itself."""
    if isinstance(design, policies.Policy):
        return design
    return policies.get(design, kernel=kernel) if design == "merged" else policies.get(design)


def decisions(design, kernel: str = policies.NEWEST_KERNEL) -> pd.DataFrame:
    """``ftsim.tables.df_decisions`` for one design (a name or a Policy; cached)."""
    return _decisions(as_policy(design, kernel)).copy()


def df_differences(a, b, value: str = "result", kernel: str = policies.NEWEST_KERNEL) -> pd.DataFrame:
    """The ordered pairs (incumbent, contender) on which two designs (names or Policies) differ in
    ``value`` or in the invariants they break.

    :returns: a DataFrame with ``incumbent``, ``contender``, then one column per design labelled by the
      policy (the value with a trailing ``!`` when an invariant breaks) and ``broken`` (invariants broken
      under either).
    """
    da, db = decisions(a, kernel), decisions(b, kernel)
    # the pairs both kernels have (the tracing_multi and fsession links exist from 7.2 only)
    both_pairs = da[["incumbent", "contender"]].merge(db[["incumbent", "contender"]])
    da = both_pairs.merge(da, how="left")
    db = both_pairs.merge(db, how="left")
    la, lb = da["policy"].iat[0], db["policy"].iat[0]
    if la == lb:
        la, lb = f"{la} (A)", f"{lb} (B)"
    cell_a = da[value].astype(str) + da["violations"].map(lambda v: "!" if v else "")
    cell_b = db[value].astype(str) + db["violations"].map(lambda v: "!" if v else "")
    out = pd.DataFrame({"incumbent": da["incumbent"], "contender": da["contender"], la: cell_a, lb: cell_b})
    both = (da["violations"] + "," + db["violations"]).map(lambda s: ",".join(sorted({x for x in s.split(",") if x})))
    out["broken"] = both
    return out[cell_a != cell_b].reset_index(drop=True)


BROKEN = "#e86c6c"
#: the legend entry every value with a trailing '!' shares
BROKEN_KEY = "! = an invariant broke"


def _colours(values):
    """A fixed colour per cell value: success green, refusals orange/yellow, '!' red, others pastel."""
    fixed = {"0": "#b7e1b0", "-EBUSY": "#f9c77e", "-EAGAIN": "#f7ef8a", "-EINVAL": "#d0d0d0",
             "new": "#b7e1b0", "orig": "#c9dcf2", "none": "#e8d4f2"}
    pastel = ["#c9dcf2", "#e8d4f2", "#f2e0c9", "#d4f2ec", "#f2d4e1", "#e1f2d4", "#dcdcf2", "#f2f2c9"]
    out, extra = {}, iter(itertools.cycle(pastel))
    for v in sorted(set(values)):
        base = v.rstrip("!")
        out[v] = BROKEN if v.endswith("!") else fixed.get(base) or next(extra)
    return out


def _legend(colours) -> dict[str, str]:
    """Legend entries: one per value without '!', and one shared entry for every broken value."""
    out = {k: c for k, c in colours.items() if not k.endswith("!")}
    if any(k.endswith("!") for k in colours):
        out[BROKEN_KEY] = BROKEN
    return out


def _grids(names, value, kernel, only):
    from .tables import grid as to_grid
    grids = [(label(as_policy(name, kernel)), to_grid(decisions(name, kernel), value)) for name in names]
    if not only:        # the consumers every design has (pre-6.0 has no tracing_multi), catalog order
        only = [c for c in consumers.NAMES if all(c in g.index for _, g in grids)]
    return [(title, g.loc[list(only), list(only)]) for title, g in grids]


def plot_decision_grids(names=("pre-6.0", "merged"), value: str = "result", kernel: str = policies.NEWEST_KERNEL,
                        only: tuple | None = None, ncols: int | None = None):
    """Colour-coded incumbent x contender grids, one panel per design, ``ncols`` panels per row (default:
    two, so each stays readable at a notebook's width); cells that differ from the first panel are
    outlined in black; red = an invariant broke (the cell's value is still written, with its ``!``).
    Returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch, Rectangle

    grids = _grids(names, value, kernel, only)
    colours = _colours([v for _, g in grids for v in g.values.ravel()])
    keys = list(colours)
    cmap = ListedColormap([colours[k] for k in keys])
    n = len(grids[0][1])
    ncols = ncols or min(2, len(grids))
    nrows = -(-len(grids) // ncols)
    cell = 0.38 if n <= 10 else 0.32
    side = cell * n + 1.9
    fig, axes = plt.subplots(nrows, ncols, figsize=(side * ncols + 0.6, side * nrows + 0.9),
                             layout="constrained", squeeze=False)
    first = grids[0][1]
    font = 8 if n <= 10 else 6.5
    for k, (ax, (title, g)) in enumerate(zip(axes.ravel(), grids)):
        codes = g.map(keys.index).to_numpy()
        ax.imshow(codes, cmap=cmap, vmin=-0.5, vmax=len(keys) - 0.5, aspect="equal")
        for i, j in itertools.product(range(n), range(n)):
            text = g.iat[i, j]
            short = text.replace("-E", "")
            ax.text(j, i, short if len(short) <= 6 else short[:5] + ".", ha="center", va="center", fontsize=font)
            if text != first.iat[i, j]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.4))
        ax.set_xticks(range(n), g.columns, rotation=90, fontsize=font + 0.5)
        ax.set_yticks(range(n), g.index if k % ncols == 0 else [""] * n, fontsize=font + 0.5)
        if k // ncols == nrows - 1 or k + ncols >= len(grids):
            ax.set_xlabel("contender (attaches second)", fontsize=9)
        if k % ncols == 0:
            ax.set_ylabel("incumbent (attached first)", fontsize=9)
        ax.set_title(f"{title}: {value}", fontsize=10)
    for ax in axes.ravel()[len(grids):]:
        ax.axis("off")
    entries = _legend(colours)
    handles = [Patch(facecolor=c, edgecolor="0.5", label=f"{k} (written {k[2:]})" if k.startswith("-E") else k)
               for k, c in entries.items()]
    handles.append(Patch(facecolor="white", edgecolor="black", linewidth=1.4,
                         label=f"differs from {grids[0][0]}" if len(grids) > 1 else "outlined"))
    spare = axes.ravel()[len(grids)] if len(grids) < nrows * ncols else None
    if spare is not None:
        spare.legend(handles=handles, loc="center", fontsize=9, title=value, frameon=False)
    else:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(6, len(handles)), fontsize=9, title=value)
    return fig


def html_decision_grids(names=("pre-6.0", "merged"), value: str = "result", kernel: str = policies.NEWEST_KERNEL,
                        only: tuple | None = None) -> str:
    """The grids of ``plot_decision_grids()`` as HTML tables (crisp at any width, built in a few ms:
    what the notebook 4 dashboard shows; its figure is drawn only when saved).  Each cell's tooltip
    names the pair, the value and the invariants broken."""
    import html as H
    grids = _grids(names, value, kernel, only)
    colours = _colours([v for _, g in grids for v in g.values.ravel()])
    first = grids[0][1]
    broken = {}
    for name in names:
        d = decisions(name, kernel)
        broken[label(as_policy(name, kernel))] = {(r.incumbent, r.contender): r.violations for r in d.itertuples()}
    panels = []
    for title, g in grids:
        head = "".join(f'<th class="c"><span>{H.escape(c)}</span></th>' for c in g.columns)
        rows = []
        for i, inc in enumerate(g.index):
            tds = []
            for j, con in enumerate(g.columns):
                v = g.iat[i, j]
                outline = " d" if v != first.iat[i, j] else ""
                tip = f"{inc} first, then {con}: {v.rstrip('!')}"
                if broken[title].get((inc, con)):
                    tip += f"; broken: {broken[title][(inc, con)]}"
                tds.append(f'<td class="v{outline}" style="background:{colours[v]}" title="{H.escape(tip)}">'
                           f"{H.escape(v)}</td>")
            rows.append(f'<tr><th class="r">{H.escape(inc)}</th>{"".join(tds)}</tr>')
        panels.append(f'<div class="ftsim-grid"><div class="t">{H.escape(title)}: {H.escape(value)}</div>'
                      f'<table><thead><tr><th class="corner">incumbent \\ contender</th>{head}</tr></thead>'
                      f'<tbody>{"".join(rows)}</tbody></table></div>')
    legend = "".join(f'<span class="k"><i style="background:{c}"></i>{H.escape(k)}</span>'
                     for k, c in _legend(colours).items())
    if len(grids) > 1:
        legend += f'<span class="k"><i class="d"></i>differs from {H.escape(grids[0][0])}</span>'
    return (f"<style>{GRID_CSS}</style><div class=\"ftsim-grids\">{''.join(panels)}</div>"
            f'<div class="ftsim-legend">{legend}</div>')


GRID_CSS = (".ftsim-grids{display:flex;flex-wrap:wrap;gap:18px}"
            ".ftsim-grid .t{font-weight:bold;margin:2px 0 4px}"
            ".ftsim-grid table{border-collapse:collapse;font-size:12px}"
            ".ftsim-grid td.v{width:46px;height:22px;text-align:center;border:1px solid #fff;padding:0}"
            ".ftsim-grid td.d{outline:2px solid #000;outline-offset:-2px}"
            ".ftsim-grid th.r{text-align:right;padding-right:6px;font-weight:normal;white-space:nowrap}"
            ".ftsim-grid th.c{vertical-align:bottom;font-weight:normal;padding:0;height:120px}"
            ".ftsim-grid th.c span{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap}"
            ".ftsim-grid th.corner{vertical-align:bottom;text-align:right;font-weight:normal;color:#666;"
            "font-size:11px;padding-right:6px}"
            ".ftsim-legend{margin-top:6px;font-size:12px}"
            ".ftsim-legend .k{margin-right:14px;white-space:nowrap}"
            ".ftsim-legend i{display:inline-block;width:14px;height:12px;margin-right:4px;vertical-align:middle;"
            "border:1px solid #999}"
            ".ftsim-legend i.d{background:#fff;border:2px solid #000}")


def df_invariant_breaks(policy_list=None, depth: int = 3, function: str = PAIR_FUNCTION) -> pd.DataFrame:
    """For each invariant and design: the shortest attach/detach sequence on one function that breaks
    it (breadth first, catalog order), or ``kept (<= N steps)`` when no sequence of up to ``depth``
    steps breaks it.

    :returns: a DataFrame indexed by invariant name, one column per policy label; cells are the
      sequence as ``attach A; attach B; ...``.
    """
    policy_list = policy_list or policies.all_policies()
    table = {}
    for pol in policy_list:
        found = stored(f"breaks-{_key(pol, depth, function)}", lambda pol=pol: _shortest_breaks(pol, depth, function))
        table[pol.label] = {name: found.get(name, f"kept (<= {depth} steps)") for name in INVARIANTS}
    df = pd.DataFrame(table)
    df.index.name = "invariant"
    return df


def _shortest_breaks(pol, depth: int, function: str) -> dict[str, str]:
    """The explorer's shortest counterexample per invariant, over every consumer, written as steps."""
    from . import explore
    ex = explore.explore(pol, consumers=consumers.available(pol), functions=1, max_len=depth)
    return {inv: _describe([(r["op"], r["consumer"] if r["op"] == "attach" else r["handle"] or r["function"])
                            for r in rows])
            for inv, rows in ex.counterexamples().items()}


def _describe(seq) -> str:
    return "; ".join(f"{op} {arg}" for op, arg in seq)


IPMODIFY_CONSUMERS = ("livepatch", "kprobe-post", "fail-function")
BPF_CONSUMERS = ("bpf-fentry", "bpf-fexit", "bpf-fmod-ret", "bpf-fmod-ret-pass")


def df_pair_costs(designs=None, kernel: str = policies.NEWEST_KERNEL) -> pd.DataFrame:
    """What each design pays on the conflicting pairs: an IPMODIFY consumer and a BPF trampoline, in
    both orders (24 ordered pairs).

    ``designs``: names or Policies (labelled by the policy's label), or a dict {label: design}.

    :returns: a DataFrame indexed by policy label with ``pairs``, ``accepted`` (contender told 0),
      ``callbacks``, ``retries`` and ``regenerations`` (sums over the pairs, contender's attach only)
      and ``broken`` (pairs with an invariant broken).
    """
    rows = {}
    designs = designs or policies.NAMES
    items = designs.items() if isinstance(designs, dict) else [(None, x) for x in designs]
    for label, design in items:
        d = decisions(design, kernel)
        conflict = ((d["incumbent"].isin(IPMODIFY_CONSUMERS) & d["contender"].isin(BPF_CONSUMERS))
                    | (d["incumbent"].isin(BPF_CONSUMERS) & d["contender"].isin(IPMODIFY_CONSUMERS)))
        c = d[conflict]
        rows[label or c["policy"].iat[0]] = {"pairs": len(c), "accepted": int((c["ret"] == 0).sum()),
                                    "callbacks": int(c["callbacks"].sum()), "retries": int(c["retries"].sum()),
                                    "regenerations": int(c["regenerations"].sum()),
                                    "broken": int((c["violations"] != "").sum())}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "policy"
    return df


def plot_pair_costs(designs=None, kernel: str = policies.NEWEST_KERNEL):
    """Grouped bars of ``df_pair_costs()``: callbacks, retries, regenerations per design."""
    import matplotlib.pyplot as plt

    df = df_pair_costs(designs, kernel)
    cols = ["callbacks", "retries", "regenerations"]
    fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
    width = 0.8 / len(cols)
    for i, col in enumerate(cols):
        ax.bar([x + i * width for x in range(len(df))], df[col], width=width, label=col)
    ax.set_xticks([x + width for x in range(len(df))], df.index)
    ax.set_ylabel(f"count over the {int(df['pairs'].iat[0])} conflicting pairs")
    ax.set_title("What one conflict costs: IPMODIFY consumer and BPF trampoline, both orders")
    ax.legend()
    return fig
