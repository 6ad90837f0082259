"""The dashboards' common part: knobs, an output that dims while it computes, results kept per knob
setting, a *save* button, a static fallback for front ends without widgets, and the background
prefetch of likely next settings.  The dashboards themselves: ``ftsim.builder`` (notebook 3) and
``ftsim.widgets`` (notebooks 4-6)."""
from __future__ import annotations

import base64
import html
import io
import os
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path

import ipywidgets as W
import pandas as pd

from . import policy as policies
from . import versions
from .errors import FtsimError, bad
from .plots import Table

#: the kernels people run, for the ``merged`` design's kernel selectors (``ftsim.policy.USER_KERNELS``
#: once the policy module carries it), plus the newest modelled kernel, oldest first
USER_KERNELS = tuple(policies.USER_KERNELS)
KERNELS = tuple(sorted(dict.fromkeys((*USER_KERNELS, policies.NEWEST_KERNEL)), key=versions.parse))
#: where ``save()`` writes (relative to the kernel's working directory: notebooks/ in JupyterLab)
FIGURES = Path("figures")

CSS = """<style>
.ftsim-dash .ftsim-out { transition: opacity .15s; }
.ftsim-dash.ftsim-busy .ftsim-out { opacity: .35; }
.ftsim-dash .ftsim-status { color: #555; }
.ftsim-dash.ftsim-busy .ftsim-status { color: #a35a00; }
.ftsim-dash .ftsim-heading { font-size: 13px; margin: 2px 0; }
.ftsim-dash .ftsim-spin { display: inline-block; width: 10px; height: 10px; margin-right: 6px;
  border: 2px solid #e0a040; border-top-color: transparent; border-radius: 50%;
  animation: ftsim-spin .8s linear infinite; vertical-align: -1px; }
@keyframes ftsim-spin { to { transform: rotate(360deg); } }
.ftsim-dash .ftsim-warn { color: #b00020; }
</style>"""


# -- Prefetching while the reader looks -----------------------------------------------------------

class Prefetch:
    """Computes the settings a reader is likely to pick next (the neighbours of the knob just moved)
    in a background thread while the kernel is idle, so the next move finds its result ready.

    Safe by construction: one lock serialises every use of the batch engine by the dashboards (the
    foreground update takes it too), a move or a new cell run empties the queue first
    (``pre_run_cell``: a notebook cell never runs beside it), and it starts only after a move made in
    a widget front end, never in scripts, tests or nbconvert.  ``FTSIM_PREFETCH=0`` turns it off."""

    lock = threading.RLock()

    def __init__(self):
        self.queue: list = []
        self.thread: threading.Thread | None = None
        self.cond = threading.Condition()
        self.enabled = os.environ.get("FTSIM_PREFETCH", "1") != "0"
        self._hooked = False

    def _hook(self):
        if self._hooked:
            return
        self._hooked = True
        try:
            from IPython import get_ipython
            ip = get_ipython()
        except ImportError:                               # pragma: no cover
            ip = None
        if ip is not None:
            ip.events.register("pre_run_cell", lambda *_: self.stop())

    def schedule(self, jobs):
        """Replace the queue by ``jobs`` (callables, most likely first)."""
        if not self.enabled:
            return
        self._hook()
        with self.cond:
            self.queue = list(jobs)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="ftsim-prefetch", daemon=True)
                self.thread.start()
            self.cond.notify()

    def clear(self):
        """Empty the queue (the job under way, if any, finishes)."""
        with self.cond:
            self.queue = []

    def stop(self):
        """Empty the queue and wait for the job under way (a cell is about to run)."""
        self.clear()
        with self.lock:
            pass

    def _run(self):
        while True:
            with self.cond:
                if not self.queue:
                    self.cond.wait(timeout=30)
                    if not self.queue:
                        return
                job = self.queue.pop(0)
            with self.lock:
                try:
                    job()
                except Exception:                          # noqa: BLE001 - a guess that failed costs nothing
                    pass


PREFETCH = Prefetch()


def _from_front_end(change) -> bool:
    """Did a widget front end make this change (not code setting ``.value``)?"""
    owner = change.get("owner") if isinstance(change, dict) else None
    return bool(owner is not None and getattr(owner, "_property_lock", None))


# -- Rendering helpers ---------------------------------------------------------------------------


