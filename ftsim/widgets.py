"""Dashboards for the notebooks: a scenario builder (notebook 3), a design comparison (notebook 4) and a
workload dashboard (notebook 5).

Each dashboard is an object with knobs (ipywidgets), an ``update()`` that recomputes its result
(``.df``: a DataFrame; ``.fig``: a matplotlib Figure or None) and redraws, and a display that works
with or without a widget front end: displaying it gives the live widget where one is attached and, in
any other front end (nbconvert, GitHub, a terminal), the default table and figure as HTML, PNG and
plain text.  The figure is shown as a PNG in an ``ipywidgets.Image``, so a knob's move costs one
recomputation and one PNG render, with no round trip through an Output widget.

    dash = widgets.WorkloadDashboard()   # notebook cell: `dash` (tag it nbval-ignore-output)
    dash.df                              # the values behind the current figure (a checked cell)
"""
from __future__ import annotations

import base64
import io
import itertools
import time
from functools import lru_cache

import ipywidgets as W
import pandas as pd

from . import consumers, functions
from . import policy as policies
from . import scenario as scenarios
from .flags import Errno
from .invariants import INVARIANTS
from .model import Model
from .tables import PAIR_FUNCTION, df_decisions

SCENARIOS = functions.DATA / "scenarios"
KERNELS = ("6.0", "6.1", "6.6.10", "6.12", "6.18")
#: the consumers that take part in the conflict (the grids' default; the others never conflict)
KEY_CONSUMERS = ("livepatch", "kprobe-post", "fail-function", "bpf-override-return", "kprobe",
                 "bpf-fentry", "bpf-fexit", "bpf-fmod-ret", "direct")
VALUES = ("result", "body_ran", "result_from", "record", "violations")

# -- Rendering helpers ---------------------------------------------------------------------------


def png_bytes(fig, dpi: int = 72) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


class Dashboard:
    """Knobs + a figure (PNG) + a table; subclasses define ``controls`` and ``compute()``."""

    title = ""
    dpi = 90

    def __init__(self):
        self.df: pd.DataFrame | None = None
        self.fig = None
        self.png = b""
        self.last_update_seconds = 0.0
        self.updates = 0
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%", width="auto", object_fit="contain"))
        self.table = W.HTML()
        self.status = W.HTML()

    # subclasses: self.controls (list of widgets), compute() -> (df, fig or None), summary() -> str
    def compute(self):
        raise NotImplementedError

    def summary(self) -> str:
        return ""

    def update(self, *_):
        import matplotlib.pyplot as plt

        t0 = time.perf_counter()
        self.df, self.fig = self.compute()
        if self.fig is not None:
            plt.close(self.fig)       # out of pyplot's registry: the inline backend must not show it again
            self.png = png_bytes(self.fig, self.dpi)
            self.image.value = self.png
            self.image.layout.display = None
        else:
            self.image.layout.display = "none"
        self.table.value = self.table_html()
        self.updates += 1
        self.last_update_seconds = time.perf_counter() - t0
        self.status.value = (f"<small>{self.summary()} &middot; updated in "
                             f"{self.last_update_seconds * 1000:.0f} ms</small>")
        return self

    def table_html(self) -> str:
        return "" if self.df is None else self.df.to_html(max_rows=40, float_format=lambda x: f"{x:.4f}")

    def _watch(self):
        for w in self.controls:
            w.observe(self.update, names="value")

    @property
    def widget(self) -> W.VBox:
        if not hasattr(self, "_box"):
            knobs = W.HBox(self.controls, layout=W.Layout(flex_flow="row wrap"))
            parts = [W.HTML(f"<b>{self.title}</b>"), knobs, self.status, self.image, self.table]
            self._box = W.VBox(parts)
        return self._box

    def _repr_mimebundle_(self, include=None, exclude=None):
        """The widget for front ends with a widget manager; the default table and figure for all others."""
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude) or {}
        html = f"<b>{self.title}</b><br>{self.summary()}<br>"
        if self.fig is not None:
            bundle["image/png"] = base64.b64encode(self.png).decode()
            html += f'<img src="data:image/png;base64,{bundle["image/png"]}"/><br>'
        bundle["text/html"] = html + self.table_html()
        bundle["text/plain"] = f"{self.title}\n{self.summary()}\n" + (
            "" if self.df is None else self.df.to_string(max_rows=20))
        return bundle

    def show(self):
        """Display in IPython (widget or static fallback); in plain Python, print the table."""
        try:
            from IPython.display import display
            from IPython import get_ipython
        except ImportError:                                  # pragma: no cover
            get_ipython = None
        if get_ipython is not None and get_ipython() is not None:
            display(self)
        else:
            print(self._repr_mimebundle_()["text/plain"])
        return self


# -- Notebook 3: the scenario builder ---------------------------------------------------------------

