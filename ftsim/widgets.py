"""Dashboards for the notebooks: a scenario builder (notebook 3), a design comparison (notebook 4) and a
workload dashboard (notebooks 5 and 6).

Each dashboard is an object with knobs (ipywidgets) and an ``update()`` that recomputes its result and
redraws: ``.df`` (a DataFrame), ``.fig`` (a matplotlib Figure or None), ``.label`` (the designs and
kernel the output is about, written above every output).  While it computes, the output is dimmed and
the status line says so; results are kept per knob setting, so going back to a setting is instant.
``save()`` (the *save* button) writes the current figure under ``figures/`` and offers it for download.

Displaying a dashboard gives the live widget where a widget front end is attached and, in any other
front end (nbconvert, GitHub, a terminal), the same heading, figure and table as HTML, PNG and plain
text.  Bad input raises a one-line ``ftsim.errors.FtsimError``; nothing is clamped silently.

    dash = widgets.WorkloadDashboard()   # notebook cell: `dash` (tag it nbval-ignore-output)
    dash.df                              # the values behind the current figure (a checked cell)
"""
from __future__ import annotations

from collections import OrderedDict

import ipywidgets as W
import pandas as pd

from . import consumers
from . import policy as policies
from .builder import DEFAULT_STEPS, STEP_OPS, ScenarioBuilder  # noqa: F401 - widgets.* in the notebooks
from .dashboard import (CSS, FIGURES, KERNELS, PREFETCH, USER_KERNELS, Dashboard, Prefetch,  # noqa: F401
                        _kernel, _kernel_dropdown, png_bytes)
from .designs import (KEY_CONSUMERS, VALUES, as_policy, df_differences, html_decision_grids, label,
                      plot_decision_grids)
from .errors import FtsimError, bad
from .plots import Table


# -- Notebook 4: the designs side by side -------------------------------------------------------------

class DesignComparison(Dashboard):
    """Two designs' decision grids side by side, the differing pairs listed (notebook 4)."""

    title = "Designs side by side: incumbent x contender on one function"
    name = "designs"

    def __init__(self, a: str = "pre-6.0", b: str = "merged", value: str = "result",
                 kernel: str | None = None, only=KEY_CONSUMERS):
        super().__init__()
        for field, v in (("design A", a), ("design B", b)):
            if v not in policies.NAMES:
                raise bad(field, v, policies.NAMES)
        if value not in VALUES[:3]:
            raise bad("value", value, VALUES[:3])
        if only is not None and not set(only) <= set(consumers.NAMES):
            raise bad("only", sorted(set(only) - set(consumers.NAMES)), consumers.NAMES)
        kernel = _kernel(kernel)
        st = {"description_width": "70px"}
        self.a = W.Dropdown(options=policies.NAMES, value=a, description="design A", style=st,
                            layout=W.Layout(width="200px"))
        self.b = W.Dropdown(options=policies.NAMES, value=b, description="design B", style=st,
                            layout=W.Layout(width="200px"))
        self.value = W.Dropdown(options=VALUES[:3], value=value, description="show", style=st,
                                layout=W.Layout(width="200px"))
        self.kernel = _kernel_dropdown(kernel)
        self.all_consumers = W.Checkbox(value=only is None, description="all consumers", indent=False,
                                        tooltip="every consumer both designs have")
        self.only = tuple(only) if only else None
        self.controls = [self.a, self.b, self.value, self.kernel, self.all_consumers]
        self._watch()
        self.update()

    @property
    def table_title(self):
        return "the pairs that differ"

    def _only(self):
        return None if self.all_consumers.value else self.only

    def key(self):
        return (self.a.value, self.b.value, self.value.value, self.kernel.value, self._only())

    def compute(self):
        a, b, value, kernel, only = self.key()
        pa, pb = as_policy(a, kernel), as_policy(b, kernel)
        df = df_differences(pa, pb, value, kernel)
        if only:
            df = df[df["incumbent"].isin(only) & df["contender"].isin(only)].reset_index(drop=True)
        rename = {pa.label: label(pa), pb.label: label(pb)}
        if label(pa) == label(pb):
            rename = {f"{pa.label} (A)": f"{label(pa)} (A)", f"{pb.label} (B)": f"{label(pb)} (B)"}
        df = df.rename(columns=rename)
        lab = f"{label(pa)} (A) against {label(pb)} (B): {value}"
        return dict(df=df, label=lab, html=html_decision_grids((pa, pb), value, kernel, only))

    def figure(self):
        """The grids as a matplotlib Figure (drawn when asked: the dashboard itself shows HTML)."""
        key = self.key()
        res = self._results.get(key)
        if res is not None and res.get("fig") is None:
            a, b, value, kernel, only = key
            res["fig"] = plot_decision_grids((as_policy(a, kernel), as_policy(b, kernel)), value, kernel, only)
            import matplotlib.pyplot as plt
            plt.close(res["fig"])
        return None if res is None else res["fig"]

    def summary(self) -> str:
        return (f"{len(self.df)} ordered pairs differ between {self.a.value} and {self.b.value} "
                f"in {self.value.value}")


