"""Fault tests of `ftsim sweep` in a real subprocess: SIGKILL and SIGINT at random points, damaged and
foreign chunks, two sweeps into one OUT, planted cache files.  Each ends by comparing the final Parquet
exactly (pandas.testing.assert_frame_equal) with an uninterrupted run, and measures the work lost.

The signal points are random (seeded): a uniform share of the uninterrupted run's working time
after the sweep has started working (its manifest exists)."""
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from ftsim import batch, cache, sweep

ARGV = ["--preset", "bpf-lsm", "--policies", "pre-6.0,merged,naive", "--workloads", "48", "--events", "60",
        "--seed", "5", "--chunk", "6", "--kernel", "6.1"]
CHUNKS = 8
RNG = random.Random(14)
#: what the fault tests measured (printed at the end of the module: `pytest -s` shows it)
FIGURES = {"sigkill": [], "sigint": []}


def _env(cache_dir):
    env = dict(os.environ)
    env["FTSIM_CACHE"] = str(cache_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start(out, cache_dir, extra=()):
    return subprocess.Popen([sys.executable, "-m", "ftsim.cli", "sweep", *ARGV, "--out", str(out), "--no-progress",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(cache_dir))


def finish(out, cache_dir, timeout=300):
    p = start(out, cache_dir)
    o, e = p.communicate(timeout=timeout)
    return p.returncode, o, e


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (in a subprocess too, with no cache), and how long its work took (from
    the manifest's appearance to the exit: where the random signals fall)."""
    d = tmp_path_factory.mktemp("ref")
    p = start(d / "ref.parquet", "off")
    t_manifest = None
    while p.poll() is None:
        if t_manifest is None and (d / "ref.parquet.parts" / "manifest.json").exists():
            t_manifest = time.time()
        time.sleep(0.005)
    o, e = p.communicate()
    assert p.returncode == 0, e
    WORK[0] = time.time() - (t_manifest or time.time())
    return pd.read_parquet(d / "ref.parquet")


WORK = [1.0]


def chunk_files(parts: Path) -> dict:
    try:
        return {p.name: p.stat().st_mtime for p in parts.glob("chunk-*.parquet")}
    except OSError:
        return {}


def run_and_signal(tmp_path, sig, at):
    """Start a sweep; once it has started working (its manifest exists), wait ``at`` of the reference
    run's working time and send ``sig``; when the sweep finishes first, start over with half the wait.
    Returns what was seen."""
    out, parts = tmp_path / "s.parquet", tmp_path / "s.parquet.parts"
    cache_dir = tmp_path / "cache"
    for attempt in range(5):
        p = start(out, cache_dir)
        while p.poll() is None and not (parts / "manifest.json").exists():
            time.sleep(0.002)
        t_work = time.time()
        time.sleep(at * WORK[0])
        before = chunk_files(parts)
        t_sig = time.time()
        if p.poll() is None:
            p.send_signal(sig)
            try:
                o, e = p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                pytest.fail(f"the sweep did not stop within 30 s of {sig!r}")
            if not (out.exists() and not parts.exists()):
                break                    # interrupted mid-sweep (else it had finished: the signal came too late)
        p.communicate()
        shutil.rmtree(parts, ignore_errors=True)
        out.unlink(missing_ok=True)
        at /= 2
    else:
        pytest.fail("the sweep always finished before the signal")
    t_exit = time.time()
    after = chunk_files(parts)
    saves = sorted([t_work] + list(after.values()))
    last_save = max(t for t in saves if t <= t_sig + 0.001)
    per_chunk = WORK[0] / CHUNKS
    return dict(rc=p.returncode, err=e, before=before, after=after, stop=t_exit - t_sig, at=at,
                lost_s=max(0.0, t_sig - last_save), per_chunk=per_chunk, out=out, parts=parts, cache=cache_dir)


def kill_after_chunks(tmp_path, n):
    """SIGKILL a sweep as soon as ``n`` chunks are on disk (for the tests that then damage them)."""
    out, parts = tmp_path / "s.parquet", tmp_path / "s.parquet.parts"
    p = start(out, tmp_path / "cache")
    while p.poll() is None and len(chunk_files(parts)) < n:
        time.sleep(0.002)
    p.kill()
    p.communicate()
    after = chunk_files(parts)
    assert n <= len(after) < CHUNKS, "the sweep ran past the kill"
    return dict(out=out, parts=parts, cache=tmp_path / "cache", after=after)


def _resume_and_compare(r, reference):
    assert set(r["before"]) <= set(r["after"]), "a chunk finished before the signal is gone"
    assert not [p for p in r["parts"].glob(".*.tmp")] or r["rc"] == -signal.SIGKILL
    rc, o, e = finish(r["out"], r["cache"])
    assert rc == 0, e
    assert not r["parts"].exists()
    pd.testing.assert_frame_equal(pd.read_parquet(r["out"]), reference)
    return CHUNKS - len(r["after"])


@pytest.mark.parametrize("case", range(3))
def test_sigkill_at_a_random_point_loses_at_most_the_running_chunk(tmp_path, reference, case):
    r = run_and_signal(tmp_path, signal.SIGKILL, RNG.uniform(0.0, 0.95))
    assert r["rc"] == -signal.SIGKILL
    redo = _resume_and_compare(r, reference)
    # kept: every chunk that was on disk; lost: the one that was running (less than one chunk's time)
    FIGURES["sigkill"].append(dict(at=round(r["at"], 2), kept=len(r["after"]), recomputed=redo,
                                   lost_s=round(r["lost_s"], 3), chunk_s=round(r["per_chunk"], 3)))


@pytest.mark.parametrize("case", range(3))
def test_sigint_at_a_random_point_stops_within_a_second_and_keeps_finished_chunks(tmp_path, reference, case):
    r = run_and_signal(tmp_path, signal.SIGINT, RNG.uniform(0.0, 0.95))
    lines = r["err"].strip().splitlines()
    assert r["rc"] == 130 and len(lines) == 1, r["err"]
    assert lines[0].startswith("ftsim: sweep interrupted: ") and lines[0].endswith("the same command resumes it")
    assert f"{len(r['after'])} of {CHUNKS} chunks kept" in lines[0]
    assert not list(r["parts"].glob(".*.tmp"))
    redo = _resume_and_compare(r, reference)
    FIGURES["sigint"].append(dict(at=round(r["at"], 2), kept=len(r["after"]), recomputed=redo,
                                  stop_s=round(r["stop"], 3), lost_s=round(r["lost_s"], 3),
                                  chunk_s=round(r["per_chunk"], 3)))
    assert r["stop"] < 1.5, f"stopped {r['stop']:.2f} s after SIGINT"


def test_damaged_short_and_foreign_chunks_after_a_kill(tmp_path, reference):
    r = kill_after_chunks(tmp_path, 4)
    names = sorted(r["after"])
    assert len(names) >= 4
    parts = r["parts"]
    (parts / names[0]).write_bytes((parts / names[0]).read_bytes()[:100])          # truncated
    df = pd.read_parquet(parts / names[1])
    attrs = dict(df.attrs)
    df = df.iloc[:-1]
    df.attrs = attrs
    df.to_parquet(parts / names[1], index=False)                                    # short, meta kept
    pd.DataFrame({"x": [1]}).to_parquet(parts / names[2])                            # foreign
    (parts / names[3]).write_bytes(b"")                                             # empty
    rc, o, e = finish(r["out"], r["cache"])
    assert rc == 0, e
    notices = [l for l in e.splitlines() if l.startswith("ftsim: sweep: chunk ")]
    assert len(notices) == 4 and all("does not verify" in l and "recomputed" in l for l in notices), e
    pd.testing.assert_frame_equal(pd.read_parquet(r["out"]), reference)


def test_a_chunk_of_another_sweep_is_refused_then_resumes(tmp_path, reference):
    r = kill_after_chunks(tmp_path, 2)
    (r["parts"] / "manifest.json").unlink()
    other = tmp_path / "other.parquet"                 # a chunk of seed 6 where seed 5's belongs
    q = start(other, r["cache"], extra=["--seed", "6"])
    deadline = time.time() + 120
    while not chunk_files(tmp_path / "other.parquet.parts") and time.time() < deadline:
        time.sleep(0.02)
    q.kill()
    q.communicate()
    foreign = sorted((tmp_path / "other.parquet.parts").glob("chunk-*.parquet"))[0]
    shutil.copy(foreign, r["parts"] / foreign.name)
    rc, o, e = finish(r["out"], r["cache"])
    assert rc == 2 and e.count("\n") == 1 and "is of another sweep (seed 6, this sweep: 5)" in e, e
    (r["parts"] / foreign.name).unlink()
    rc, o, e = finish(r["out"], r["cache"])
    assert rc == 0, e
    pd.testing.assert_frame_equal(pd.read_parquet(r["out"]), reference)


def test_two_sweeps_into_one_out(tmp_path, reference):
    out = tmp_path / "s.parquet"
    a = start(out, tmp_path / "cache")
    while not (tmp_path / "s.parquet.parts" / "manifest.json").exists() and a.poll() is None:
        time.sleep(0.005)
    a.send_signal(signal.SIGSTOP)                   # A holds the lock and is mid-sweep, whatever the load
    try:
        b = start(out, tmp_path / "cache")
        ob, eb = b.communicate(timeout=300)
    finally:
        a.send_signal(signal.SIGCONT)
    oa, ea = a.communicate(timeout=300)
    assert a.returncode == 0, ea
    assert b.returncode == 2 and eb.count("\n") == 1, eb
    assert f"out: '{out}' is being written by another sweep (pid {a.pid})" in eb
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


class Payload:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_planted_cache_files_never_run_and_never_change_the_result(tmp_path, reference):
    cdir = tmp_path / "cache"
    cdir.mkdir(mode=0o700)
    marker = tmp_path / "payload-ran"
    stem = f"tables-{cache.code_hash()}-i1"
    (cdir / f"{stem}.pickle").write_bytes(pickle.dumps(Payload(marker)))       # the old name
    (cdir / f"{stem}.npz").write_bytes(pickle.dumps(Payload(marker)))          # the new name, a pickle
    out = tmp_path / "s.parquet"
    rc, o, e = finish(out, cdir)
    assert rc == 0, e
    assert not marker.exists()
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference)
    if hasattr(batch.Tables, "to_arrays"):
        # a valid cache from the run above, then tampered (results changed), symlinked, too open
        import numpy as np
        path = cdir / f"{stem}.npz"
        d = dict(np.load(path))
        for name, a in d.items():
            if a.dtype.fields and "ret" in a.dtype.fields:
                a["ret"][:] = 0
        with open(path, "wb") as f:
            np.savez(f, **d)
        for variant in ("tampered", "mode", "symlink"):
            if variant == "mode":
                os.chmod(path, 0o666)
            if variant == "symlink":
                os.chmod(path, 0o600)
                os.replace(path, tmp_path / "elsewhere.npz")
                os.symlink(tmp_path / "elsewhere.npz", path)
            out.unlink()
            rc, o, e = finish(out, cdir)
            assert rc == 0 and "ftsim: cache: ignoring" in e, e
            pd.testing.assert_frame_equal(pd.read_parquet(out), reference)


def test_zz_report_figures():
    """Not a check: prints what the fault tests measured (run with -s)."""
    print("\nfault figures:", json.dumps(FIGURES))
    path = os.environ.get("FTSIM_FAULT_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(FIGURES, f, indent=1)
