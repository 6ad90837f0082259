"""Sweeps: many workloads of a preset under several designs, in chunks, on any Executor, to Parquet.

    ftsim sweep --preset security-response --policies all --workloads 20000 --seed 0 --out sr.parquet
    ftsim report sr.parquet --out sr-report/

Chunks run through any ``concurrent.futures.Executor`` (default: in this process).  Each finished
chunk is written at once to ``OUT.parts/`` (write to a temporary name, then rename), so an
interrupted sweep keeps every finished chunk and the same command resumes it; when all chunks are in,
they are joined into OUT and the parts directory is removed.  Workload ``j`` is the same whatever the
chunking or executor (its random stream is ``SeedSequence([seed, j])``).

On a Dask cluster (``pip install dask distributed``), hand the client's executor to ``sweep()``:

    from dask.distributed import Client
    client = Client("tcp://scheduler:8786")          # or Client(LocalCluster()) on one machine
    sweep("uniform", workloads=10**6, out="big.parquet", executor=client.get_executor())
"""
from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import Executor, Future, as_completed
from pathlib import Path

import pandas as pd

from . import metrics, policy as policies, workload
from .errors import FtsimError, bad


def run_chunk(preset: str, policy_names: list[str], kernel: str | None, start: int, n: int, events: int,
              seed: int, overrides: dict) -> pd.DataFrame:
    """Workloads ``start .. start+n-1``: their ``df_workloads`` rows (picklable, for any executor)."""
    p = workload.resolve(preset, **overrides)
    pols = [policies.get(x, kernel=kernel) if x == "merged" else policies.get(x) for x in policy_names]
    arrays = workload.generate_arrays(p, seed, events, n, start)
    df, _ = metrics.compute(arrays, pols, persist=True)
    df["workload"] += start
    return df


class _Inline(Executor):
    """Run each task at submission, in this process."""

    def submit(self, fn, /, *args, **kwargs):
        f = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:   # noqa: BLE001 - handed to the caller through the future
            f.set_exception(e)
        return f


def _check_out(out) -> Path:
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    if out.suffix != ".parquet":
        raise bad("out", str(out), "a path ending in .parquet")
    if not parent.is_dir() or not os.access(parent, os.W_OK) or (out.exists() and out.is_dir()):
        raise bad("out", str(out), "a file in an existing, writable directory")
    return out


def sweep(preset: str = "uniform", policies_: str | list = "all", workloads: int = 1000, events: int = 200,
          seed: int = 0, out="sweep.parquet", chunk: int = 250, executor: Executor | None = None,
          kernel: str | None = None, progress: bool = True, **overrides) -> pd.DataFrame:
    """Run (or resume) a sweep and write OUT; returns its table (``Outcomes.df_workloads`` columns)."""
    workload.resolve(preset, **overrides)                       # all bad input before any work
    names = list(policies.NAMES) if policies_ == "all" else (
        [policies_] if isinstance(policies_, str) else list(policies_))
    for x in names:
        if x not in policies.NAMES:
            raise bad("policies", x, ("all",) + policies.NAMES)
    if kernel is not None:
        policies.get("merged", kernel=kernel)
    workload._sizes(events, workloads)
    workload._number("chunk", chunk, 1, 10**7, integer=True)
    workload._number("seed", seed, 0, 2**63 - 1, integer=True)
    out = _check_out(out)
    parts = out.with_name(out.name + ".parts")
    manifest = dict(preset=preset, policies=names, workloads=workloads, events=events, seed=seed,
                    chunk=chunk, kernel=kernel, overrides=overrides)
    parts.mkdir(exist_ok=True)
    mpath = parts / "manifest.json"
    if mpath.exists() and json.loads(mpath.read_text()) != json.loads(json.dumps(manifest)):
        raise FtsimError(f"out: {str(parts)!r} holds chunks of another sweep; remove it or choose another --out")
    mpath.write_text(json.dumps(manifest, indent=1))
    starts = list(range(0, workloads, chunk))
    todo = [s for s in starts if not (parts / f"chunk-{s:010d}.parquet").exists()]
    ex = executor or _Inline()
    bar = _bar(len(starts), len(starts) - len(todo), progress)
    futs = {ex.submit(run_chunk, preset, names, kernel, s, min(chunk, workloads - s), events, seed, overrides): s
            for s in todo}
    written, errors = set(), []

    def save(f):
        s = futs[f]
        tmp = parts / f".chunk-{s:010d}.tmp"
        f.result().to_parquet(tmp, index=False)
        tmp.rename(parts / f"chunk-{s:010d}.parquet")
        written.add(f)
        bar.update(1)
    try:
        for f in as_completed(futs):
            try:
                save(f)
            except BaseException as e:         # noqa: BLE001 - keep saving the other chunks first
                errors.append(e)
    except BaseException:                      # interrupted here: keep whatever has finished
        for f in futs:
            if f.done() and f not in written and not f.cancelled() and f.exception() is None:
                save(f)
            f.cancel()
        raise
    finally:
        bar.close()
    if errors:
        raise errors[0]
    df = pd.concat([pd.read_parquet(parts / f"chunk-{s:010d}.parquet") for s in starts], ignore_index=True)
    df = df.sort_values(["policy", "workload"], key=lambda c: c.map(names.index) if c.name == "policy" else c,
                        kind="stable").reset_index(drop=True)
    df.attrs.update({k: str(v) for k, v in manifest.items()})
    df.to_parquet(out, index=False)
    shutil.rmtree(parts)
    return df


