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
EXPLORE_LEN = 5                              # the explorer's figure: 3 functions to this length
REPEATS = 3                                  # warm timings: best of three per chunk
#: scenario files timed end to end (``ftsim scenario FILE`` in a subprocess); scaled by WORKLOADS / 10,000
SCENARIO_LINES = (10_000, 100_000)
#: the targets for a 100,000-line scenario (issue 14): CPU seconds and peak resident MB
SCENARIO_TARGET = (10.0, 300.0)


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bare_loop(arrays: dict, tb, init: np.ndarray) -> tuple[float, float]:
    """The practical limit: the engine's own tables walked with no contexts and no registers: per
    event one gather of the function's state, one gather of the transition id (``keymap``), one of the
    next state, one scatter, with the engine's primitives (int32, ``take``/``put``); then the same bulk
    gather of one 16-byte result record per event.  ``init``: each policy's initial state id.  A key
    whose transition depends on a context is read as transition 0 (the loop's result is not used).
    Returns (loop, loop + results) in CPU seconds."""
    code, func = arrays["code"], arrays["func"]
    W, T = code.shape
    Fn = arrays["functions"]
    P = len(init)
    R = P * W
    keymap, nxt, records = tb.keymap, tb.next, tb.rec
    S = np.repeat(init.astype(np.int32), W * Fn)
    idx = np.tile(func.T.astype(np.int32), (1, P)) + np.arange(0, R * Fn, Fn, dtype=np.int32)
    c3 = np.tile(code.T.astype(np.int32), (1, P))
    tids = np.empty((T, R), np.int32)
    key = np.empty(R, np.int32)
    t0 = time.process_time()
    for t in range(T):
        i = idx[t]
        tid = tids[t]
        np.multiply(S.take(i), tb.NCODE, out=key)
        np.add(key, c3[t], out=key)
        np.maximum(keymap.take(key), 0, out=tid)
        S.put(i, nxt.take(tid))
    loop = time.process_time() - t0
    records.take(np.ascontiguousarray(tids.T))
    return loop, time.process_time() - t0


def explore_figure(max_len: int) -> str:
    """The explorer's target (issue 11): three functions, CROSS_CONSUMERS, every design."""
    from . import explore
    t0 = time.process_time()
    rows = []
    for name in policy.NAMES:
        ex = explore.explore(policy.get(name), explore.CROSS_CONSUMERS, functions=3, max_len=max_len)
        rows.append(f"{ex.policy.label} {ex.states} states {ex.seconds:.1f} s")
    return (f"explorer, 3 functions, length {max_len}, {len(explore.CROSS_CONSUMERS)} consumers, every design: "
            f"{time.process_time() - t0:.1f} s CPU ({'; '.join(rows)})")


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
    init = np.array([tb.initial(q) for q in pols])
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
    fb = batch.run(chunks[0], pols)["fallback"]
    print(f"rows the batch engine hands to the reference engine (cross-function effects it does not carry): "
          f"{fb.mean():.2%} of {fb.size} policy-workloads")
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
    print(explore_figure(EXPLORE_LEN))
    tracemalloc.start()
    batch.run(chunks[0], pols)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    per_m = peak / (CHUNK * EVENTS * P / 1e6) / 2**20
    print(f"memory: batch.run peak {peak / 2**20:.0f} MiB for {CHUNK * EVENTS * P / 1e6:.0f} M policy-events "
          f"= {per_m:.1f} MiB per million events (linear in workloads; sweeps bound it by --chunk)")
    scale = WORKLOADS / 10_000                       # a toy bench (tests) times toy scenarios
    scenario_scaling(tuple(max(100, int(n * scale)) for n in SCENARIO_LINES))
    return 0


def scenario_text(lines: int) -> str:
    """A scenario of ``lines`` steps: the shipped scenario files one after another, again and again,
    each copy on functions and handles of its own (``NAME_<copy>``), so that what is live on a function
    stays what one file makes it, however long the scenario (a long real scenario looks like that; one
    that piles thousands of handles on one function measures the model's per-function cost instead)."""
    from .paths import DATA
    # the files written for merged, but pairs-undeclared-ip-writers.fts, whose kprobe aggregate leaves the
    # global kprobe_ipmodify_ops count at -1: later copies would see it (as a real kernel would)
    files = [p for p in sorted((DATA / "scenarios").glob("*.fts"))
             if (not p.name.startswith("thread-") or p.name == "thread-merged.fts")
             and p.name != "pairs-undeclared-ip-writers.fts"]
    bodies = [[l.split("#", 1)[0].strip() for l in p.read_text().splitlines() if l.split("#", 1)[0].strip()]
              for p in files]
    from .functions import is_injectable
    out, copy, head = [], 0, {}
    while len(out) < lines:
        for body in bodies:
            taken, ren = set(), {}
            for line in body:
                step, arrow, exp = line.partition("=>")
                w = step.split()
                if w[0] in ("kernel", "set", "function"):   # header directives: the copies run as merged
                    continue
                f = w[2] if w[0] == "attach" else (w[1] if w[0] == "call" else None)
                if f is not None:                   # a renamed function keeps its error-injection entry
                    head.setdefault(f"{f}_{copy}", f"function {f}_{copy} error_injection="
                                                   f"{'yes' if is_injectable(f) else 'no'}")
                if w[0] == "attach":
                    h = w[4] if len(w) == 5 else None
                    if h is None:
                        h, n = w[1], 2
                        while h in taken:
                            h, n = f"{w[1]}-{n}", n + 1
                    taken.add(h)
                    ren[h] = f"{h}_{copy}"
                    w = ["attach", w[1], f"{w[2]}_{copy}", "as", ren[h]]
                elif w[0] == "detach":
                    w = ["detach", ren.get(w[1], w[1])]
                else:
                    w = ["call", f"{w[1]}_{copy}"]
                if arrow:                            # handles named in result= / fired= follow the copy
                    toks = []
                    for t in exp.split():
                        k, eq, v = t.partition("=")
                        if eq and k in ("result", "fired"):
                            v = ",".join(ren.get(x, x) for x in v.split(","))
                            t = f"{k}={v}"
                        toks.append(t)
                    exp = " ".join(toks)
                sep = "" if exp.startswith("[") or not exp else " "     # =>[SEL] stays one token
                out.append(" ".join(w) + (f"  {arrow}{sep}{exp}" if arrow else ""))
            copy += 1
    out = out[:lines]
    used = {w.split()[2] if w.startswith("attach") else w.split()[1] for w in out if not w.startswith("detach")}
    return "\n".join([h for f, h in head.items() if f in used] + out) + "\n"


