"""Sweeps: Parquet output, resume after an interruption, any Executor (incl. Dask), the CLI; every
chunk verified, a bad one recomputed, another sweep's refused; one sweep per OUT; bad paths, bad
tables and a full disk as one-line errors before (or without losing) any work."""
import contextlib
import errno
import fcntl
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

import pandas as pd
import pytest

from ftsim import cli, policy, sweep
from ftsim.errors import FtsimError

ARGS = dict(preset="bpf-lsm", policies_=["pre-6.0", "merged"], workloads=30, events=60, seed=1, chunk=10,
            progress=False)


class FailsOnce(ThreadPoolExecutor):
    """Runs chunks, but the chunk starting at `bad` raises (an interruption)."""

    def __init__(self, bad):
        super().__init__(max_workers=1)
        self.bad = bad

    def submit(self, fn, *args, **kwargs):
        if args[3] == self.bad:
            f = Future()
            f.set_exception(KeyboardInterrupt())
            return f
        return super().submit(fn, *args, **kwargs)


def test_sweep_writes_parquet_and_is_independent_of_chunking(tmp_path):
    a = sweep.sweep(out=tmp_path / "a.parquet", **ARGS)
    b = sweep.sweep(out=tmp_path / "b.parquet", **{**ARGS, "chunk": 7})
    assert len(a) == 60 and list(a["policy"].unique()) == ["pre-6.0", policy.get("merged").label]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet"))
    assert not (tmp_path / "a.parquet.parts").exists()


def test_interrupted_sweep_keeps_finished_chunks_and_resumes(tmp_path):
    out = tmp_path / "s.parquet"
    with pytest.raises(KeyboardInterrupt):
        sweep.sweep(out=out, executor=FailsOnce(bad=20), **ARGS)
    kept = sorted(p.name for p in (tmp_path / "s.parquet.parts").glob("chunk-*.parquet"))
    assert kept == ["chunk-0000000000.parquet", "chunk-0000000010.parquet"] and not out.exists()
    done = sweep.sweep(out=out, **ARGS)
    pd.testing.assert_frame_equal(done, sweep.sweep(out=tmp_path / "fresh.parquet", **ARGS))
    with pytest.raises(KeyboardInterrupt):
        sweep.sweep(out=out, executor=FailsOnce(bad=0), **ARGS)
    with pytest.raises(FtsimError, match="another sweep"):
        sweep.sweep(out=out, **{**ARGS, "seed": 2})


