"""`make bench`: events per second of the reference and batch engines on a fixed workload, the batch
engine against a bare numpy gather/scatter loop doing the same table look-ups, a widget-sized run end
to end, and memory per million events.  One process, one core (numpy's element-wise loops are
single-threaded).  Times are CPU seconds of this process (time.process_time), so a busy shared
machine does not inflate them."""
from __future__ import annotations

import io
import os
import platform
import time
import tracemalloc

import numpy as np

from . import batch, engine, metrics, policy, workload

PRESET, SEED, EVENTS, WORKLOADS, CHUNK = "uniform", 0, 1000, 10_000, 2_000


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bare_loop(arrays: dict, P: int, K: int, nstates: int) -> tuple[float, float]:
    """The practical limit: per event one gather of the state, one table gather, one scatter; then
    the same bulk gather of one 16-byte result record per event the engine does.  (loop, loop + results)."""
    code, func = arrays["code"], arrays["func"]
    W, T = code.shape
    Fn = arrays["functions"]
    R = P * W
    table = np.random.default_rng(0).integers(0, nstates, nstates * K).astype(np.int32)
    S = np.zeros(R * Fn, np.int64)
    idx = np.tile(func.T.astype(np.int64), (1, P)) + np.arange(R, dtype=np.int64) * Fn
    c3 = np.tile(code.T.astype(np.int64) * 3, (1, P))
    keys = np.empty((T, R), np.int32)
    t0 = time.process_time()
    for t in range(T):
        i = idx[t]
        k = S[i] * K + c3[t]
        S[i] = table[k]
        keys[t] = k
    loop = time.process_time() - t0
    records = np.zeros(table.size, batch.REC)
    records[np.ascontiguousarray(keys.T)]
    return loop, time.process_time() - t0


def main() -> int:
    os.environ["FTSIM_CACHE"] = "off"      # measure the discovery too, whatever ~/.cache/ftsim holds
    pols = policy.all_policies()
    P = len(pols)
    p = workload.resolve(PRESET)
    print(f"machine: {_cpu()}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}")
    print(f"workload: preset {PRESET!r}, {WORKLOADS} workloads x {EVENTS} events x {P} designs, seed {SEED}, "
          f"chunks of {CHUNK} workloads")
    gen = cold = warm = bare = bare_dec = 0.0
    chunks = []
    for start in range(0, WORKLOADS, CHUNK):
        t0 = time.process_time()
        chunks.append(workload.generate_arrays(p, SEED, EVENTS, CHUNK, start))
        gen += time.process_time() - t0
    for a in chunks:                                     # first pass: discovers the transitions
        t0 = time.process_time()
        batch.run(a, pols)
        cold += time.process_time() - t0
    tb = batch.tables(p.instances)
    for a in chunks:                                     # second pass: tables complete
        t0 = time.process_time()
        batch.run(a, pols)
        warm += time.process_time() - t0
        b1, b2 = bare_loop(a, P, tb.K, len(tb.snap))
        bare, bare_dec = bare + b1, bare_dec + b2
    n = WORKLOADS * EVENTS * P
    print(f"generator: {gen:.2f} s ({WORKLOADS * EVENTS / gen / 1e6:.2f} M events/s, shared by all designs)")
    print(f"batch engine, first run (discovers {len(tb.snap)} states, {tb.transitions} transitions): {cold:.2f} s")
    print(f"batch engine: {warm:.2f} s for {n / 1e6:.0f} M policy-events = {n / warm / 1e6:.1f} M events/s")
    print(f"bare numpy gather/scatter loop: {bare:.2f} s = {n / bare / 1e6:.1f} M events/s; with the same "
          f"result-record gather as the engine: {bare_dec:.2f} s = {n / bare_dec / 1e6:.1f} M events/s")
    print(f"batch / bare: {warm / bare:.2f}x (loop only), {warm / bare_dec:.2f}x (same number of look-ups)")
    small = workload.generate_arrays(p, SEED, EVENTS, 20)
    t0 = time.process_time()
    for pol in pols:
        engine.run(small, pol)
    ref = time.process_time() - t0
    nref = 20 * EVENTS * P
    t0 = time.process_time()
    for pol in pols:
        engine.run(small, pol, memo_calls=False)
    ref_nomemo = time.process_time() - t0
    print(f"reference engine: {nref / ref:,.0f} events/s ({nref / ref_nomemo:,.0f} without the call memo); "
          f"batch / reference = {(n / warm) / (nref / ref):,.0f}x")
    warm_out = metrics.Outcomes(preset=PRESET, workloads=1000, events=200, seed=1)  # warm the tables
    t0 = time.process_time()
    warm_out.plot_comparison("livepatch_refused").savefig(io.BytesIO(), format="png")
    print(f"first figure of the process (matplotlib loads its fonts): {time.process_time() - t0:.2f} s")
    t0 = time.process_time()
    out = metrics.Outcomes(preset=PRESET, workloads=1000, events=200, seed=1)
    out.plot_comparison("livepatch_refused").savefig(io.BytesIO(), format="png")
    print(f"widget-sized run (1,000 workloads x 200 events x 5 designs, metrics, plot as PNG): "
          f"{time.process_time() - t0:.3f} s")
    tracemalloc.start()
    batch.run(chunks[0], pols)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    per_m = peak / (CHUNK * EVENTS * P / 1e6) / 2**20
    print(f"memory: batch.run peak {peak / 2**20:.0f} MiB for {CHUNK * EVENTS * P / 1e6:.0f} M policy-events "
          f"= {per_m:.1f} MiB per million events (linear in workloads; sweeps bound it by --chunk)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
