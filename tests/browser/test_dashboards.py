"""Every dashboard of notebooks 3 to 6 in JupyterLab, driven as a reader drives it: open the notebook, run
it, then change each control several times (click and pick a dropdown entry, arrow keys on a slider,
click a checkbox), wait for the new output, check it changed and that it is what the same knobs give in
Python (a shadow dashboard in the test process receives the same changes), and time each round trip.

The round trips (input change -> new output drawn) are kept in .jupyter/browser-results.json with the
load average they were measured at, one move every ``THINK_S`` seconds plus the round trip; targets (issue 15): median <= 0.3 s and p95 <= 0.6 s per control
at a load average about 1 on 2 cores.  Here they are held to a bound scaled by the machine's load
(``_bound``), so a busy CI machine does not fail a fast kit; ``FTSIM_LATENCY_STRICT=1`` holds them to
the targets themselves.
"""
from __future__ import annotations

import os
import re
import time

import pytest

from conftest import TIMEOUT_MS, load_average, record, screenshot_dir, stats

STRICT = os.environ.get("FTSIM_LATENCY_STRICT") == "1"
#: seconds between two moves, as a reader looks at the new output before the next one (the dashboards
#: prefetch likely next settings meanwhile); FTSIM_THINK_S=0 moves back to back
THINK_S = float(os.environ.get("FTSIM_THINK_S", "1.0"))
MEDIAN_TARGET, P95_TARGET = 0.3, 0.6

UPDATES = """(el) => { const s = el.querySelector('.ftsim-status');
  const m = s && s.textContent.match(/update #(\\d+)/); return m ? +m[1] : 0; }"""
DONE = """([el, n]) => { const s = el.querySelector('.ftsim-status');
  const m = s && s.textContent.match(/update #(\\d+)/);
  if (!m || +m[1] <= n || el.classList.contains('ftsim-busy')) return false;
  const img = el.querySelector('img.widget-image');
  const ok = !img || img.offsetParent === null || (img.complete && img.naturalWidth > 0);
  if (ok && window.__ftsimT) window.__ftsimT.done = performance.now();
  return ok; }"""
# the busy class seen at least once; the time of the input event (the change a widget reacts to)
WATCH = """(el) => { window.__ftsimBusy = false; window.__ftsimT = {input: 0, done: 0};
  new MutationObserver(() => { if (el.classList.contains('ftsim-busy')) window.__ftsimBusy = true; })
    .observe(el, {attributes: true, attributeFilter: ['class']});
  for (const kind of ['change', 'keydown', 'click'])
    document.addEventListener(kind, () => { window.__ftsimT.input = performance.now(); }, true); }"""


def _bound(target: float, slack: float = 2.0) -> float:
    """The target, scaled by how much busier than 1 the machine is (2 cores) and by ``slack``, unless
    FTSIM_LATENCY_STRICT=1 asks for the target itself."""
    if STRICT:
        return target
    return target * max(1.0, load_average()) * slack


