"""`make bench`: events per second of the reference and batch engines on a fixed workload, the batch
engine against a bare numpy gather/scatter loop doing the same table look-ups, a widget-sized run end
to end, and memory per million events.  One process, one core (numpy's element-wise loops are
single-threaded).  Times are CPU seconds of this process (time.process_time); a busy machine still
inflates them through shared caches, so warm timings are the best of REPEATS, engine and bare loop
interleaved."""
from __future__ import annotations

import io
import os
import platform
import time
import tracemalloc

import numpy as np

from . import batch, engine, metrics, policy, workload

PRESET, SEED, EVENTS, WORKLOADS, CHUNK = "uniform", 0, 1000, 10_000, 2_000
REPEATS = 3                                  # warm timings: best of three per chunk


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bare_loop(arrays: dict, tb: batch.Tables, init: np.ndarray) -> tuple[float, float]:
    """The practical limit: the engine's own transition table walked with no kprobe context and no
    registers: per event one gather of the state, one table gather, one scatter, with the engine's
    primitives (int32, ``take``/``put``, states kept as their first key); then the same bulk gather of
    one 16-byte result record per event.  ``init``: first key of each policy's initial state.
    Returns (loop, loop + results) in CPU seconds."""
    code, func = arrays["code"], arrays["func"]
    W, T = code.shape
    Fn = arrays["functions"]
    P = len(init)
    R = P * W
    table, records = tb.next, tb.tab
    S = np.repeat(init.astype(np.int32), W * Fn)
    idx = np.tile(func.T.astype(np.int32), (1, P)) + np.arange(0, R * Fn, Fn, dtype=np.int32)
    c3 = np.tile(code.T.astype(np.int32) * batch.NCTX, (1, P))
    keys = np.empty((T, R), np.int32)
    t0 = time.process_time()
    for t in range(T):
        i = idx[t]
        k = keys[t]
        np.add(S.take(i), c3[t], out=k)
        S.put(i, table.take(k))
    loop = time.process_time() - t0
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
    init = np.array([tb.first_key(q) for q in pols])
    for a in chunks:                       # then tables complete: best of REPEATS, engine and bare loop
        w, b1, b2 = [], [], []             # interleaved, so that a busy machine slows both alike
        for _ in range(REPEATS):
            t0 = time.process_time()
            batch.run(a, pols)
            w.append(time.process_time() - t0)
            x, y = bare_loop(a, tb, init)
            b1.append(x)
            b2.append(y)
        warm, bare, bare_dec = warm + min(w), bare + min(b1), bare_dec + min(b2)
    n = WORKLOADS * EVENTS * P
    print(f"generator: {gen:.2f} s ({WORKLOADS * EVENTS / gen / 1e6:.2f} M events/s, shared by all designs)")
    print(f"batch engine, first run (discovers {len(tb.snap)} states, {tb.transitions} transitions): {cold:.2f} s")
    print(f"batch engine (tables complete, best of {REPEATS}): {warm:.2f} s for {n / 1e6:.0f} M policy-events "
          f"= {n / warm / 1e6:.1f} M events/s")
    print(f"bare numpy loop over the engine's table, the same look-ups per event (state, transition, result "
          f"record): {bare_dec:.2f} s = {n / bare_dec / 1e6:.1f} M events/s; batch / bare = {warm / bare_dec:.2f}x")
    print(f"the same loop without the result-record look-up: {bare:.2f} s = {n / bare / 1e6:.1f} M events/s; "
          f"batch / loop = {warm / bare:.2f}x")
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