# -- Notebooks 5 and 6: the workload dashboard ---------------------------------------------------------

#: the consumer-mix sliders of the dashboard (weights; a preset may leave some at 0)
MIX_CONSUMERS = ("livepatch", "kprobe-post", "kprobe", "fail-function", "function-tracer", "bpf-fentry",
                 "bpf-fexit", "bpf-fmod-ret", "direct")
#: workloads per dashboard update: 100 x 200 events x 5 designs redraws in 0.1-0.3 s (the first visit of a
#: seed or kernel pays the batch engine's discovery of new transitions, about half of that at 200
#: workloads); the static cells of notebooks 5 and 6 use 1,000
DASHBOARD_WORKLOADS = 100
#: what the dashboard draws: one metric per design, or cost against exposure (notebook 6)
VIEWS = ("comparison", "cost-safety")
SEED_MAX = 2**31 - 1
FUNCTIONS_MAX = 4096     # ftsim.workload.params


def outcomes(**knobs):
    """The workload outcomes behind the dashboard: ``ftsim.metrics.Outcomes(**knobs)``."""
    from . import metrics
    return metrics.Outcomes(**knobs)


def _int(field: str, v, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise bad(field, v, f"an integer in [{lo}, {hi}]")
    return v


class WorkloadDashboard(Dashboard):
    """Randomized workloads under each design: pick a preset, designs, the kernel the merged design is
    modelled at, a consumer mix, the number of functions and a seed; the outcome plot with confidence
    intervals follows (notebook 5), or cost against exposure (``view="cost-safety"``, notebook 6)."""

    title = "Randomized workloads: outcomes per design (mean and 95% confidence interval)"
    name = "workloads"

    def __init__(self, preset: str = "uniform", metric: str | None = None, designs=policies.NAMES,
                 workloads: int | None = None, events: int | None = None, seed: int = 0,
                 functions_: int | None = None, mix: dict | None = None, kernel: str | None = None,
                 view: str = "comparison"):
        from . import metrics, workload
        super().__init__()
        presets, metric_names = workload.PRESETS, tuple(metrics.METRICS)
        if preset not in presets:
            raise bad("preset", preset, list(presets))
        if metric is not None and metric not in metric_names:
            raise bad("metric", metric, metric_names)
        designs = (designs,) if isinstance(designs, str) else tuple(designs)
        if not designs or not set(designs) <= set(policies.NAMES):
            raise bad("designs", designs, policies.NAMES)
        if view not in VIEWS:
            raise bad("view", view, VIEWS)
        workloads = _int("workloads", workloads or DASHBOARD_WORKLOADS, 10, 100_000)
        events = _int("events", events or 200, 1, 100_000)
        seed = _int("seed", seed, 0, SEED_MAX)
        if functions_ is not None:
            _int("functions_", functions_, 1, FUNCTIONS_MAX)
        mix = dict(mix or {})
        for c, w in mix.items():
            if c not in consumers.NAMES:
                raise bad("mix consumer", c, consumers.NAMES)
            if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
                raise bad(f"mix[{c}]", w, "a weight >= 0")
        kernel = _kernel(kernel)
        self._presets = presets
        self.view_name = view
        if view == "cost-safety":
            self.title = "Randomized workloads: cost (rebuilds + retries) against exposure, per design"
        st = {"description_width": "80px"}
        self.preset = W.Dropdown(options=list(presets), value=preset, description="preset", style=st)
        self.metric = W.Dropdown(options=list(metric_names), value=metric or metric_names[0], description="metric",
                                 style=st, disabled=view != "comparison")
        self.designs = W.SelectMultiple(options=policies.NAMES, value=designs, rows=5, description="designs",
                                        style=st)
        self.kernel = _kernel_dropdown(kernel)
        # slider ranges hold the value asked for: nothing is clamped
        self.seed = W.IntSlider(value=seed, min=0, max=max(99, seed), description="seed", continuous_update=False,
                                style=st)
        self.workloads = W.IntSlider(value=workloads, min=10, max=max(2000, workloads), step=10,
                                     description="workloads", continuous_update=False, style=st)
        fn = functions_ or int(self._preset_value(preset, "functions", 8))
        self.functions = W.IntSlider(value=fn, min=1, max=max(64, fn), description="functions",
                                     continuous_update=False, style=st)
        mix = mix or self._preset_value(preset, "mix", {}) or {}
        used = {c for name in presets for c in (self._preset_value(name, "mix", {}) or {})} | set(mix)
        names = [c for c in consumers.NAMES if c in used] or list(MIX_CONSUMERS)
        top = max([5.0] + [float(w) for name in presets for w in (self._preset_value(name, "mix", {}) or {}).values()]
                  + [float(w) for w in mix.values()])
        self.mix_sliders = {c: W.FloatSlider(value=float(mix.get(c, 0.0)), min=0.0, max=top, step=0.1,
                                             description=c, continuous_update=False, readout_format=".1f",
                                             style={"description_width": "130px"})
                            for c in names}
        for c, sl in self.mix_sliders.items():
            sl.add_class(f"ftsim-mix-{c}")
        self.events = events
        self.controls = [W.VBox([self.preset, self.metric, self.kernel, self.designs]),
                         W.VBox([self.seed, self.workloads, self.functions]),
                         W.VBox(list(self.mix_sliders.values()))]
        self._watch([self.metric, self.designs, self.kernel, self.seed, self.workloads, self.functions,
                     *self.mix_sliders.values()])
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
            fn = int(self._preset_value(change["new"], "functions", self.functions.value))
            self.functions.max = max(self.functions.max, fn)
            self.functions.value = fn
            for c, sl in self.mix_sliders.items():
                sl.value = float(mix.get(c, 0.0))
        finally:
            for w in watched:
                w.observe(self.update, names="value")
        self.update()

    def policies(self) -> list:
        """The selected designs, ``merged`` at the selected kernel, in catalog order."""
        return [as_policy(n, self.kernel.value) for n in policies.NAMES if n in self.designs.value]

    def _normalise(self, preset, workloads, seed, functions, mix) -> dict:
        """The knobs as ``metrics.Outcomes`` takes them; the preset's own function count and mix as None."""
        mix = {c: round(float(w), 6) for c, w in mix.items() if w > 0}
        preset_mix = {c: round(float(w), 6) for c, w in (self._preset_value(preset, "mix", {}) or {}).items() if w}
        if mix == preset_mix:
            mix = None                            # the preset's own mix, untouched
        if functions == self._preset_value(preset, "functions", None):
            functions = None
        return dict(preset=preset, workloads=workloads, events=self.events, seed=seed, functions=functions,
                    mix=mix or None)

    @property
    def knobs(self) -> dict:
        k = self._normalise(self.preset.value, self.workloads.value, self.seed.value, self.functions.value,
                            {c: sl.value for c, sl in self.mix_sliders.items()})
        return dict(k, policies=self.policies())

    @staticmethod
    def _data_key_of(k: dict) -> tuple:
        mix = tuple(sorted(k["mix"].items())) if k["mix"] else None
        return (k["preset"], k["workloads"], k["events"], k["seed"], k["functions"], mix)

    def data_key(self):
        """The knobs the workloads depend on (not the designs, the metric or the view)."""
        return self._data_key_of(self.knobs)

    def key(self):
        return self.data_key() + (tuple(p.label for p in self.policies()),
                                  self.metric.value if self.view_name == "comparison" else None)

    def outcomes(self, pols=None, knobs=None):
        from . import batch
        knobs = dict(knobs or self.knobs, policies=pols or self.policies())
        first = 1 not in getattr(batch, "TABLES", {})
        return outcomes(**knobs, persist=first)          # tables from disk once; not rewritten per move

    def _rows_for(self, knobs: dict, pols) -> list:
        """Each design's summary row for these knobs, computed for the designs not seen yet."""
        if not hasattr(self, "_rows"):
            self._rows = OrderedDict()
        data = self._data_key_of(knobs)
        with Prefetch.lock:
            missing = [p for p in pols if (data, p.label) not in self._rows]
            if missing:
                summary = self.outcomes(missing, knobs).df_summary()
                for p, (_, row) in zip(missing, summary.iterrows()):
                    self._rows[(data, p.label)] = row
                while len(self._rows) > 5 * self.cache_size:
                    self._rows.popitem(last=False)
            return [self._rows[(data, p.label)] for p in pols]

    def df_summary(self) -> pd.DataFrame:
        """``Outcomes.df_summary()`` for the current knobs, indexed by the dashboard's design labels.
        Each design's row is kept per workload setting: selecting designs only redraws, and a new kernel
        runs the merged design alone."""
        pols = self.policies()
        out = pd.DataFrame(self._rows_for(self.knobs, pols), index=[label(p) for p in pols])
        out.columns = pd.MultiIndex.from_tuples(out.columns)
        out.index.name = "policy"
        return out

    def prefetch_jobs(self, change) -> list:
        """The neighbours of the knob just moved first (seed +-1, the next kernels, functions +-1,
        workloads +-10, the mix slider +-0.1), then seed +-1 and the other kernels of any setting."""
        owner = change.get("owner")
        k = dict(self.knobs)
        pols = k.pop("policies")
        mix = {c: sl.value for c, sl in self.mix_sliders.items()}
        fn = self.functions.value

        def knobs(**kw):
            base = dict(preset=k["preset"], workloads=self.workloads.value, seed=self.seed.value, functions=fn,
                        mix=mix)
            base.update(kw)
            return self._normalise(**base)

        near = []
        if owner is self.functions:
            near += [knobs(functions=f) for f in (fn + 1, fn - 1) if 1 <= f <= FUNCTIONS_MAX]
        elif owner is self.workloads:
            w = self.workloads.value
            near += [knobs(workloads=x) for x in (w + 10, w - 10) if x >= 10]
        elif owner in self.mix_sliders.values():
            name = next(c for c, sl in self.mix_sliders.items() if sl is owner)
            for d in (0.1, -0.1):
                v = round(mix[name] + d, 6)
                if 0 <= v:
                    near.append(knobs(mix=dict(mix, **{name: v})))
        seeds = [knobs(seed=x) for x in (self.seed.value + 1, self.seed.value - 1) if 0 <= x <= SEED_MAX]
        jobs = [(kn, pols) for kn in near + seeds]
        if "merged" in self.designs.value:
            others = [kv for kv in self.kernel.options if kv != self.kernel.value]
            kernel_jobs = [(knobs(), [as_policy("merged", kv)]) for kv in others]
            jobs = kernel_jobs + jobs if owner is self.kernel else jobs + kernel_jobs
        return [lambda kn=kn, ps=ps: self._rows_for(kn, ps) for kn, ps in jobs]

    def compute(self):
        from matplotlib.figure import Figure

        from . import plots
        pols = self.policies()
        if not pols:
            raise FtsimError("designs: none selected; select at least one (ctrl-click)")
        summary = self.df_summary()
        what = f"{self.preset.value}, {self.workloads.value} workloads x {self.events} events, seed {self.seed.value}"
        # fixed margins: a constrained layout costs a third of the redraw
        if self.view_name == "comparison":
            metric = self.metric.value
            from . import metrics
            fig = plots._plot_comparison(summary[metric], metric, what, fig=Figure(figsize=(7.2, 3.7)),
                                          unit=metrics.METRICS[metric][1])
            fig.subplots_adjust(left=0.13, right=0.98, top=0.84, bottom=0.17)
            df = summary[metric]
        else:
            fig = plots._plot_cost_safety(summary, what, fig=Figure(figsize=(7.2, 4.2)))
            fig.subplots_adjust(left=0.12, right=0.97, top=0.86, bottom=0.13)
            df = pd.DataFrame({
                "cost (rebuilds + retries per 1k events)": summary[("regenerations_per_1k", "mean")]
                + summary[("retries_per_1k", "mean")],
                "exposure (bypass + discard time share)": summary[("bypass_time_share", "mean")].fillna(0)
                + summary[("discard_time_share", "mean")].fillna(0)})
        kernel_note = f"merged modelled at kernel {self.kernel.value}" if "merged" in self.designs.value else \
            "merged not selected"
        lab = f"{', '.join(summary.index)} · {what} · {kernel_note}"
        return dict(df=df, fig=fig, label=lab)

    def table_html(self) -> str:
        return "" if self.df is None else Table(self.df.round(4))._repr_html_()

    def summary(self) -> str:
        return (f"{self.preset.value}: {self.workloads.value} workloads x {self.events} events, "
                f"{self.functions.value} functions, seed {self.seed.value}")