def load_scenario(name: str) -> scenarios.Scenario:
    """A scenario of data/scenarios by its file name without ``.fts`` (e.g. ``thread-merged``)."""
    return scenarios.parse_file(SCENARIOS / f"{name}.fts")


DEFAULT_STEPS = (("attach", "livepatch"), ("attach", "bpf-fentry"), ("attach", "bpf-fexit"),
                 ("call", ""), ("detach", "livepatch"))
STEP_OPS = ("attach", "detach", "call", "-")


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


class ScenarioBuilder(Dashboard):
    """Build a scenario from dropdowns and see it run under every design (notebook 3)."""

    title = "Scenario builder: each row is one step; every design runs the same steps"

    def __init__(self, steps=DEFAULT_STEPS, function: str = "cmdline_proc_show", kernel: str = "6.18",
                 rows: int = 6):
        super().__init__()
        steps = list(steps) + [("-", "")] * (rows - len(steps))
        opts = list(consumers.NAMES)
        self.ops = [W.Dropdown(options=STEP_OPS, value=op, layout=W.Layout(width="90px"),
                               description=f"{i + 1}") for i, (op, _) in enumerate(steps)]
        self.who = [W.Dropdown(options=opts, value=c or opts[0], layout=W.Layout(width="170px"))
                    for _, c in steps]
        self.function = W.Dropdown(options=sorted(functions.known()) + [PAIR_FUNCTION], value=function,
                                   description="function")
        self.kernel = W.Dropdown(options=KERNELS, value=kernel, description="merged on")
        rows_box = [W.HBox([o, c]) for o, c in zip(self.ops, self.who)]
        self.controls = [W.VBox(rows_box), W.VBox([self.function, self.kernel])]
        for w in self.ops + self.who + [self.function, self.kernel]:
            w.observe(self.update, names="value")
        self.update()

    @property
    def steps(self):
        return [(o.value, c.value if o.value in ("attach", "detach") else "")
                for o, c in zip(self.ops, self.who) if o.value != "-"]

    @property
    def text(self) -> str:
        return scenario_text(self.steps, self.function.value)

    def compute(self):
        df = df_scenario_by_policy(self.text, policies.all_policies(kernel=self.kernel.value))
        return df, None

    def summary(self) -> str:
        broken = sorted({tok[1:] for col in self.df for cell in self.df[col] for tok in cell.split()
                         if tok.startswith("!")})
        return f"{len(self.df)} steps on {self.function.value}; invariants broken: {', '.join(broken) or 'none'}"

    def table_html(self) -> str:
        def colour(cell: str) -> str:
            if "!" in cell:
                return "background-color: #f4b6b6"
            if cell.startswith("-E"):
                return "background-color: #fde2b0"
            return ""
        return self.df.style.map(colour).set_uuid("ftsim-builder").to_html()


# -- Notebook 4: the designs side by side -------------------------------------------------------------

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


class DesignComparison(Dashboard):
    """Two designs' decision grids side by side, the differing pairs listed (notebook 4)."""

    title = "Designs side by side: incumbent x contender on one function"

    def __init__(self, a: str = "pre-6.0", b: str = "merged", value: str = "result",
                 kernel: str = policies.NEWEST_KERNEL, only=KEY_CONSUMERS):
        super().__init__()
        self.a = W.Dropdown(options=policies.NAMES, value=a, description="design A")
        self.b = W.Dropdown(options=policies.NAMES, value=b, description="design B")
        self.value = W.Dropdown(options=VALUES[:3], value=value, description="show")
        self.kernel = W.Dropdown(options=KERNELS, value=kernel, description="merged on")
        self.all_consumers = W.Checkbox(value=only is None, description=f"all {len(consumers.NAMES)} consumers")
        self.only = tuple(only) if only else None
        self.controls = [self.a, self.b, self.value, self.kernel, self.all_consumers]
        self._watch()
        self.update()

    def compute(self):
        only = None if self.all_consumers.value else self.only
        fig = plot_decision_grids((self.a.value, self.b.value), self.value.value, self.kernel.value, only)
        df = df_differences(self.a.value, self.b.value, self.value.value, self.kernel.value)
        if only:
            df = df[df["incumbent"].isin(only) & df["contender"].isin(only)].reset_index(drop=True)
        return df, fig

    def summary(self) -> str:
        return f"{len(self.df)} ordered pairs differ between {self.a.value} and {self.b.value} in {self.value.value}"


# -- Notebook 5: the workload dashboard ------------------------------------------------------------

#: the consumer-mix sliders of the dashboard (weights; a preset may leave some at 0)
MIX_CONSUMERS = ("livepatch", "kprobe-post", "kprobe", "fail-function", "function-tracer", "bpf-fentry",
                 "bpf-fexit", "bpf-fmod-ret", "direct")
