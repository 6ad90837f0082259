"""``ftsim report``: a summary CSV and PNG plots from a sweep's Parquet file, its input checked first."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd

from . import metrics
from .errors import FtsimError
from .workload import bad
from .sweepfiles import _kind


# -- report ----------------------------------------------------------------------------------------------

def _input_file(path) -> Path:
    try:
        path = Path(os.fspath(path))
    except TypeError:
        raise bad("file", repr(path)[:80], "an existing Parquet file written by ftsim sweep") from None
    allowed = "an existing Parquet file written by ftsim sweep"
    if "\0" in str(path):
        raise bad("file", str(path), allowed)
    try:
        st = os.stat(path)
    except OSError as e:
        why = "a dangling symlink" if os.path.islink(path) else e.strerror
        raise FtsimError(f"file: {str(path)!r} cannot be read ({why}); allowed: {allowed}") from None
    if not stat.S_ISREG(st.st_mode):
        raise FtsimError(f"file: {str(path)!r} is {_kind(st)}; allowed: {allowed}")
    return path


def _check_table(df: pd.DataFrame, path: Path):
    """A sweep's table: policy (strings), workload (integers), metric columns (numbers)."""
    where = f"file {path.name}"
    for col in ("policy", "workload"):
        if col not in df.columns:
            raise bad(f"{where} columns", sorted(map(str, df.columns))[:12], f"a table with {col!r} (from ftsim sweep)")
    if len(df) == 0:
        raise bad(f"{where} rows", 0, "at least one row")
    if not (pd.api.types.is_object_dtype(df["policy"]) or pd.api.types.is_string_dtype(df["policy"])) or \
            not df["policy"].map(lambda v: isinstance(v, str)).all():
        raise bad(f"{where} column 'policy'", str(df["policy"].dtype), "strings (policy labels)")
    if not pd.api.types.is_integer_dtype(df["workload"]) or pd.api.types.is_bool_dtype(df["workload"]):
        raise bad(f"{where} column 'workload'", str(df["workload"].dtype), "integers")
    found = [m for m in metrics.METRICS if m in df.columns]
    if not found:
        raise bad(f"{where} columns", sorted(map(str, df.columns))[:12], f"at least one metric ({', '.join(metrics.METRICS)})")
    for m in found:
        t = df[m].dtype
        if not (pd.api.types.is_float_dtype(t) or pd.api.types.is_integer_dtype(t)) or pd.api.types.is_bool_dtype(t):
            raise bad(f"{where} column {m!r}", str(t), "numbers")


def report(path, out_dir) -> pd.DataFrame:
    """Summary CSV (``summary.csv``: one row per policy x metric with mean, ci_low, ci_high) and PNG plots (one comparison per metric, cost versus safety)."""
    from . import plots
    path = _input_file(path)
    try:
        out_dir = Path(os.fspath(out_dir))
    except TypeError:
        raise bad("out", out_dir, "a directory that can be created") from None
    if "\0" in str(out_dir):
        raise bad("out", str(out_dir), "a directory path without NUL bytes")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise bad("out", str(out_dir), "a directory (this is a file)") from None
    except OSError as e:
        raise bad("out", str(out_dir)[:200], f"a directory that can be created ({e.strerror})") from None
    if not out_dir.is_dir() or not os.access(out_dir, os.W_OK | os.X_OK):
        raise bad("out", str(out_dir), "a writable directory")
    try:
        df = pd.read_parquet(path)
    except Exception as e:   # noqa: BLE001 - any reader error is bad input here
        raise FtsimError(f"file: {str(path)!r} is not a readable Parquet file ({type(e).__name__}); "
                         "allowed: a Parquet file written by ftsim sweep") from None
    _check_table(df, path)
    summary = metrics.summarize(df)
    long = summary.stack(level=0, future_stack=True).rename_axis(["policy", "metric"]).reset_index()
    what = f"{path.name}: {df['workload'].nunique()} workloads"

    def png(fig, name):
        try:
            fig.savefig(out_dir / name, dpi=100)
        finally:
            import matplotlib.pyplot as plt
            plt.close(fig)
    try:
        long[["policy", "metric", "mean", "ci_low", "ci_high"]].to_csv(out_dir / "summary.csv", index=False)
        for m in metrics.METRICS:
            if m in summary.columns.get_level_values(0):
                png(plots._plot_comparison(summary[m], m, what, unit=metrics.METRICS[m][1]), f"{m}.png")
        png(plots._plot_cost_safety(summary, what), "cost_safety.png")
    except OSError as e:
        raise FtsimError(f"out: {str(out_dir)!r}: a report file cannot be written ({e.strerror or e})") from None
    return summary