def test_dask_local_cluster_runs_the_sweep(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        got = sweep.sweep(out=tmp_path / "d.parquet", executor=client.get_executor(), **ARGS)
    pd.testing.assert_frame_equal(got, sweep.sweep(out=tmp_path / "i.parquet", **ARGS))


def test_cli_sweep_and_report(tmp_path, capsys):
    out = tmp_path / "c.parquet"
    assert cli.main(["sweep", "--preset", "uniform", "--policies", "merged,naive", "--workloads", "12",
                     "--events", "40", "--chunk", "5", "--out", str(out), "--no-progress"]) == 0
    assert cli.main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    files = {p.name for p in (tmp_path / "rep").iterdir()}
    assert {"summary.csv", "livepatch_refused.png", "cost_safety.png"} <= files
    assert (tmp_path / "rep" / "cost_safety.png").read_bytes()[:4] == b"\x89PNG"
    csv = pd.read_csv(tmp_path / "rep" / "summary.csv")
    assert list(csv.columns) == ["policy", "metric", "mean", "ci_low", "ci_high"]
    assert len(csv) == 2 * len(set(csv["metric"])) and set(csv["policy"]) == {policy.get("merged").label, "naive"}


@pytest.mark.parametrize("argv, field", [
    (["sweep", "--workloads", "0", "--out", "{tmp}/x.parquet"], "workloads"),
    (["sweep", "--preset", "nope", "--out", "{tmp}/x.parquet"], "preset"),
    (["sweep", "--policies", "merged,nope", "--out", "{tmp}/x.parquet"], "policies"),
    (["sweep", "--out", "{tmp}/missing/x.parquet"], "out"),
    (["sweep", "--out", "{tmp}/x.csv"], "out"),
    (["report", "{tmp}/none.parquet", "--out", "{tmp}/r"], "file"),
])
def test_cli_bad_input_exits_2_before_work(tmp_path, capsys, argv, field):
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ftsim: error: {field}") and "\n" not in err
    assert not list(tmp_path.glob("*.parts"))


# -- resumable, verified, locked --------------------------------------------------------------------------

_FRESH = {}


def fresh(tmp_path=None, **kw):
    """The uninterrupted sweep of ARGS (with ``kw``), computed once per session."""
    key = repr(sorted(kw.items()))
    if key not in _FRESH:
        with tempfile.TemporaryDirectory() as d:
            _FRESH[key] = sweep.sweep(out=Path(d) / "f.parquet", **{**ARGS, **kw})
    return _FRESH[key].copy()


class StopAfter:
    """run_chunk that raises KeyboardInterrupt (Ctrl-C) when the k-th chunk starts."""

    def __init__(self, k):
        self.k, self.calls, self.real = k, 0, sweep.run_chunk

    def __call__(self, *a):
        self.calls += 1
        if self.calls == self.k:
            raise KeyboardInterrupt
        return self.real(*a)


def test_in_process_sweep_saves_each_chunk_at_once_and_ctrl_c_keeps_them(tmp_path, monkeypatch):
    out = tmp_path / "s.parquet"
    monkeypatch.setattr(sweep, "run_chunk", StopAfter(3))
    with pytest.raises(sweep.Interrupted) as e:
        sweep.sweep(out=out, **ARGS)
    assert (e.value.done, e.value.total) == (2, 3) and isinstance(e.value, KeyboardInterrupt)
    assert sorted(p.name for p in (tmp_path / "s.parquet.parts").glob("chunk-*")) == \
        ["chunk-0000000000.parquet", "chunk-0000000010.parquet"]
    assert not list((tmp_path / "s.parquet.parts").glob(".*.tmp"))
    monkeypatch.undo()
    pd.testing.assert_frame_equal(sweep.sweep(out=out, **ARGS), fresh(tmp_path))


@pytest.mark.parametrize("kernel", ["6.1", "6.6.10", "6.14", "6.18", None])
def test_kernel_sweeps_finish_and_resume(tmp_path, monkeypatch, kernel):
    args = {**ARGS, "policies_": ["naive", "merged", "pre-6.0"], "kernel": kernel}
    out = tmp_path / "k.parquet"
    monkeypatch.setattr(sweep, "run_chunk", StopAfter(2))
    with pytest.raises(KeyboardInterrupt):
        sweep.sweep(out=out, **args)
    monkeypatch.undo()
    df = sweep.sweep(out=out, **args)
    label = policy.get("merged", kernel=kernel).label                  # "merged 6.1", "merged 7.3"
    assert list(df["policy"].unique()) == ["naive", label, "pre-6.0"]
    assert (df.groupby("policy", sort=False)["workload"].apply(list) == [list(range(30))] * 3).all()
    pd.testing.assert_frame_equal(df, fresh(tmp_path, **{k: v for k, v in args.items() if k in ("policies_", "kernel")}))


def _damage(path: Path, how: str):
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(os.urandom(3000))
    elif how in ("short", "missing column", "changed value", "foreign"):
        df = pd.read_parquet(path)
        attrs = dict(df.attrs)
        if how == "short":
            df = df.iloc[:-3]
        elif how == "missing column":
            df = df.drop(columns=["bypass_time_share"])
        elif how == "changed value":
            df.loc[0, "livepatch_refused"] = 0.123
        df.attrs = attrs if how != "foreign" else {}
        df.to_parquet(path, index=False)
    elif how == "directory":
        path.unlink()
        path.mkdir()
    elif how == "symlink":
        path.unlink()
        path.symlink_to("/dev/zero")


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage", "short", "missing column", "changed value",
                                 "foreign", "directory", "symlink"])