def _bar(total, done, progress):
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=done, desc="sweep chunks", unit="chunk", disable=not progress)


def report(path, out_dir) -> pd.DataFrame:
    """Summary CSV (``summary.csv``: one row per policy x metric with mean, ci_low, ci_high) and PNG plots (one comparison per metric, cost versus safety)."""
    from . import plots
    path = Path(path)
    if not path.is_file():
        raise bad("file", str(path), "an existing Parquet file written by ftsim sweep")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise bad("out", str(out_dir), f"a directory that can be created ({e.strerror})") from None
    if not os.access(out_dir, os.W_OK):
        raise bad("out", str(out_dir), "a writable directory")
    try:
        df = pd.read_parquet(path)
    except Exception as e:   # noqa: BLE001 - any reader error is bad input here
        raise FtsimError(f"file: {str(path)!r} is not a readable Parquet file ({type(e).__name__})") from None
    if "policy" not in df.columns:
        raise bad("file", str(path), "a table with a policy column (from ftsim sweep)")
    summary = metrics.summarize(df)
    long = summary.stack(level=0, future_stack=True).rename_axis(["policy", "metric"]).reset_index()
    long[["policy", "metric", "mean", "ci_low", "ci_high"]].to_csv(out_dir / "summary.csv", index=False)
    what = f"{path.name}: {df['workload'].nunique()} workloads"
    for m in metrics.METRICS:
        if m in summary.columns.get_level_values(0):
            plots._plot_comparison(summary[m], m, what).savefig(out_dir / f"{m}.png", dpi=100)
    plots._plot_cost_safety(summary, what).savefig(out_dir / "cost_safety.png", dpi=100)
    return summary


def add_command(sub):
    p = sub.add_parser("sweep", help="run randomized workloads of a preset under designs, to Parquet")
    p.add_argument("--preset", default="uniform", help=f"one of {', '.join(workload.PRESETS)}")
    p.add_argument("--policies", default="all", help="all, or a comma-separated list of designs")
    p.add_argument("--workloads", type=int, default=1000)
    p.add_argument("--events", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=250, help="workloads per chunk (the unit kept on interrupt)")
    p.add_argument("--kernel", help="kernel version for the merged design")
    p.add_argument("--out", required=True, help="output file (.parquet)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_sweep)
    r = sub.add_parser("report", help="summary CSV and PNG plots from a sweep's Parquet file")
    r.add_argument("file")
    r.add_argument("--out", required=True, help="output directory")
    r.set_defaults(func=_cmd_report)


def _cmd_sweep(args) -> int:
    pols = "all" if args.policies == "all" else args.policies.split(",")
    df = sweep(args.preset, pols, args.workloads, args.events, args.seed, args.out, args.chunk,
               kernel=args.kernel, progress=not args.no_progress)
    print(f"wrote {args.out}: {len(df)} rows ({df['workload'].nunique()} workloads x {df['policy'].nunique()} designs)")
    return 0


def _cmd_report(args) -> int:
    summary = report(args.file, args.out)
    print(f"wrote {args.out}/summary.csv and {len(summary.columns.levels[0]) + 1} PNG plots")
    return 0
