"""Notebook 3's scenario builder: rows of attach/detach/call steps, run under every design."""
from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as W

from . import consumers, functions
from . import policy as policies
from .dashboard import FIGURES, Dashboard, _kernel, _kernel_dropdown
from .designs import df_scenario_by_policy, label, scenario_text
from .errors import bad
from .tables import PAIR_FUNCTION


# -- Notebook 3: the scenario builder ---------------------------------------------------------------

DEFAULT_STEPS = (("attach", "livepatch"), ("attach", "bpf-fentry"), ("attach", "bpf-fexit"),
                 ("call", ""), ("detach", "livepatch"))
STEP_OPS = ("attach", "detach", "call", "-")


class ScenarioBuilder(Dashboard):
    """Build a scenario from dropdowns and see it run under every design (notebook 3).

    Each row is one step: an operation (attach, detach, call, ``-`` = skip) and, for attach and
    detach, the consumer; the row says what it does in words.  The table has one column per design,
    ``merged`` at the chosen kernel."""

    title = "Scenario builder: each row is one step; every design runs the same steps"
    name = "scenario"
    table_title = "the scenario as a file (ftsim scenario FILE)"

    def __init__(self, steps=DEFAULT_STEPS, function: str = "cmdline_proc_show", kernel: str | None = None,
                 rows: int = 6):
        super().__init__()
        steps = [tuple(s) for s in steps]
        if not isinstance(rows, int) or rows < 1 or rows > 20:
            raise bad("rows", rows, "an integer in [1, 20]")
        if len(steps) > rows:
            raise bad("steps", f"{len(steps)} steps", f"at most rows={rows}")
        for op, who in steps:
            if op not in STEP_OPS:
                raise bad("step", op, STEP_OPS)
            if op in ("attach", "detach") and who not in consumers.NAMES:
                raise bad(f"{op} consumer", who, consumers.NAMES)
        names = sorted(functions.known()) + [PAIR_FUNCTION]
        if function not in names:
            raise bad("function", function, names)
        kernel = _kernel(kernel)
        steps = steps + [("-", "")] * (rows - len(steps))
        opts = list(consumers.NAMES)
        self.ops = [W.Dropdown(options=STEP_OPS, value=op, layout=W.Layout(width="100px"))
                    for op, _ in steps]
        self.who = [W.Dropdown(options=opts, value=c or opts[0], layout=W.Layout(width="200px"))
                    for _, c in steps]
        self.notes_ = [W.HTML(layout=W.Layout(width="260px")) for _ in steps]
        for i, (o, c) in enumerate(zip(self.ops, self.who)):
            o.add_class(f"ftsim-op-{i + 1}")
            c.add_class(f"ftsim-who-{i + 1}")
        self.function = W.Dropdown(options=names, value=function, description="function",
                                   style={"description_width": "70px"}, layout=W.Layout(width="280px"))
        self.kernel = _kernel_dropdown(kernel)
        rows_box = [W.HBox([W.Label(f"{i + 1}.", layout=W.Layout(width="22px")), o, c, n],
                           layout=W.Layout(align_items="center"))
                    for i, (o, c, n) in enumerate(zip(self.ops, self.who, self.notes_))]
        self.controls = [W.VBox(rows_box), W.VBox([self.function, self.kernel])]
        self._watch(self.ops + self.who + [self.function, self.kernel])
        self.update()

    @property
    def steps(self):
        return [(o.value, c.value if o.value in ("attach", "detach") else "")
                for o, c in zip(self.ops, self.who) if o.value != "-"]

    @property
    def text(self) -> str:
        return scenario_text(self.steps, self.function.value)

    def key(self):
        return (tuple(self.steps), self.function.value, self.kernel.value)

    def _describe_rows(self):
        live: dict[str, int] = {}
        for o, c, n in zip(self.ops, self.who, self.notes_):
            c.layout.visibility = "visible" if o.value in ("attach", "detach") else "hidden"
            if o.value == "attach":
                live[c.value] = live.get(c.value, 0) + 1
                text = f"registers {c.value} on {self.function.value}"
            elif o.value == "detach":
                if live.get(c.value):
                    live[c.value] -= 1
                    text = f"unregisters the newest {c.value}"
                else:
                    text = f"nothing of {c.value} is attached: skipped"
            elif o.value == "call":
                text = f"calls {self.function.value}() once"
            else:
                text = "(no step)"
            n.value = f"<small>{html.escape(text)}</small>"

    def compute(self):
        pols = policies.all_policies(kernel=self.kernel.value)
        df = df_scenario_by_policy(self.text, pols)
        df.columns = [label(p) for p in pols]
        lab = f"on {self.function.value}(), merged modelled at kernel {self.kernel.value}"
        return dict(df=df, label=lab, html=self._table(df),
                    table=f"<pre>{html.escape(self.text)}</pre>")

    def update(self, change=None):
        self._describe_rows()
        return super().update(change)

    def summary(self) -> str:
        broken = sorted({tok[1:] for col in self.df for cell in self.df[col] for tok in cell.split()
                         if tok.startswith("!")})
        return f"{len(self.df)} steps on {self.function.value}; invariants broken: {', '.join(broken) or 'none'}"

    @staticmethod
    def _table(df) -> str:
        def colour(cell: str) -> str:
            if "!" in cell:
                return "background-color:#f4b6b6"
            if cell.startswith("-E"):
                return "background-color:#fde2b0"
            return ""
        head = "".join(f'<th style="text-align:left;padding:2px 8px">{html.escape(c)}</th>' for c in df.columns)
        rows = []
        for step, row in df.iterrows():
            tds = "".join(f'<td style="text-align:left;padding:2px 8px;{colour(v)}">'
                          f"{html.escape(v)}</td>" for v in row)
            rows.append(f'<tr><th style="text-align:left;padding:2px 8px;white-space:nowrap;font-weight:normal">'
                        f"<code>{html.escape(step)}</code></th>{tds}</tr>")
        return (f'<table class="ftsim-builder"><thead><tr><th style="text-align:left;padding:2px 8px">step</th>'
                f'{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
                '<small>cells: what the caller was told, then the record <code>count:flags</code>; '
                "<code>cb/retry/regen</code> callbacks, retries, trampoline images; calls: "
                "<code>body=B &lt;- R</code> (which body ran, whose value the caller got); "
                "<code>!Name</code>: an invariant broke. Orange: refused; red: broken.</small>")

    def figure(self):
        return None

    def save(self, path=None, dpi: int = 150) -> Path:
        """Write the scenario as a file ``ftsim scenario`` runs (default ``figures/scenario-<n steps>.fts``)."""
        path = Path(path) if path else FIGURES / f"scenario-{len(self.steps)}-steps-on-{self.function.value}.fts"
        path.parent.mkdir(parents=True, exist_ok=True)
        header = f"# built with ftsim.widgets.ScenarioBuilder; {self.summary()}\n"
        path.write_text(header + self.text)
        return path

    @property
    def widget(self) -> W.VBox:
        box = super().widget
        self.save_button.description = "save scenario (.fts)"
        return box