def test_a_bad_chunk_is_recomputed_with_a_notice(tmp_path, monkeypatch, capsys, how):
    out = tmp_path / "s.parquet"
    monkeypatch.setattr(sweep, "run_chunk", StopAfter(3))
    with pytest.raises(KeyboardInterrupt):
        sweep.sweep(out=out, **ARGS)
    monkeypatch.undo()
    _damage(tmp_path / "s.parquet.parts" / "chunk-0000000010.parquet", how)
    capsys.readouterr()
    if how == "directory":                          # not ours to delete: refused, named
        with pytest.raises(FtsimError, match=r"chunk-0000000010.parquet' does not verify \(a directory\) and "
                                             "cannot be removed"):
            sweep.sweep(out=out, **ARGS)
        (tmp_path / "s.parquet.parts" / "chunk-0000000010.parquet").rmdir()
        _damage(tmp_path / "s.parquet.parts" / "chunk-0000000000.parquet", "empty")
        capsys.readouterr()
    df = sweep.sweep(out=out, **ARGS)
    err = capsys.readouterr().err.strip().splitlines()
    which = "0000000000" if how == "directory" else "0000000010"
    assert len(err) == 1 and err[0].startswith(f"ftsim: sweep: chunk chunk-{which}.parquet does not verify"), err
    pd.testing.assert_frame_equal(df, fresh(tmp_path))
    pd.testing.assert_frame_equal(pd.read_parquet(out), fresh(tmp_path))


def test_chunks_of_another_sweep_are_refused_even_without_the_manifest(tmp_path, monkeypatch):
    out = tmp_path / "s.parquet"
    monkeypatch.setattr(sweep, "run_chunk", StopAfter(3))
    with pytest.raises(KeyboardInterrupt):
        sweep.sweep(out=out, **ARGS)
    monkeypatch.undo()
    (tmp_path / "s.parquet.parts" / "manifest.json").unlink()
    with pytest.raises(FtsimError, match=r"chunk .*chunk-0000000000.parquet' is of another sweep \(seed 1, this sweep: 2\)"):
        sweep.sweep(out=out, **{**ARGS, "seed": 2})
    with pytest.raises(FtsimError, match="another sweep"):
        sweep.sweep(out=out, **{**ARGS, "chunk": 15})           # the manifest of seed 2 is now there
    import shutil
    shutil.rmtree(tmp_path / "s.parquet.parts")
    pd.testing.assert_frame_equal(sweep.sweep(out=out, **ARGS), fresh(tmp_path))


