"""Notebook 1's diagram: one call of a function with a livepatch and a BPF trampoline on it."""
from __future__ import annotations

import pandas as pd


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
