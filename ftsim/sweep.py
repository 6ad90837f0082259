"""Sweeps: many workloads of a preset under several designs, in chunks, on any Executor, to Parquet.

    ftsim sweep --preset security-response --policies all --workloads 20000 --seed 0 --out sr.parquet
    ftsim report sr.parquet --out sr-report/

Chunks run in this process one after another (default) or on any ``concurrent.futures.Executor``;
each is written to ``OUT.parts/`` the moment it is computed (a unique temporary name, then a rename),
so an interrupted sweep keeps every finished chunk and the same command resumes it; when all chunks
are in, they are joined into OUT and the parts directory is removed.  Workload ``j`` is the same
whatever the chunking or executor (its random stream is ``SeedSequence([seed, j])``).

What makes a resume safe:
  * ``OUT.parts/manifest.json`` holds the sweep's parameters (with the resolved preset and the model's
    version); a sweep of other parameters refuses the directory;
  * every chunk carries its parameters, its first workload, its row count and a checksum of its
    rows; a chunk that fails to verify (truncated, empty, short, a column missing, not written by a
    sweep) is recomputed with a one-line notice, a chunk of other parameters is refused;
  * an exclusive lock (``OUT.parts/lock``, ``flock``) refuses a second sweep into the same OUT;
  * Ctrl-C stops at once (the running chunk is lost, the finished ones are kept); ``ftsim sweep``
    prints one line and exits 130.

On a Dask cluster (``pip install dask distributed``), hand the client's executor to ``sweep()``:

    from dask.distributed import Client
    client = Client("tcp://scheduler:8786")          # or Client(LocalCluster()) on one machine
    sweep("uniform", workloads=10**6, out="big.parquet", executor=client.get_executor())
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from concurrent.futures import Executor, FIRST_COMPLETED, wait
from pathlib import Path

import pandas as pd

from . import metrics, policy as policies, workload
from .errors import FtsimError
from .report import report  # noqa: F401 (ftsim.sweep.report, as before)
from .sweepfiles import (_BadChunk, _check_out, _chunk_path, _differs, _locked, _manifest, _notice, _parts, _policy,
                         _read_chunk, _read_manifest, _save_chunk, _write_atomic)
from .workload import bad


def run_chunk(preset: str, policy_names: list[str], kernel, start: int, n: int, events: int,
              seed: int, overrides: dict) -> pd.DataFrame:
    """Workloads ``start .. start+n-1``: their ``df_workloads`` rows (picklable, for any executor).
    ``kernel``: the merged design's kernel, or {"kernel": ..., "sets": {FIELD: VALUE}} with overrides."""
    p = workload.resolve(preset, **overrides)
    pols = [_policy(x, kernel) for x in policy_names]
    arrays = workload.generate_arrays(p, seed, events, n, start)
    df, _ = metrics.compute(arrays, pols, persist=True, progress=False)
    df["workload"] += start
    return df


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: ``done`` of ``total`` chunks are kept in ``parts``."""

    def __init__(self, done: int, total: int, parts: Path):
        super().__init__(f"{done} of {total} chunks kept in {parts}")
        self.done, self.total, self.parts = done, total, parts


# -- the sweep -------------------------------------------------------------------------------------------

def _names(policies_) -> list[str]:
    if isinstance(policies_, str):
        names = list(policies.NAMES) if policies_ == "all" else [policies_]
    elif isinstance(policies_, (list, tuple)):
        names = list(policies_)
    else:
        raise bad("policies", policies_, ("all",) + policies.NAMES)
    if not names:
        raise bad("policies", policies_, ("all",) + policies.NAMES)
    for x in names:
        if not isinstance(x, str) or x not in policies.NAMES:
            raise bad("policies", x, ("all",) + policies.NAMES)
        if names.count(x) > 1:
            raise bad("policies", x, "each design once")
    return names


def sweep(preset: str = "uniform", policies_: str | list = "all", workloads: int = 1000, events: int = 200,
          seed: int = 0, out="sweep.parquet", chunk: int = 250, executor: Executor | None = None,
          kernel: str | None = None, progress: bool = True, sets: dict | None = None,
          **overrides) -> pd.DataFrame:
    """Run (or resume) a sweep and write OUT; returns its table (``Outcomes.df_workloads`` columns).
    Raises ``Interrupted`` (a KeyboardInterrupt) on Ctrl-C, after keeping every finished chunk."""
    if not isinstance(preset, str):
        raise bad("preset", preset, sorted(workload.PRESETS))
    workload.resolve(preset, **overrides)                       # all bad input before any work
    names = _names(policies_)
    if kernel is not None:
        if not isinstance(kernel, str):
            raise bad("kernel", kernel, "a version such as 6.1, 6.6.10 or 6.18")
        policies.get("merged", kernel=kernel)
    workloads = workload._number("workloads", workloads, 1, 10**8, integer=True)
    events = workload._number("n_events", events, 1, 10**7, integer=True)
    chunk = workload._number("chunk", chunk, 1, 10**7, integer=True)
    seed = workload._number("seed", seed, 0, 2**63 - 1, integer=True)
    if min(chunk, workloads) * events > workload.MAX_EVENTS:
        raise bad("chunk x events", min(chunk, workloads) * events,
                  f"at most {workload.MAX_EVENTS:,} events per chunk (a smaller --chunk)")
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise bad("executor", type(executor).__name__, "a concurrent.futures.Executor (or None: this process)")
    out = _check_out(out)
    sets = {k: policies.typed(k, v) for k, v in (sets or {}).items()}    # policy fields (--set)
    manifest = _manifest(preset, names, kernel, workloads, events, seed, chunk, overrides, sets)
    parts = _parts(out)
    try:
        parts.mkdir(exist_ok=True)
    except OSError as e:
        raise FtsimError(f"out: {str(parts)!r} cannot be created ({e.strerror}); allowed: a directory "
                         "for this sweep's chunks") from None
    try:
        with _locked(parts):
            return _sweep_locked(out, parts, manifest, executor, progress)
    except Interrupted:
        raise
    except KeyboardInterrupt as e:                      # outside the chunk loop: count what is kept
        W, C = manifest["workloads"], manifest["chunk"]
        kept = sum(_chunk_path(parts, s).exists() for s in range(0, W, C))
        raise Interrupted(kept, len(range(0, W, C)), parts) from e


def _sweep_locked(out: Path, parts: Path, manifest: dict, executor, progress) -> pd.DataFrame:
    for stray in parts.glob(".*.tmp"):                  # left by a killed sweep (we hold the lock)
        with contextlib.suppress(OSError):
            stray.unlink()
    mpath = parts / "manifest.json"
    old = _read_manifest(mpath)
    if old is not None and old != manifest:
        raise FtsimError(f"out: {str(parts)!r} holds chunks of another sweep ({_differs(old, manifest)}); "
                         "remove it or choose another --out")
    if old is None:
        _write_atomic(mpath, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1)), "manifest")
    W, C = manifest["workloads"], manifest["chunk"]
    spans = [(s, min(C, W - s)) for s in range(0, W, C)]
    todo = []
    for s, n in spans:                                  # verify what is there before any work
        path = _chunk_path(parts, s)
        if not os.path.lexists(path):
            todo.append((s, n))
            continue
        try:
            _read_chunk(path, s, n, manifest)
        except _BadChunk as e:
            try:
                path.unlink()
            except OSError as u:
                raise FtsimError(f"out: chunk {str(path)!r} does not verify ({e}) and cannot be removed "
                                 f"({u.strerror}); remove it") from None
            _notice(f"chunk {path.name} does not verify ({e}); it is recomputed")
            todo.append((s, n))
    for path in parts.glob("chunk-*.parquet"):          # chunks of another chunking or beyond the end
        if path.name not in {_chunk_path(parts, s).name for s, _ in spans}:
            raise FtsimError(f"out: chunk {str(path)!r} is not one of this sweep's chunks; remove "
                             f"{str(parts)!r} or choose another --out")
    args = (manifest["preset"], manifest["policies"], manifest["kernel"])
    tail = (manifest["events"], manifest["seed"], manifest["overrides"])
    bar = _bar(len(spans), len(spans) - len(todo), progress)
    done = len(spans) - len(todo)
    try:
        if executor is None:
            for s, n in todo:
                _save_chunk(parts, s, n, run_chunk(*args, s, n, *tail), manifest)
                done += 1
                bar.update(1)
        else:
            done += _run_on(executor, todo, args, tail, parts, manifest, bar)
    except KeyboardInterrupt as e:
        done = len(spans) - sum(not _chunk_path(parts, s).exists() for s, _ in spans)
        raise Interrupted(done, len(spans), parts) from e
    finally:
        bar.close()
    dfs = []
    for s, n in spans:
        try:
            dfs.append(_read_chunk(_chunk_path(parts, s), s, n, manifest))
        except _BadChunk as e:
            raise FtsimError(f"out: chunk {str(_chunk_path(parts, s))!r} changed during the sweep ({e}); "
                             "run the same command again to recompute it") from None
    df = pd.concat(dfs, ignore_index=True)
    order = {label: i for i, label in enumerate(pd.unique(df["policy"]))}   # the labels the rows carry
    df = df.sort_values(["policy", "workload"], key=lambda c: c.map(order) if c.name == "policy" else c,
                        kind="stable").reset_index(drop=True)
    df.attrs.update({k: str(v) for k, v in manifest.items() if k not in ("params", "labels", "format")})
    _write_atomic(out, lambda tmp: df.to_parquet(tmp, index=False), "output")
    shutil.rmtree(parts, ignore_errors=True)
    return df


def _run_on(executor, todo, args, tail, parts, manifest, bar) -> int:
    """Chunks on an executor, each saved as it completes.  A chunk that fails (an error, or an
    interrupt in its worker) does not stop the others: they are saved, then its exception is raised.
    Ctrl-C here cancels what has not started and keeps what has finished."""
    futs = {executor.submit(run_chunk, *args, s, n, *tail): (s, n) for s, n in todo}
    pending, handled, first_error = set(futs), set(), None

    def keep(f):
        handled.add(f)
        s, n = futs[f]
        _save_chunk(parts, s, n, f.result(), manifest)
        bar.update(1)
    try:
        while pending:
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for f in finished:
                exc = f.exception()             # a chunk that failed (or whose worker was interrupted):
                if exc is not None:             # the others are still saved as they finish
                    handled.add(f)
                    first_error = first_error or exc
                    continue
                keep(f)
    except KeyboardInterrupt:
        for f in futs:
            f.cancel()
        for f in futs:                          # whatever finished meanwhile is kept
            if f not in handled and f.done() and not f.cancelled() and f.exception() is None:
                with contextlib.suppress(Exception):
                    keep(f)
        raise
    if first_error is not None:
        raise first_error
    return len(handled)


def _bar(total, done, progress):
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=done, desc="sweep chunks", unit="chunk", disable=not progress)


# -- the command line ------------------------------------------------------------------------------------

def integer(text: str) -> int:
    """An argparse type: ASCII digits only (``int()`` also takes '٣', ' 5 ' and '1_000')."""
    t = text.strip()
    if not (t.isascii() and (t.isdigit() or (t[:1] == "-" and t[1:].isdigit()))) or len(t) > 19:
        raise ValueError(text)
    return int(t)


def add_command(sub):
    p = sub.add_parser("sweep", help="run randomized workloads of a preset under designs, to Parquet")
    p.add_argument("--preset", default="uniform", help=f"one of {', '.join(workload.PRESETS)}")
    p.add_argument("--policies", default="all", help="all, or a comma-separated list of designs")
    p.add_argument("--workloads", type=integer, default=1000)
    p.add_argument("--events", type=integer, default=200)
    p.add_argument("--seed", type=integer, default=0)
    p.add_argument("--chunk", type=integer, default=250, help="workloads per chunk (the unit kept on interrupt)")
    p.add_argument("--kernel", help="kernel for the merged design: 6.1.192, 6.12.117+deb13-amd64, 7.3-rc7, ...")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="sets",
                   help="override a policy field for every design (repeatable), e.g. --set modify_path_checked=true")
    p.add_argument("--out", required=True, help="output file (.parquet)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_sweep)
    r = sub.add_parser("report", help="summary CSV and PNG plots from a sweep's Parquet file")
    r.add_argument("file")
    r.add_argument("--out", required=True, help="output directory")
    r.set_defaults(func=_cmd_report)


def _cmd_sweep(args) -> int:
    pols = "all" if args.policies == "all" else args.policies.split(",")
    try:
        df = sweep(args.preset, pols, args.workloads, args.events, args.seed, args.out, args.chunk,
                   kernel=args.kernel, progress=not args.no_progress,
                   sets=dict(policies.parse_set(x) for x in args.sets))
    except Interrupted as e:
        print(f"ftsim: sweep interrupted: {e.done} of {e.total} chunks kept in {e.parts}; "
              "the same command resumes it", file=sys.stderr)
        return 130
    print(f"wrote {args.out}: {len(df)} rows ({df['workload'].nunique()} workloads x {df['policy'].nunique()} designs)")
    return 0


def _cmd_report(args) -> int:
    summary = report(args.file, args.out)
    print(f"wrote {args.out}/summary.csv and {len(summary.columns.levels[0]) + 1} PNG plots")
    return 0
