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
import time

import ipywidgets as W
import pandas as pd

from . import consumers, functions
from . import policy as policies
from .designs import (KEY_CONSUMERS, VALUES, df_differences, df_scenario_by_policy, plot_decision_grids,
                      scenario_text)
from .tables import PAIR_FUNCTION

KERNELS = ("6.0", "6.1", "6.6.10", "6.12", "6.18")

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

DEFAULT_STEPS = (("attach", "livepatch"), ("attach", "bpf-fentry"), ("attach", "bpf-fexit"),
                 ("call", ""), ("detach", "livepatch"))
STEP_OPS = ("attach", "detach", "call", "-")


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