@pytest.mark.parametrize("text", ["{", "", "[1, 2]", "\xff\xfe", "null"])
def test_a_corrupt_manifest_is_one_line(tmp_path, text):
    parts = tmp_path / "s.parquet.parts"
    parts.mkdir()
    (parts / "manifest.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(FtsimError) as e:
        sweep.sweep(out=tmp_path / "s.parquet", **ARGS)
    assert "is not a sweep manifest" in str(e.value) and "\n" not in str(e.value)


def test_a_second_sweep_into_the_same_out_is_refused(tmp_path):
    parts = tmp_path / "s.parquet.parts"
    parts.mkdir()
    fd = os.open(parts / "lock", os.O_RDWR | os.O_CREAT)
    os.write(fd, b"4242\n")
    fcntl.flock(fd, fcntl.LOCK_EX)                  # another sweep holds it
    try:
        with pytest.raises(FtsimError, match=r"is being written by another sweep \(pid 4242\)"):
            sweep.sweep(out=tmp_path / "s.parquet", **ARGS)
    finally:
        os.close(fd)
    assert not list(parts.glob("chunk-*"))
    sweep.sweep(out=tmp_path / "s.parquet", **ARGS)


def test_numpy_integers_are_accepted_and_bools_refused(tmp_path):
    a = sweep.sweep(out=tmp_path / "a.parquet", **{**ARGS, "workloads": np.int64(30), "events": np.int32(60),
                                                   "seed": np.uint16(1), "chunk": np.int8(10)})
    pd.testing.assert_frame_equal(a, fresh(tmp_path))
    for k in ("workloads", "seed", "chunk", "events"):
        with pytest.raises(FtsimError, match=k.replace("events", "n_events")):
            sweep.sweep(out=tmp_path / "b.parquet", **{**ARGS, k: True})


def test_a_full_disk_is_one_line_and_resumable(tmp_path, monkeypatch):
    out = tmp_path / "s.parquet"
    real, calls = pd.DataFrame.to_parquet, []

    def full(self, path, *a, **k):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, path, *a, **k)
    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    with pytest.raises(FtsimError) as e:
        sweep.sweep(out=out, **ARGS)
    assert "No space left on device" in str(e.value) and "\n" not in str(e.value)
    assert not [p for p in (tmp_path / "s.parquet.parts").iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    pd.testing.assert_frame_equal(sweep.sweep(out=out, **ARGS), fresh(tmp_path))


@pytest.mark.skipif(os.system("command -v mount >/dev/null 2>&1") != 0 or os.geteuid() != 0,
                    reason="needs root to mount a small tmpfs")
def test_a_really_full_tmpfs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.system(f"mount -t tmpfs -o size=64k tmpfs {mnt} 2>/dev/null") != 0:
        pytest.skip("cannot mount tmpfs here")
    try:
        rc, err = _cli(["sweep", "--preset", "bpf-lsm", "--workloads", "200", "--events", "40", "--chunk", "50",
                        "--out", str(mnt / "s.parquet"), "--no-progress"])
        assert rc == 2 and err.startswith("ftsim: error: out: ") and "No space left on device" in err, err
        assert not [p for p in (mnt / "s.parquet.parts").iterdir() if p.name.endswith(".tmp")]
    finally:
        os.system(f"umount {mnt}")


def _cli(argv):
    from test_fuzz_support import run_cli
    rc, _, err = run_cli(argv)
    return rc, err


def _paths(tmp_path, kind):
    """An --out (or report FILE) of the given kind."""
    if kind == "parts is a file":
        (tmp_path / "x.parquet.parts").write_text("x")
        return tmp_path / "x.parquet"
    if kind == "out is a directory":
        (tmp_path / "x.parquet").mkdir()
        return tmp_path / "x.parquet"
    if kind == "dangling symlink":
        (tmp_path / "x.parquet").symlink_to(tmp_path / "nowhere.parquet")
        return tmp_path / "x.parquet"
    if kind == "fifo":
        os.mkfifo(tmp_path / "x.parquet")
        return tmp_path / "x.parquet"
    if kind == "too long":
        return tmp_path / ("x" * 250 + ".parquet")
    if kind == "parent is a file":
        (tmp_path / "f").write_text("x")
        return tmp_path / "f" / "x.parquet"
    if kind == "nul":
        return str(tmp_path / "x\0.parquet")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["parts is a file", "out is a directory", "dangling symlink", "fifo", "too long",
                                  "parent is a file", "nul"])
def test_bad_outputs_are_refused_before_any_work(tmp_path, monkeypatch, kind):
    out = _paths(tmp_path, kind)
    monkeypatch.setattr(sweep, "run_chunk", lambda *a: pytest.fail("work started"))
    with pytest.raises(FtsimError) as e:
        sweep.sweep(out=out, **ARGS)
    assert str(e.value).startswith("out: ") and "\n" not in str(e.value), e.value
    if kind != "nul":
        rc, err = _cli(["sweep", "--out", str(out), "--workloads", "3", "--no-progress"])
        assert rc == 2 and err.startswith("ftsim: error: out: ") and err.count("\n") == 1, err


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    sweep.sweep(out=d / "g.parquet", **ARGS)
    return d / "g.parquet"


@pytest.mark.parametrize("change, needle", [
    ("drop policy", "file g2.parquet columns"), ("drop workload", "file g2.parquet columns"),
    ("drop metrics", "at least one metric"), ("policy as int", "column 'policy'"),
    ("workload as str", "column 'workload'"), ("metric as str", "column 'livepatch_refused'"),
    ("metric as bool", "column 'livepatch_refused'"), ("no rows", "rows"),
])
def test_report_refuses_tables_with_missing_or_mistyped_columns(tmp_path, good, change, needle):
    df = pd.read_parquet(good)
    if change == "drop policy":
        df = df.drop(columns="policy")
    elif change == "drop workload":
        df = df.drop(columns="workload")
    elif change == "drop metrics":
        df = df[["policy", "workload"]]
    elif change == "policy as int":
        df["policy"] = np.arange(len(df))
    elif change == "workload as str":
        df["workload"] = df["workload"].astype(str)
    elif change == "metric as str":
        df["livepatch_refused"] = "x"
    elif change == "metric as bool":
        df["livepatch_refused"] = True
    else:
        df = df.iloc[:0]
    path = tmp_path / "g2.parquet"
    df.to_parquet(path)
    rc, err = _cli(["report", str(path), "--out", str(tmp_path / "rep")])
    assert rc == 2 and err.startswith("ftsim: error: ") and err.count("\n") == 1 and needle in err, err


