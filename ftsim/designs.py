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



# -- Decision grids -------------------------------------------------------------------------------

@lru_cache(maxsize=64)
def _decisions(pol: policies.Policy) -> pd.DataFrame:
    return df_decisions(pol)


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
    la, lb = da["policy"].iat[0], db["policy"].iat[0]
    if la == lb:
        la, lb = f"{la} (A)", f"{lb} (B)"
    cell_a = da[value].astype(str) + da["violations"].map(lambda v: "!" if v else "")
    cell_b = db[value].astype(str) + db["violations"].map(lambda v: "!" if v else "")
    out = pd.DataFrame({"incumbent": da["incumbent"], "contender": da["contender"], la: cell_a, lb: cell_b})
    both = (da["violations"] + "," + db["violations"]).map(lambda s: ",".join(sorted({x for x in s.split(",") if x})))
    out["broken"] = both
    return out[cell_a != cell_b].reset_index(drop=True)


def _colours(values):
    """A fixed colour per cell value: success green, refusals orange/yellow, '!' red, others pastel."""
    fixed = {"0": "#b7e1b0", "-EBUSY": "#f9c77e", "-EAGAIN": "#f7ef8a", "-EINVAL": "#d0d0d0",
             "new": "#b7e1b0", "orig": "#c9dcf2", "none": "#e8d4f2"}
    pastel = ["#c9dcf2", "#e8d4f2", "#f2e0c9", "#d4f2ec", "#f2d4e1", "#e1f2d4", "#dcdcf2", "#f2f2c9"]
    out, extra = {}, iter(itertools.cycle(pastel))
    for v in sorted(set(values)):
        base = v.rstrip("!")
        out[v] = "#e86c6c" if v.endswith("!") else fixed.get(base) or next(extra)
    return out


def plot_decision_grids(names=("pre-6.0", "merged"), value: str = "result", kernel: str = policies.NEWEST_KERNEL,
                        only: tuple | None = None):
    """Colour-coded incumbent x contender grids, one panel per design; cells that differ from the
    first panel are outlined in black; red = an invariant broke.  Returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Rectangle

    from .tables import grid as to_grid

    grids = []
    for name in names:
        g = to_grid(decisions(name, kernel), value)
        if only:
            g = g.loc[list(only), list(only)]
        grids.append((decisions(name, kernel)["policy"].iat[0], g))
    colours = _colours([v for _, g in grids for v in g.values.ravel()])
    keys = list(colours)
    cmap = ListedColormap([colours[k] for k in keys])
    n = len(grids[0][1])
    fig, axes = plt.subplots(1, len(grids), figsize=(4.6 * len(grids) + 1.5, 0.3 * n + 2.2),
                             layout="constrained", squeeze=False)
    first = grids[0][1]
    for ax, (label, g) in zip(axes[0], grids):
        codes = g.map(keys.index).to_numpy()
        ax.imshow(codes, cmap=cmap, vmin=-0.5, vmax=len(keys) - 0.5, aspect="auto")
        for i, j in itertools.product(range(n), range(n)):
            text = g.iat[i, j]
            ax.text(j, i, text.replace("-E", "").rstrip("!")[:6], ha="center", va="center", fontsize=5.5)
            if g.iat[i, j] != first.iat[i, j]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.2))
        ax.set_xticks(range(n), g.columns, rotation=90, fontsize=7)
        ax.set_yticks(range(n), g.index, fontsize=7)
        ax.set_xlabel("contender (attaches second)")
        ax.set_title(f"{label}: {value}")
    axes[0][0].set_ylabel("incumbent (attached first)")
    handles = [Rectangle((0, 0), 1, 1, color=colours[k]) for k in keys]
    fig.legend(handles, keys, loc="outside right center", fontsize=7, title=value)
    return fig


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
        found = _shortest_breaks(pol, depth, function)
        table[pol.label] = {name: found.get(name, f"kept (<= {depth} steps)") for name in INVARIANTS}
    df = pd.DataFrame(table)
    df.index.name = "invariant"
    return df


def _shortest_breaks(pol, depth: int, function: str) -> dict[str, str]:
    """The explorer's shortest counterexample per invariant, over every consumer, written as steps."""
    from . import explore
    ex = explore.explore(pol, consumers=consumers.NAMES, functions=1, max_len=depth)
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


# -- Notebook 1: the call path -----------------------------------------------------------------------

#: (key, box text, x, y, colour) of the call-path diagram, top to bottom
CALL_PATH = (
    ("caller", "caller: cat /proc/cmdline\ncalls cmdline_proc_show()", 0.5, 0.93, "#eeeeee"),
    ("fentry", "cmdline_proc_show+0: call __fentry__\n(a 5-byte nop until ftrace patches it)", 0.5, 0.78, "#eeeeee"),
    ("list", "ftrace trampoline / list function:\nwalks ftrace_ops_list, newest ops first", 0.5, 0.62, "#c9dcf2"),
    ("kprobe", "kprobe handler (SAVE_REGS)\nsaves and restores regs->ip", 0.17, 0.45, "#c9dcf2"),
    ("klp", "klp_ftrace_handler (IPMODIFY)\nregs->ip = the patched function", 0.5, 0.45, "#f9c77e"),
    ("tracer", "function tracer, perf\n(passive: no flag)", 0.83, 0.45, "#c9dcf2"),
    ("direct", "direct trampoline (DIRECT): BPF fentry progs,\nthen fexit/fmod_ret need the body called (CALL_ORIG)",
     0.5, 0.28, "#b7e1b0"),
    ("orig", "calls cmdline_proc_show+5:\nthe ORIGINAL body (livepatch bypassed)", 0.22, 0.09, "#e86c6c"),
    ("new", "ORIG_STACK: calls regs->ip:\nthe PATCHED function (6.0+)", 0.78, 0.09, "#b7e1b0"),
)
_ARROWS = (("caller", "fentry"), ("fentry", "list"), ("list", "kprobe"), ("list", "klp"), ("list", "tracer"),
           ("klp", "direct"), ("direct", "orig"), ("direct", "new"))


def df_call_path() -> pd.DataFrame:
    """The boxes of ``plot_call_path()`` as a table (``box``, ``what``), top to bottom."""
    return pd.DataFrame([(k, t.replace("\n", " ")) for k, t, *_ in CALL_PATH], columns=["box", "what"])


def plot_call_path():
    """A diagram of one call to a function with a livepatch and a BPF trampoline on it.

    The list handlers run first (one of them, klp, rewrites regs->ip: IPMODIFY); the direct trampoline
    runs after them and, when it must call the body itself, either calls the original body (no
    ORIG_STACK: the livepatch is bypassed) or follows regs->ip.  Returns the Figure.
    """
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 7), layout="constrained")
    pos = {}
    for key, text, x, y, colour in CALL_PATH:
        ax.text(x, y, text, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.5", facecolor=colour, edgecolor="0.3"))
        pos[key] = (x, y)
    for a, b in _ARROWS:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        ax.annotate("", xy=(xb, yb + 0.05), xytext=(xa, ya - 0.05),
                    arrowprops=dict(arrowstyle="->", color="0.25", linewidth=1.2))
    ax.text(0.98, 0.62, "1. list handlers\n(ftrace_ops)", ha="right", va="center", fontsize=8, color="0.35")
    ax.text(0.98, 0.28, "2. then the one\ndirect trampoline", ha="right", va="center", fontsize=8, color="0.35")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.set_title("One call of a function with a livepatch (IPMODIFY) and a BPF trampoline (DIRECT)")
    return fig
