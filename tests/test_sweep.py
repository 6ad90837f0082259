"""Sweeps: Parquet output, resume after an interruption, any Executor (incl. Dask), the CLI."""
from concurrent.futures import Future, ThreadPoolExecutor

import pandas as pd
import pytest

from ftsim import cli, sweep
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
    assert len(a) == 60 and list(a["policy"].unique()) == ["pre-6.0", "merged"]
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
    assert len(csv) == 2 * len(set(csv["metric"])) and set(csv["policy"]) == {"merged", "naive"}


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