def open_and_run(page, lab, name: str):
    """Open a notebook, run every cell, wait until the kernel is idle; the dashboard's root element."""
    page.goto(lab.url(name), wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook", state="attached")
    page.wait_for_function("() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                           " return w && w.content && w.sessionContext && w.sessionContext.session"
                           " && w.sessionContext.session.kernel && w.sessionContext.session.kernel.status === 'idle'; }",
                           timeout=120_000)
    # the stored outputs (widgets drawn from the saved state) go first, so only live ones are checked
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # every code cell ran: each prompt shows its execution count, and the kernel is idle
    page.wait_for_function("() => { const w = window.jupyterapp.shell.currentWidget; const cells = w.content.model.cells;"
                           " let code = 0; for (let i = 0; i < cells.length; i++) { const c = cells.get(i);"
                           " if (c.type !== 'code') continue; code++; if (!c.executionCount) return false; }"
                           " return code > 0 && w.sessionContext.session.kernel.status === 'idle'; }",
                           timeout=300_000, polling=250)
    dash = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .ftsim-dash").first
    dash.wait_for(state="visible", timeout=60_000)
    el = dash.element_handle()
    page.wait_for_function(DONE, arg=[el, 0], timeout=60_000)
    page.evaluate(WATCH, el)
    return dash, el


class Driver:
    """Changes one control at a time and times the round trip to the new output."""

    def __init__(self, page, dash, el, name: str):
        self.page, self.dash, self.el, self.name = page, dash, el, name
        self.times: dict[str, list[float]] = {}
        self.kernel: dict[str, list[float]] = {}         # the part spent computing in the kernel

    def output(self) -> str:
        return self.page.evaluate("""(el) => { const img = el.querySelector('img.widget-image');
            const views = [...el.querySelectorAll('.ftsim-out')].map(v => v.innerHTML.length + ':' +
              v.textContent.slice(0, 4000)).join('|');
            return (img && img.offsetParent !== null ? img.src : '') + '|' + views; }""", self.el)

    def change(self, control: str, action, prepare=None, expect_change: bool = True):
        """``prepare()`` (a click that opens a dropdown, a focus) untimed, then ``action()``: the time from
        the input event it fires to the new output drawn, measured in the page."""
        time.sleep(THINK_S)
        if prepare:
            prepare()
        n = self.page.evaluate(UPDATES, self.el)
        before = self.output()
        self.page.evaluate("() => { window.__ftsimT.input = 0; window.__ftsimT.done = 0; }")
        action()
        self.page.wait_for_function(DONE, arg=[self.el, n], timeout=TIMEOUT_MS, polling="raf")
        took = self.page.evaluate("() => (window.__ftsimT.done - window.__ftsimT.input) / 1000")
        assert took > 0, f"{self.name}/{control}: no input event seen"
        self.times.setdefault(control, []).append(took)
        m = re.search(r"update #\d+ in (\d+) ms", self.status())
        self.kernel.setdefault(control, []).append(int(m[1]) / 1000 if m else float("nan"))
        if expect_change:
            assert self.output() != before, f"{self.name}/{control}: the output did not change"
        return took

    def heading(self) -> str:
        return self.dash.locator(".ftsim-heading").inner_text()

    def status(self) -> str:
        return self.dash.locator(".ftsim-status").inner_text()

    def values_text(self) -> str:
        """The folded table's text (read from the DOM, folded or not)."""
        return self.page.evaluate("(el) => { const t = el.querySelector('.widget-accordion table, "
                                  ".jupyter-widget-Accordion table, .lm-Widget table.ftsim-table');"
                                  " return t ? t.textContent : ''; }", self.el)

    def record(self, extra: dict | None = None):
        out = {c: dict(stats(t), kernel_median_s=stats(self.kernel[c])["median_s"]) for c, t in self.times.items()}
        record(f"round_trip/{self.name}", {"load_average": round(load_average(), 2), "think_s": THINK_S,
                                           "controls": out, **(extra or {})})
        for control, s in out.items():
            assert s["median_s"] <= _bound(MEDIAN_TARGET), (self.name, control, s)
            assert s["p95_s"] <= _bound(P95_TARGET), (self.name, control, s)
        return out

    def shot(self, name: str):
        d = screenshot_dir()
        if d:
            self.dash.scroll_into_view_if_needed()
            self.dash.screenshot(path=str(d / f"lab-{name}.png"))


def control(dash, kind: str, label: str):
    """The input element of a labelled ipywidgets control inside the dashboard."""
    inner = {"dropdown": "select", "select": "select", "slider": ".noUi-handle", "checkbox": "input"}[kind]
    box = {"dropdown": ".widget-dropdown", "select": ".widget-select-multiple", "slider": ".widget-slider",
           "checkbox": ".widget-checkbox"}[kind]
    loc = dash.locator(box).filter(has=dash.page.locator(".widget-label, label",
                                                         has_text=re.compile(rf"^\s*{re.escape(label)}\s*$")))
    return loc.locator(inner).first


def click(loc):
    """Click a dropdown as a reader would: it must be visible, wide enough, not covered."""
    box = loc.bounding_box()
    assert box and box["width"] >= 90, f"a dropdown {box} is too narrow to use"
    loc.click()


def pick(d, name: str, loc, value: str):
    """Click the dropdown, then choose ``value``: one timed change."""
    return d.change(name, lambda: loc.select_option(label=value), prepare=lambda: click(loc))


def _table_rows(page, el, selector: str) -> list[list[str]]:
    return page.evaluate("""([el, sel]) => [...el.querySelectorAll(sel + ' tbody tr')].map(
        tr => [...tr.children].map(td => td.textContent.trim()))""", [el, selector])


# -- Notebook 3: the builder, by clicks --------------------------------------------------------------

def test_builder_by_clicks(lab, page):
    from ftsim import widgets
    dash, el = open_and_run(page, lab, "03-the-model.ipynb")
    d = Driver(page, dash, el, "03-builder")
    shadow = widgets.ScenarioBuilder()
    for i in range(1, 7):                                       # every row's two dropdowns can be clicked
        for kind in ("op", "who"):
            box = dash.locator(f".ftsim-{kind}-{i} select").bounding_box()
            assert box and box["width"] >= 90 and box["height"] >= 18, (kind, i, box)
    assert dash.locator(".ftsim-who-4 select").is_hidden()      # row 4 is a call: no consumer shown

    def check():
        rows = _table_rows(page, el, "table.ftsim-builder")
        want = [[step, *row] for step, row in zip(shadow.df.index, shadow.df.values.tolist())]
        assert rows == want
        heads = page.evaluate("(el) => [...el.querySelectorAll('table.ftsim-builder thead th')]"
                              ".map(th => th.textContent)", el)
        assert heads == ["step", *shadow.df.columns]

    check()
    steps = [("op", 6, "attach", "ops", 5), ("who", 6, "bpf-fexit", "who", 5), ("op", 4, "detach", "ops", 3),
             ("who", 4, "kprobe", "who", 3), ("who", 3, "bpf-fentry", "who", 2), ("op", 5, "call", "ops", 4),
             ("op", 2, "-", "ops", 1), ("who", 1, "kprobe-post", "who", 0), ("op", 2, "attach", "ops", 1),
             ("who", 2, "fail-function", "who", 1)]
    for kind, row, value, attr, idx in steps:
        pick(d, f"row {kind}", dash.locator(f".ftsim-{kind}-{row} select"), value)
        getattr(shadow, attr)[idx].value = value
        check()
        note = dash.locator(".widget-hbox").filter(has=page.locator(f".ftsim-op-{row}")).last
        assert note.locator(".widget-html").inner_text().strip() == re.sub(r"<[^>]+>", "", shadow.notes_[idx].value)
    for kernel in (widgets.KERNELS[0], widgets.KERNELS[-1]):
        pick(d, "kernel", control(dash, "dropdown", "merged on"), kernel)
        shadow.kernel.value = kernel
        check()
        assert f"kernel {kernel}" in d.heading()
    assert page.evaluate("() => window.__ftsimBusy")
    d.shot("03-builder")
    d.record()


# -- Notebook 4: the designs side by side ---------------------------------------------------------------

def test_design_comparison(lab, page):
    from ftsim import widgets
    dash, el = open_and_run(page, lab, "04-designs-side-by-side.ipynb")
    d = Driver(page, dash, el, "04-designs")
    shadow = widgets.DesignComparison(a="pre-6.0", b="merged")

    def check():
        titles = page.evaluate("(el) => [...el.querySelectorAll('.ftsim-grid .t')].map(t => t.textContent)", el)
        assert titles == re.findall(r'<div class="t">([^<]*)</div>', shadow.html)
        outlined = page.evaluate("(el) => el.querySelectorAll('.ftsim-grid td.v.d').length", el)
        assert outlined == shadow.html.count('class="v d"')
        assert shadow.label in d.heading() and shadow.summary() in d.status()

    check()
    changes = [("design B", "naive"), ("design B", "song"), ("design B", "rostedt"), ("design B", "merged"),
               ("design A", "song"), ("design A", "rostedt"), ("design A", "pre-6.0"),
               ("show", "body_ran"), ("show", "result_from"), ("show", "result")]
    attrs = {"design A": "a", "design B": "b", "show": "value"}
    for label, value in changes:
        pick(d, label, control(dash, "dropdown", label), value)
        getattr(shadow, attrs[label]).value = value
        check()
    for kernel in list(widgets.KERNELS[:-1]) + [widgets.KERNELS[-1]]:
        pick(d, "merged on", control(dash, "dropdown", "merged on"), kernel)
        shadow.kernel.value = kernel
        check()
    for _ in range(4):
        d.change("all consumers", lambda: dash.locator(".widget-checkbox input").click())
        shadow.all_consumers.value = not shadow.all_consumers.value
        check()
    assert page.evaluate("() => window.__ftsimBusy")
    d.shot("04-designs")
    d.record()


# -- Notebooks 5 and 6: the workload dashboards ---------------------------------------------------------

def _check_values(d, shadow):
    text = d.values_text()
    assert shadow.label in d.heading()
    for label, row in shadow.df.round(4).iterrows():
        assert str(label) in text
        for v in row.tolist():
            if v == v:                                              # NaN shows as an empty cell
                assert f"{float(v):.4g}" in text, (label, v, text[:300])


def _drive_workloads(lab, page, name: str, shadow, controls):
    dash, el = open_and_run(page, lab, name)
    d = Driver(page, dash, el, name[:2] + "-" + shadow.name + ("-" + shadow.view_name if shadow.view_name != "comparison"
                                                                 else ""))
    _check_values(d, shadow)
    for label, kind, steps, apply in controls:
        for value in steps:
            if kind == "slider":
                handle = control(dash, "slider", label)
                d.change(label, lambda: page.keyboard.press(value), prepare=handle.focus)
            elif kind == "select":
                d.change(label, lambda: control(dash, "select", label).select_option(list(value)))
            else:
                pick(d, label, control(dash, "dropdown", label), value)
            apply(shadow, value)
            _check_values(d, shadow)
    assert page.evaluate("() => window.__ftsimBusy")
    return d


def test_workload_dashboard(lab, page):
    from ftsim import widgets
    shadow = widgets.WorkloadDashboard()
    first = shadow.metric.options[0]

    def bump(attr, by):
        return lambda s, _: setattr(getattr(s, attr), "value", round(getattr(s, attr).value + by, 6))

    def mix(name, by):
        return lambda s, _: setattr(s.mix_sliders[name], "value", round(s.mix_sliders[name].value + by, 6))

    controls = [
        ("seed", "slider", ["ArrowRight"] * 5, bump("seed", 1)),
        ("workloads", "slider", ["ArrowRight"] * 4, bump("workloads", 10)),
        ("functions", "slider", ["ArrowLeft"] * 4, bump("functions", -1)),
        ("livepatch", "slider", ["ArrowRight"] * 4, mix("livepatch", 0.1)),
        ("metric", "dropdown", ["bypass_time_share", "other_refused", "retries_per_1k", first],
         lambda s, v: setattr(s.metric, "value", v)),
        ("merged on", "dropdown", list(widgets.KERNELS[:-1]) + [widgets.KERNELS[-1]],
         lambda s, v: setattr(s.kernel, "value", v)),
        ("designs", "select", [("pre-6.0", "merged"), ("merged", "naive"), ("rostedt", "song", "merged"),
                               tuple(shadow.designs.options)], lambda s, v: setattr(s.designs, "value", tuple(v))),
        ("preset", "dropdown", ["security-response", "bpf-lsm", "observability", "uniform"],
         lambda s, v: setattr(s.preset, "value", v)),
    ]
    d = _drive_workloads(lab, page, "05-randomized-workloads.ipynb", shadow, controls)
    d.shot("05-workloads")
    d.record()


def test_cost_safety_dashboard(lab, page):
    from ftsim import widgets
    shadow = widgets.WorkloadDashboard(preset="observability", view="cost-safety")

    def bump(attr, by):
        return lambda s, _: setattr(getattr(s, attr), "value", getattr(s, attr).value + by)

    controls = [
        ("preset", "dropdown", ["security-response", "bpf-lsm", "uniform", "observability"],
         lambda s, v: setattr(s.preset, "value", v)),
        ("merged on", "dropdown", list(widgets.KERNELS[:-1]) + [widgets.KERNELS[-1]],
         lambda s, v: setattr(s.kernel, "value", v)),
        ("seed", "slider", ["ArrowRight"] * 4, bump("seed", 1)),
    ]
    d = _drive_workloads(lab, page, "06-cost-and-safety.ipynb", shadow, controls)
    d.shot("06-cost-safety")
    d.record()


# -- First render with an empty cache -------------------------------------------------------------------

FIRST = {
    "03-builder": "widgets.ScenarioBuilder()",
    "04-designs": "widgets.DesignComparison()",
    "05-workloads": "widgets.WorkloadDashboard()",
}


def test_first_render_with_an_empty_cache(cold_lab, page):
    """A fresh kernel, an empty FTSIM_CACHE: the time from running a dashboard's cell (after the imports
    cell) to its first output drawn.  Target: 3 s."""
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from ftsim import widgets")] + [
        nbformat.v4.new_code_cell(src) for src in FIRST.values()]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, cold_lab.dir / "first-render.ipynb")
    page.goto(cold_lab.url("first-render.ipynb"), wait_until="domcontentloaded")
    page.wait_for_function("() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                           " return w && w.content && w.sessionContext && w.sessionContext.session"
                           " && w.sessionContext.session.kernel && w.sessionContext.session.kernel.status === 'idle'; }",
                           timeout=120_000)
    run_cell = ("(i) => { const w = window.jupyterapp.shell.currentWidget; w.content.activeCellIndex = i;"
                " return window.jupyterapp.commands.execute('notebook:run-cell'); }")
    page.evaluate(run_cell, 0)
    page.wait_for_function("() => { const p = document.querySelectorAll('.jp-InputPrompt')[0];"
                           " return p && /\\[1\\]/.test(p.textContent); }", timeout=120_000)
    times = {}
    for i, name in enumerate(FIRST, start=1):
        t0 = time.monotonic()
        page.evaluate(run_cell, i)
        page.wait_for_function("""(i) => { const cells = document.querySelectorAll('.jp-Notebook .jp-Cell');
            const d = cells[i] && cells[i].querySelector('.ftsim-dash');
            if (!d) return false; const s = d.querySelector('.ftsim-status');
            if (!s || !/update #1/.test(s.textContent)) return false;
            const img = d.querySelector('img.widget-image');
            return !img || img.offsetParent === null || (img.complete && img.naturalWidth > 0); }""",
                               arg=i, timeout=120_000, polling="raf")
        times[name] = round(time.monotonic() - t0, 2)
    record("first_render_empty_cache", {"load_average": round(load_average(), 2), "seconds": times})
    for name, s in times.items():
        assert s <= _bound(3.0, slack=1.0), (name, s)