def png_bytes(fig, dpi: int = 100) -> bytes:
    """The figure as PNG bytes at ``dpi`` (fast zlib level: the dashboards redraw on every move)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def _pixels(fig, dpi: int) -> int:
    return int(round(fig.get_figwidth() * dpi))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")[:80] or "figure"


class Dashboard:
    """Knobs + an output (a figure as PNG, or HTML) + the values behind it; subclasses define
    ``controls``, ``key()`` (the knob setting) and ``compute()``."""

    title = ""
    name = "dashboard"
    dpi = 100
    table_title = "the values behind the figure"
    cache_size = 64

    def __init__(self):
        self.df: pd.DataFrame | None = None
        self._fig = None
        self.png = b""
        self.html = ""
        self.label = ""
        self.notes: list[str] = []
        self.last_update_seconds = 0.0
        self.updates = 0
        self._results: OrderedDict = OrderedDict()
        self.heading = W.HTML(layout=W.Layout(margin="0"))
        self.heading.add_class("ftsim-heading")
        self.status = W.HTML()
        self.status.add_class("ftsim-status")
        self.image = W.Image(format="png", layout=W.Layout(align_self="flex-start", max_width="100%",
                                                           height="auto", object_fit="contain"))
        self.image.add_class("ftsim-out")
        self.view = W.HTML(layout=W.Layout(display="none"))
        self.view.add_class("ftsim-out")
        self.table = W.HTML()
        self.values = W.Accordion(children=[self.table], selected_index=None)
        self.values.set_title(0, self.table_title)
        self.values.add_class("ftsim-out")
        self.save_button = W.Button(description="save figure", icon="download", layout=W.Layout(width="auto"),
                                    tooltip="write the current figure under figures/ and offer it for download")
        self.saved = W.HTML()
        self.save_button.on_click(lambda _: self._save_clicked())

    # -- subclasses -----------------------------------------------------------------------------
    def key(self) -> tuple:
        raise NotImplementedError

    def compute(self) -> dict:
        """-> dict(df=DataFrame, label=str, fig=Figure or None, html=str or None, table=HTML or None)."""
        raise NotImplementedError

    def summary(self) -> str:
        return ""

    def figure(self):
        """The current figure (built on demand by dashboards that show HTML)."""
        return self._fig

    @property
    def fig(self):
        return self.figure()

    # -- the update -----------------------------------------------------------------------------
    def _busy(self, on: bool):
        box = getattr(self, "_box", None)
        if box is not None:
            (box.add_class if on else box.remove_class)("ftsim-busy")
        if on:
            self.status.value = '<small><span class="ftsim-spin"></span>computing&hellip;</small>'

    def prefetch_jobs(self, change) -> list:
        """Callables computing the likely next settings (subclasses); run by ``PREFETCH``."""
        return []

    def update(self, change=None):
        """Recompute (or take the result kept for this knob setting) and redraw."""
        t0 = time.perf_counter()
        PREFETCH.clear()
        self._busy(True)
        try:
            key = self.key()
            res = self._results.get(key)
            if res is None:
                with Prefetch.lock:
                    res = self.compute()
                if res.get("fig") is not None:
                    res["png"] = png_bytes(res["fig"], self.dpi)
                    res["width"] = _pixels(res["fig"], self.dpi)
                self._results[key] = res
                while len(self._results) > self.cache_size:
                    self._results.popitem(last=False)
            else:
                self._results.move_to_end(key)
            self._show(res)
            self.updates += 1
            self.last_update_seconds = time.perf_counter() - t0
            self.status.value = self._status_html()
        except FtsimError as e:
            self.status.value = f'<small class="ftsim-warn">{html.escape(str(e))}</small>'
        except Exception as e:                       # a bug: say so on the dashboard, then the traceback
            self.status.value = (f'<small class="ftsim-warn">ftsim failed ({html.escape(type(e).__name__)}: '
                                 f'{html.escape(str(e))}): a bug, please report it</small>')
            raise
        finally:
            self._busy(False)
        if _from_front_end(change or {}):
            PREFETCH.schedule(self.prefetch_jobs(change))
        return self

    def _show(self, res: dict):
        self.df, self._fig, self.label = res["df"], res.get("fig"), res["label"]
        self.png, self.html = res.get("png", b""), res.get("html") or ""
        self.heading.value = f"<b>{html.escape(self.label)}</b>"
        if self.png:
            width = f"{res['width']}px"
            if self.image.layout.width != width:
                self.image.layout.width = width
            self.image.value = self.png
            self.image.layout.display = None
        else:
            self.image.layout.display = "none"
        if self.html:
            self.view.value = self.html
            self.view.layout.display = None
        else:
            self.view.layout.display = "none"
        self.table.value = res.get("table") or self.table_html()
        self.saved.value = ""

    def _status_html(self) -> str:
        notes = "".join(f' &middot; <span class="ftsim-warn">{html.escape(n)}</span>' for n in self.notes)
        return (f"<small>{html.escape(self.summary())} &middot; update #{self.updates} in "
                f"{self.last_update_seconds * 1000:.0f} ms{notes}</small>")

    def table_html(self) -> str:
        return "" if self.df is None else Table(self.df)._repr_html_()

    def _watch(self, widgets_=None):
        for w in widgets_ or self.controls:
            w.observe(self.update, names="value")

    # -- saving -----------------------------------------------------------------------------------
    def save(self, path=None, dpi: int = 150) -> Path:
        """Write the current figure as PNG (``path``, default ``figures/<dashboard>-<label>.png``)."""
        fig = self.figure()
        if fig is None:
            raise bad("save", self.name, "a dashboard with a figure")
        path = Path(path) if path else FIGURES / f"{self.name}-{_slug(self.label)}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
        return path

    def _save_clicked(self):
        try:
            path = self.save()
        except (FtsimError, OSError) as e:
            self.saved.value = f'<small class="ftsim-warn">not saved: {html.escape(str(e))}</small>'
            return
        data = base64.b64encode(path.read_bytes()).decode()
        mime = "image/png" if path.suffix == ".png" else "text/plain"
        self.saved.value = (f'<small>saved <code>{html.escape(str(path))}</code> &middot; '
                            f'<a download="{html.escape(path.name)}" href="data:{mime};base64,{data}">download</a>'
                            f"</small>")

    # -- display ----------------------------------------------------------------------------------
    @property
    def widget(self) -> W.VBox:
        if not hasattr(self, "_box"):
            knobs = W.HBox(self.controls, layout=W.Layout(flex_flow="row wrap", align_items="flex-start"))
            tools = W.HBox([self.save_button, self.saved], layout=W.Layout(align_items="center"))
            parts = [W.HTML(CSS), W.HTML(f"<b>{html.escape(self.title)}</b>"), knobs, self.status, self.heading,
                     self.image, self.view, self.values, tools]
            self._box = W.VBox(parts, layout=W.Layout(width="100%"))
            self._box.add_class("ftsim-dash")
        return self._box

    def static_html(self) -> str:
        """What a front end without widgets shows: the heading, the figure (or HTML view), the values."""
        out = f"<p><b>{html.escape(self.title)}</b><br>{html.escape(self.summary())}</p>"
        out += f"<p><b>{html.escape(self.label)}</b></p>"
        if self.png:
            out += (f'<img src="data:image/png;base64,{base64.b64encode(self.png).decode()}" '
                    f'style="max-width:100%;width:{_pixels(self._fig, self.dpi) if self._fig else 600}px"/>')
        out += self.html
        table = self.table.value
        if table:
            out += f"<details><summary>{html.escape(self.table_title)}</summary>{table}</details>"
        return out

    def _repr_mimebundle_(self, include=None, exclude=None):
        """The widget for front ends with a widget manager; the static result for all others."""
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude) or {}
        if self.png:
            bundle["image/png"] = base64.b64encode(self.png).decode()
        bundle["text/html"] = self.static_html()
        bundle["text/plain"] = f"{self.title}\n{self.summary()}\n{self.label}\n" + (
            "" if self.df is None else self.df.to_string(max_rows=20))
        return bundle

    def show(self):
        """Display in IPython (widget or static fallback); in plain Python, print the table."""
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:                                  # pragma: no cover
            get_ipython = None
        if get_ipython is not None and get_ipython() is not None:
            display(self)
        else:
            print(self._repr_mimebundle_()["text/plain"])
        return self


def _kernel(kernel: str | None) -> str:
    kernel = kernel or policies.NEWEST_KERNEL
    policies.get("merged", kernel=kernel)           # a one-line FtsimError for a non-version or one before 6.0
    return kernel


def _kernel_dropdown(kernel: str, description: str = "merged on") -> W.Dropdown:
    options = list(KERNELS) if kernel in KERNELS else sorted({*KERNELS, kernel}, key=versions.parse)
    return W.Dropdown(options=options, value=kernel, description=description,
                      style={"description_width": "80px"}, layout=W.Layout(width="220px"))