@pytest.mark.parametrize("kind, needle", [
    ("dangling symlink", "a dangling symlink"), ("fifo", "is a FIFO"), ("dir", "is a directory"),
    ("corrupt", "not a readable Parquet file"), ("empty", "not a readable Parquet file"), ("missing", "cannot be read"),
])
def test_report_refuses_bad_input_files(tmp_path, kind, needle):
    path = tmp_path / "in.parquet"
    if kind == "dangling symlink":
        path.symlink_to(tmp_path / "nowhere")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "corrupt":
        path.write_bytes(b"PAR1" + os.urandom(500) + b"PAR1")
    elif kind == "empty":
        path.write_bytes(b"")
    rc, err = _cli(["report", str(path), "--out", str(tmp_path / "rep")])
    assert rc == 2 and err.startswith("ftsim: error: file: ") and err.count("\n") == 1 and needle in err, err


@pytest.mark.parametrize("kind", ["a file", "too long", "parent is a file"])
def test_report_refuses_bad_output_directories(tmp_path, good, kind):
    out = {"a file": tmp_path / "f", "too long": tmp_path / ("d" * 300), "parent is a file": tmp_path / "f" / "d"}[kind]
    (tmp_path / "f").write_text("x")
    rc, err = _cli(["report", str(good), "--out", str(out)])
    assert rc == 2 and err.startswith("ftsim: error: out: ") and err.count("\n") == 1, err


def test_report_on_a_full_disk_is_one_line(tmp_path, good, monkeypatch):
    from matplotlib.figure import Figure

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Figure, "savefig", full)
    rc, err = _cli(["report", str(good), "--out", str(tmp_path / "rep")])
    assert rc == 2 and "No space left on device" in err and err.count("\n") == 1, err


def test_cli_ctrl_c_is_one_line_and_exit_130(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "run_chunk", StopAfter(2))
    rc, err = _cli(["sweep", "--preset", "bpf-lsm", "--workloads", "30", "--events", "60", "--seed", "1",
                    "--chunk", "10", "--policies", "pre-6.0,merged", "--out", str(tmp_path / "s.parquet"),
                    "--no-progress"])
    assert rc == 130 and err == f"ftsim: sweep interrupted: 1 of 3 chunks kept in {tmp_path / 's.parquet.parts'}; " \
                                "the same command resumes it\n"


@pytest.mark.parametrize("argv, field", [
    (["--workloads", "٣"], "argument --workloads"), (["--seed", "1_000"], "argument --seed"),
    (["--chunk", " "], "argument --chunk"), (["--policies", "merged,merged"], "policies"),
    (["--policies", ""], "policies"), (["--kernel", "x"], "kernel"), (["--events", "99999999"], "n_events"),
])
def test_cli_sweep_bad_numbers_and_lists(tmp_path, argv, field):
    rc, err = _cli(["sweep", "--out", str(tmp_path / "x.parquet"), "--no-progress", *argv])
    assert rc == 2 and err.count("\n") == 1 and err.startswith("ftsim: error: ") and field in err, err
    assert not list(tmp_path.iterdir())


def test_a_patched_kernel_sweeps_under_its_own_label(tmp_path):
    """--set applies to every design; the rows carry the override in their label.  6.12.61 has
    56b3c85e153b but not yet 3e9a18e1c3e9: with the latter applied by hand no livepatch is bypassed."""
    args = {**ARGS, "policies_": ["merged"], "kernel": "6.12.61", "preset": "security-response", "events": 300}
    plain = sweep.sweep(out=tmp_path / "a.parquet", **args)
    patched = sweep.sweep(out=tmp_path / "b.parquet", sets={"modify_path_checked": True}, **args)
    assert list(patched["policy"].unique()) == ["merged 6.12.61 [modify_path_checked=true]"]
    assert plain["bypass_time_share"].mean() > 0 and patched["bypass_time_share"].max() == 0
    assert cli.main(["sweep", "--policies", "merged", "--set", "modify_path_checked=maybe", "--out",
                     str(tmp_path / "c.parquet")]) == 2