#: workloads per dashboard update: 200 x 200 events x 5 designs redraws in 0.2-0.4 s on a busy 2-core
#: machine (1,000 took 2.5 s there); the static cells of notebook 5 use 1,000
DASHBOARD_WORKLOADS = 200


def outcomes(**knobs):
    """The workload outcomes behind the dashboard: ``ftsim.metrics.Outcomes(**knobs)``."""
    from . import metrics
    return metrics.Outcomes(**knobs)


class WorkloadDashboard(Dashboard):
    """Randomized workloads under each design: pick a preset, designs, a consumer mix, the number of
    functions and a seed; the outcome plot with confidence intervals follows (notebook 5)."""

    title = "Randomized workloads: outcomes per design (mean and 95% confidence interval)"

    def __init__(self, preset: str = "uniform", metric: str | None = None, designs=policies.NAMES,
                 workloads: int | None = None, events: int | None = None, seed: int = 0,
                 functions_: int | None = None, mix: dict | None = None):
        from . import metrics, workload
        super().__init__()
        presets, metric_names = workload.PRESETS, tuple(metrics.METRICS)
        workloads, events = workloads or DASHBOARD_WORKLOADS, events or 200
        self._presets = presets
        self.preset = W.Dropdown(options=list(presets), value=preset, description="preset")
        self.metric = W.Dropdown(options=list(metric_names), value=metric or metric_names[0], description="metric")
        self.designs = W.SelectMultiple(options=policies.NAMES, value=tuple(designs), rows=5, description="designs")
        self.seed = W.IntSlider(value=seed, min=0, max=99, description="seed", continuous_update=False)
        self.workloads = W.IntSlider(value=workloads, min=10, max=max(2000, workloads), step=10,
                                     description="workloads", continuous_update=False)
        self.functions = W.IntSlider(value=functions_ or self._preset_value(preset, "functions", 8), min=1,
                                     max=64, description="functions", continuous_update=False)
        mix = mix or self._preset_value(preset, "mix", {}) or {}
        used = {c for name in presets for c in (self._preset_value(name, "mix", {}) or {})} | set(mix)
        names = [c for c in consumers.NAMES if c in used] or list(MIX_CONSUMERS)
        top = max([5.0] + [float(w) for name in presets for w in (self._preset_value(name, "mix", {}) or {}).values()])
        self.mix_sliders = {c: W.FloatSlider(value=float(mix.get(c, 0.0)), min=0.0, max=top, step=0.1,
                                             description=c, continuous_update=False, readout_format=".1f",
                                             style={"description_width": "120px"})
                            for c in names}
        self.events = events
        self.controls = [W.VBox([self.seed, self.workloads, self.functions]),
                         W.VBox([self.preset, self.metric, self.designs]),
                         W.VBox(list(self.mix_sliders.values()))]
        for w in [self.metric, self.designs, self.seed, self.workloads, self.functions, *self.mix_sliders.values()]:
            w.observe(self.update, names="value")
        self.preset.observe(self._preset_changed, names="value")
        self.update()

    def _preset_value(self, preset: str, key: str, default):
        p = self._presets[preset]
        v = p.get(key) if isinstance(p, dict) else getattr(p, key, None)
        return default if v is None else v

    def _preset_changed(self, change):
        """A new preset resets the function count and the mix sliders to its values, then recomputes once."""
        mix = self._preset_value(change["new"], "mix", {}) or {}
        watched = [self.functions, *self.mix_sliders.values()]
        for w in watched:
            w.unobserve(self.update, names="value")
        try:
            self.functions.value = int(self._preset_value(change["new"], "functions", self.functions.value))
            for c, sl in self.mix_sliders.items():
                sl.value = float(mix.get(c, 0.0))
        finally:
            for w in watched:
                w.observe(self.update, names="value")
        self.update()

    @property
    def knobs(self) -> dict:
        mix = {c: s.value for c, s in self.mix_sliders.items() if s.value > 0}
        preset_mix = {c: float(w) for c, w in (self._preset_value(self.preset.value, "mix", {}) or {}).items() if w}
        if mix == preset_mix:
            mix = None                            # the preset's own mix, untouched
        functions = self.functions.value
        if functions == self._preset_value(self.preset.value, "functions", None):
            functions = None
        return dict(preset=self.preset.value, policies=list(self.designs.value), workloads=self.workloads.value,
                    events=self.events, seed=self.seed.value, functions=functions, mix=mix or None)

    def outcomes(self):
        return outcomes(**self.knobs)

    def compute(self):
        out = self.outcomes()
        fig = out.plot_comparison(metric=self.metric.value)
        return out.df_summary()[self.metric.value], fig

    def summary(self) -> str:
        return (f"{self.preset.value}: {self.workloads.value} workloads x {self.events} events, "
                f"{self.functions.value} functions, seed {self.seed.value}")


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