#: run in the child: the Python code ``argv[1]`` is, then the child's own peak RSS (VmHWM, kB) on the fd
#: named by ``$FTSIM_BENCH_FD``.
#: (``ru_maxrss`` of wait4 is no good here: on Linux it keeps the pages of the forked copy of this
#: process from before the exec, so every child looked as big as the benchmark.)
_HWM = ("import atexit, os, runpy, sys\n"
        "def _hwm():\n"
        "    kb = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
        "    os.write(int(os.environ['FTSIM_BENCH_FD']), (kb[0] if kb else '0').encode())\n"
        "atexit.register(_hwm)\n"
        "code = sys.argv.pop(1)\n"
        "sys.argv[0] = 'ftsim'\n"
        "exec(compile(code, '<bench>', 'exec'), {'__name__': '__main__'})\n")


def _child(argv) -> tuple[float, float, int]:
    """Run the Python code ``argv[1:]`` (``[code, args...]``) in a child; (CPU seconds, peak resident MB,
    exit status) of that child alone."""
    import subprocess
    import sys
    r, w = os.pipe()
    p = subprocess.Popen([sys.executable, "-c", _HWM, *argv[1:]], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, pass_fds=(w,), env={**os.environ, "FTSIM_BENCH_FD": str(w)})
    os.close(w)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    with os.fdopen(r) as f:
        kb = f.read().strip() or "0"
    return ru.ru_utime + ru.ru_stime, int(kb) / 1024, p.returncode


def scenario_scaling(lines=SCENARIO_LINES) -> list[tuple]:
    """``ftsim scenario FILE --policy merged`` on scenarios of each length, in a subprocess (one
    core): CPU seconds and peak RSS; then where the time goes, in this process: parsing, the model's
    steps (Model.attach/detach/call, invariants.check included) and Step.as_json."""
    import sys
    import tempfile

    from . import scenario
    from .model import Model
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for n in lines:
            path = os.path.join(d, f"s{n}.fts")
            with open(path, "w") as f:
                f.write(scenario_text(n))
            cpu, rss, rc = _child([None, "import sys; from ftsim.cli import main; sys.exit(main())",
                                   "scenario", path, "--policy", "merged"])
            _, base, _ = _child([None, "import ftsim.cli, ftsim.scenario, pandas"])
            t0 = time.process_time()
            sc = scenario.parse_file(path)
            t_parse = time.process_time() - t0
            m, steps = Model(policy.get("merged")), []
            t0 = time.process_time()
            for st in sc.steps:
                steps.append(m.attach(st.consumer, st.function, st.handle) if st.op == "attach" else
                             m.detach(st.handle) if st.op == "detach" else m.call(st.function))
            t_model = time.process_time() - t0
            t0 = time.process_time()
            for x in steps:
                x.as_json()
            t_json = time.process_time() - t0
            del steps, m
            rows.append((n, cpu, rss, base, rc, t_parse, t_model, t_json))
            print(f"scenario of {n:,} lines (`ftsim scenario FILE --policy merged`, one process): {cpu:.2f} s CPU, "
                  f"peak RSS {rss:.0f} MB ({base:.0f} MB of it the interpreter and imports); exit {rc}")
            print(f"  where the time goes: parse {t_parse:.2f} s, model steps (attach/detach/call with "
                  f"invariants.check) {t_model:.2f} s, Step.as_json {t_json:.2f} s")
    if len(rows) > 1:
        (n0, c0, *_), (n1, c1, r1, *_) = rows[0], rows[-1]
        print(f"scenario scaling: {n1 / n0:.0f}x the lines -> {c1 / c0:.1f}x the CPU time; "
              f"{n1:,} lines: {c1:.1f} s (target <= {SCENARIO_TARGET[0]:.0f} s), {r1:.0f} MB "
              f"(target <= {SCENARIO_TARGET[1]:.0f} MB)")
    return rows


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["scenarios"]:
        scenario_scaling()
        raise SystemExit(0)
    raise SystemExit(main())
