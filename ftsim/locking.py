"""Locking model: tr->mutex, direct_mutex and ftrace_lock as threads of steps, every interleaving, and a
timed Monte Carlo of the PEER callback's transient -EAGAIN.

Lock order (kernel/bpf/trampoline.c, comment above bpf_tramp_ftrace_ops_func(), v6.1):
``tr->mutex -> direct_mutex -> ftrace_lock``.  The BPF attach path takes them in that order; the IPMODIFY
registration path (register_ftrace_function() -> prepare_direct_functions_for_ipmodify() -> ops_func
PEER) already holds direct_mutex when BPF's callback needs tr->mutex, so the merged code uses
``mutex_trylock(&tr->mutex)``, sleeps 1 ms and answers -EAGAIN when it cannot get it.

    r = interleavings("merged", ["bpf_link", "klp_register"])
    r.df_outcomes()          # outcome -> number of schedules (0/-EAGAIN, never a deadlock)
    r.deadlock               # None; with design "merged-blocking" the shortest deadlocking schedule

Designs of the PEER side (`DESIGNS`): the merged trylock, a blocking mutex_lock in its place, Rostedt's
first proposal (the callback under ftrace_lock, 2022-07-13), his lock-dropping retry (2022-07-15), and
Song's refusal of an IPMODIFY arriving on a #2 direct ops.  Step names are the kernel's own.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import pandas as pd

from .errors import bad

TR, DIRECT, FTRACE = "tr->mutex", "direct_mutex", "ftrace_lock"
LOCKS = (TR, DIRECT, FTRACE)
LOCK_ORDER = {TR: 0, DIRECT: 1, FTRACE: 2}


@dataclass(frozen=True)
class Ins:
    """One step of a thread: lock / trylock (jumps to `fail` when taken) / unlock / op / ret."""
    kind: str
    arg: str
    where: str
    fail: str | None = None
    label: str | None = None


def L(m, where, label=None):
    return Ins("lock", m, where, label=label)


def T(m, where, fail):
    return Ins("trylock", m, where, fail)


def U(m, where, label=None):
    return Ins("unlock", m, where, label=label)


def OP(text, where, label=None):
    return Ins("op", text, where, label=label)


def RET(value, where, label=None):
    return Ins("ret", value, where, label=label)


def _bpf_link() -> list[Ins]:
    """bpf_trampoline_link_prog(): a program joins a live trampoline (modify_fentry path)."""
    w = "bpf_trampoline_link_prog()"
    return [L(TR, w), OP("arch_prepare_bpf_trampoline(): build the new image", "bpf_trampoline_update()"),
            L(DIRECT, "modify_ftrace_direct_multi()"), L(FTRACE, "modify_ftrace_direct_multi()"),
            OP("rewrite the direct_functions entry", "__modify_ftrace_direct_multi()"),
            U(FTRACE, "modify_ftrace_direct_multi()"), U(DIRECT, "modify_ftrace_direct_multi()"),
            U(TR, w), RET("0", w)]


def _bpf_register() -> list[Ins]:
    """bpf_trampoline_link_prog() of a first fexit program on a function that has a livepatch:
    register_fentry() -> register_ftrace_direct_multi() -> SELF answers -EAGAIN, and the again: loop
    rebuilds with ORIG_STACK and registers again, all under tr->mutex (Song's -EAGAIN: never seen by
    the user, and taken in lock order)."""
    w, reg = "bpf_trampoline_link_prog()", "register_ftrace_direct_multi()"
    self_cb = "bpf_tramp_ftrace_ops_func(SELF)"
    return [L(TR, w), OP("arch_prepare_bpf_trampoline(): CALL_ORIG image", "bpf_trampoline_update()"),
            L(DIRECT, reg), L(FTRACE, "register_ftrace_function_nolock()"),
            OP("SELF: set SHARE_IPMODIFY, answer -EAGAIN", self_cb),
            U(FTRACE, "register_ftrace_function_nolock()"), U(DIRECT, reg),
            OP("again: rebuild with ORIG_STACK", "bpf_trampoline_update()"),
            L(DIRECT, reg), L(FTRACE, "register_ftrace_function_nolock()"), OP("SELF: answer 0", self_cb),
            U(FTRACE, "register_ftrace_function_nolock()"), U(DIRECT, reg), U(TR, w), RET("0", w)]


def _peer_lock(design: str) -> list[Ins]:
    w = "bpf_tramp_ftrace_ops_func(PEER)"
    if design == "merged":
        return [T(TR, w, fail="busy")]
    return [L(TR, w)]


def _klp_register(design: str) -> list[Ins]:
    """klp_patch_func() -> register_ftrace_function() of an IPMODIFY ops on a function with a fexit
    trampoline (the PEER callback rebuilds it with ORIG_STACK)."""
    reg = "register_ftrace_function()"
    prep = "prepare_direct_functions_for_ipmodify()"
    if design in ("merged", "merged-blocking"):
        return [L(DIRECT, reg), L(FTRACE, prep), OP("find the direct ops on the ip", prep), U(FTRACE, prep),
                *_peer_lock(design),
                OP("set SHARE_IPMODIFY, bpf_trampoline_update(tr, false)", "bpf_tramp_ftrace_ops_func(PEER)"),
                L(FTRACE, "modify_ftrace_direct_multi_nolock()"), U(FTRACE, "modify_ftrace_direct_multi_nolock()"),
                U(TR, "bpf_tramp_ftrace_ops_func(PEER)"),
                L(FTRACE, "register_ftrace_function_nolock()"), OP("ftrace_startup()", "ftrace_startup()"),
                U(FTRACE, "register_ftrace_function_nolock()"), U(DIRECT, reg), RET("0", reg),
                OP("msleep(1)", "bpf_tramp_ftrace_ops_func(PEER)", label="busy"), U(DIRECT, reg),
                RET("-EAGAIN", reg)]
    if design == "rostedt-callback":   # 2022-07-13: ops_func called from __ftrace_hash_update_ipmodify()
        gate = "__ftrace_hash_update_ipmodify()"
        return [L(FTRACE, "register_ftrace_function()"), OP("the record has DIRECT: ask the owner", gate),
                L(TR, "ops_func(SHARE_WITH_IPMODIFY)"), OP("rebuild with ORIG_STACK", "bpf_trampoline_update()"),
                L(DIRECT, "modify_ftrace_direct_multi()"), L(FTRACE, "modify_ftrace_direct_multi()"),
                U(FTRACE, "modify_ftrace_direct_multi()"), U(DIRECT, "modify_ftrace_direct_multi()"),
                U(TR, "ops_func(SHARE_WITH_IPMODIFY)"), U(FTRACE, "register_ftrace_function()"), RET("0", gate)]
    if design == "rostedt-drop":       # 2022-07-15: drop the lock around the callback, re-check, retry
        gate = "__ftrace_hash_update_ipmodify()"
        return [L(FTRACE, "register_ftrace_function()"), OP("the record has DIRECT: ask the owner", gate),
                U(FTRACE, gate), L(TR, "ops_func(SHARE_WITH_IPMODIFY)"),
                OP("rebuild with ORIG_STACK", "bpf_trampoline_update()"),
                L(DIRECT, "modify_ftrace_direct_multi()"), L(FTRACE, "modify_ftrace_direct_multi()"),
                U(FTRACE, "modify_ftrace_direct_multi()"), U(DIRECT, "modify_ftrace_direct_multi()"),
                U(TR, "ops_func(SHARE_WITH_IPMODIFY)"), L(FTRACE, gate), OP("re-check: still shared", gate),
                OP("ftrace_startup()", "ftrace_startup()"), U(FTRACE, "register_ftrace_function()"), RET("0", gate)]
    if design == "song-refuse":        # Song's flavors: IPMODIFY on a #2 direct ops is refused
        gate = "__ftrace_hash_update_ipmodify()"
        return [L(DIRECT, "register_ftrace_function()"), L(FTRACE, "register_ftrace_function()"),
                OP("a flavor #2 direct ops holds the function", gate), U(FTRACE, "register_ftrace_function()"),
                U(DIRECT, "register_ftrace_function()"), RET("-EBUSY", gate)]
    raise bad("design", design, DESIGNS)


def _klp_unregister(design: str) -> list[Ins]:
    """unregister_ftrace_function() and the design's "stop sharing" callback.  Merged:
    cleanup_direct_functions_after_ipmodify() sends DISABLE_PEER under direct_mutex; its -EAGAIN is
    ignored, so the trampoline keeps ORIG_STACK."""
    un, cl = "unregister_ftrace_function()", "cleanup_direct_functions_after_ipmodify()"
    cb = "bpf_tramp_ftrace_ops_func(DISABLE_PEER)"
    rebuild = [OP("clear SHARE_IPMODIFY, rebuild", "bpf_trampoline_update()")]
    if design in ("merged", "merged-blocking"):
        lock = [T(TR, cb, fail="busy")] if design == "merged" else [L(TR, cb)]
        return [L(FTRACE, un), OP("ftrace_shutdown()", "ftrace_shutdown()"), U(FTRACE, un),
                L(DIRECT, cl), *lock, *rebuild,
                L(FTRACE, "modify_ftrace_direct_multi_nolock()"), U(FTRACE, "modify_ftrace_direct_multi_nolock()"),
                U(TR, cb), U(DIRECT, cl), RET("0", un),
                OP("msleep(1)", cb, label="busy"), U(DIRECT, cl), RET("0 (ORIG_STACK kept)", un)]
    stop = "ops_func(STOP_SHARE_WITH_IPMODIFY)"
    modify = [L(DIRECT, "modify_ftrace_direct_multi()"), L(FTRACE, "modify_ftrace_direct_multi()"),
              U(FTRACE, "modify_ftrace_direct_multi()"), U(DIRECT, "modify_ftrace_direct_multi()")]
    if design == "rostedt-callback":          # the callback runs under ftrace_lock
        return [L(FTRACE, un), OP("ftrace_shutdown()", "ftrace_shutdown()"), L(TR, stop), *rebuild, *modify,
                U(TR, stop), U(FTRACE, un), RET("0", un)]
    if design == "rostedt-drop":              # ftrace_lock dropped before calling the owner
        return [L(FTRACE, un), OP("ftrace_shutdown()", "ftrace_shutdown()"), U(FTRACE, un), L(TR, stop),
                *rebuild, *modify, U(TR, stop), RET("0", un)]
    raise bad("design", design, ("merged", "merged-blocking", "rostedt-callback", "rostedt-drop"))


DESIGNS = ("merged", "merged-blocking", "rostedt-callback", "rostedt-drop", "song-refuse")
THREADS = {
    "bpf_link": lambda design: _bpf_link(),
    "bpf_link2": lambda design: _bpf_link(),
    "bpf_register": lambda design: _bpf_register(),
    "klp_register": _klp_register,
    "klp_unregister": _klp_unregister,
}


def _resolve(steps) -> tuple[Ins, ...]:
    labels = {s.label: i for i, s in enumerate(steps) if s.label}
    return tuple(Ins(s.kind, s.arg, s.where, labels[s.fail] if s.fail else None, s.label) for s in steps)


@lru_cache(maxsize=None)
def program(design: str, thread: str) -> tuple[Ins, ...]:
    """A thread's steps under a design, with jump labels resolved to indices in `fail`."""
    if design not in DESIGNS:
        raise bad("design", design, DESIGNS)
    if thread not in THREADS:
        raise bad("thread", thread, tuple(THREADS))
    return _resolve(THREADS[thread](design))


# -- interleavings --------------------------------------------------------------------------------
@dataclass
class Interleavings:
    """All schedules of some threads under one design.

    * `states`: distinct (program counters, lock owners, results) states
    * `schedules`: complete schedules (paths to a final or deadlocked state)
    * `outcomes`: outcome -> schedules; an outcome is the threads' results, or DEADLOCK
    * `deadlock`: the shortest deadlocking schedule as (thread, step index) pairs, or None
    """
    design: str
    threads: tuple[str, ...]
    states: int = 0
    schedules: int = 0
    outcomes: Counter = field(default_factory=Counter)
    deadlock: list[tuple[int, int]] | None = None
    stuck: list[str] = field(default_factory=list)      # why the deadlocked threads wait

    def df_outcomes(self) -> pd.DataFrame:
        """:returns: a :class:`pandas.DataFrame` with one row per outcome: ``design``, ``threads``,
        ``outcome`` (each thread's result, or DEADLOCK) and ``schedules``."""
        rows = [{"design": self.design, "threads": " + ".join(self.threads), "outcome": o, "schedules": n}
                for o, n in sorted(self.outcomes.items())]
        return pd.DataFrame(rows, columns=["design", "threads", "outcome", "schedules"])

    def df_trace(self, schedule=None) -> pd.DataFrame:
        """A schedule (default: the deadlock) as a step table.

        :returns: a :class:`pandas.DataFrame` with one row per step: ``t`` (step number), ``thread``,
          ``action`` (``mutex_lock(direct_mutex)``, ``mutex_trylock(tr->mutex) fails``, ...),
          ``where`` (kernel function) and ``holds`` (locks the thread holds after the step); a
          deadlock ends with one ``blocked`` row per waiting thread.
        """
        return df_trace(self.design, self.threads, schedule if schedule is not None else self.deadlock or [])

    def summary(self) -> dict:
        return {"design": self.design, "threads": " + ".join(self.threads), "states": self.states,
                "schedules": self.schedules, "deadlocks": self.outcomes.get("DEADLOCK", 0),
                "outcomes": "; ".join(f"{o} x{n}" for o, n in sorted(self.outcomes.items()))}


def _enabled(prog, pc, owners, me) -> bool:
    if pc >= len(prog):
        return False
    ins = prog[pc]
    if ins.kind == "lock":
        return owners[LOCKS.index(ins.arg)] is None
    return True


def _move(progs, state, t):
    """One step of thread t; returns (new state, trylock failed?)."""
    pcs, owners, results = state
    ins = progs[t][pcs[t]]
    pcs, owners, results = list(pcs), list(owners), list(results)
    failed = False
    i = LOCKS.index(ins.arg) if ins.kind in ("lock", "trylock", "unlock") else None
    if ins.kind == "lock":
        owners[i] = t
        pcs[t] += 1
    elif ins.kind == "trylock":
        if owners[i] is None:
            owners[i] = t
            pcs[t] += 1
        else:
            pcs[t] = ins.fail
            failed = True
    elif ins.kind == "unlock":
        owners[i] = None
        pcs[t] += 1
    elif ins.kind == "op":
        pcs[t] += 1
    else:
        results[t] = ins.arg
        pcs[t] = len(progs[t])
    return (tuple(pcs), tuple(owners), tuple(results)), failed


def interleavings(design: str, threads, programs: dict | None = None) -> Interleavings:
    """Every schedule of `threads` (names from THREADS) under `design`, by search over states.
    `programs` may give a thread's steps directly (name -> list of Ins), e.g. to check the search."""
    threads = tuple(threads)
    programs = programs or {}
    progs = [_resolve(programs[t]) if t in programs else program(design, t) for t in threads]
    init = (tuple(0 for _ in threads), (None,) * len(LOCKS), ("",) * len(threads))
    memo: dict = {}

    def outcome(state):
        return " | ".join(f"{n}={r}" for n, r in zip(threads, state[2]))

    def walk(state) -> Counter:
        if state in memo:
            return memo[state]
        moves = [t for t in range(len(threads)) if _enabled(progs[t], state[0][t], state[1], t)]
        if not moves:
            done = all(pc >= len(p) for pc, p in zip(state[0], progs))
            res = Counter({outcome(state) if done else "DEADLOCK": 1})
        else:
            res = Counter()
            for t in moves:
                res.update(walk(_move(progs, state, t)[0]))
        memo[state] = res
        return res

    r = Interleavings(design, threads)
    r.outcomes = walk(init)
    r.states = len(memo)
    r.schedules = sum(r.outcomes.values())
    # shortest deadlock, breadth first
    frontier, seen = [(init, [])], {init}
    while frontier and r.deadlock is None:
        nxt = []
        for state, path in frontier:
            moves = [t for t in range(len(threads)) if _enabled(progs[t], state[0][t], state[1], t)]
            if not moves and not all(pc >= len(p) for pc, p in zip(state[0], progs)):
                r.deadlock = path
                r.stuck = [f"{threads[t]} waits for {progs[t][pc].arg} held by "
                           f"{threads[state[1][LOCKS.index(progs[t][pc].arg)]]}"
                           for t, pc in enumerate(state[0]) if pc < len(progs[t])]
                break
            for t in moves:
                s2 = _move(progs, state, t)[0]
                if s2 not in seen:
                    seen.add(s2)
                    nxt.append((s2, path + [(t, state[0][t])]))
        frontier = nxt
    return r


def _action(ins: Ins, failed: bool) -> str:
    if ins.kind == "lock":
        return f"mutex_lock({ins.arg})"
    if ins.kind == "trylock":
        return f"mutex_trylock({ins.arg}) " + ("fails" if failed else "succeeds")
    if ins.kind == "unlock":
        return f"mutex_unlock({ins.arg})"
    if ins.kind == "ret":
        return f"return {ins.arg}"
    return ins.arg


def df_trace(design: str, threads, schedule) -> pd.DataFrame:
    """See `Interleavings.df_trace`; `schedule` is a list of (thread index, step index)."""
    threads = tuple(threads)
    progs = [program(design, t) for t in threads]
    state = (tuple(0 for _ in threads), (None,) * len(LOCKS), ("",) * len(threads))
    rows = []
    for n, (t, _) in enumerate(schedule, 1):
        ins = progs[t][state[0][t]]
        state, failed = _move(progs, state, t)
        rows.append({"t": n, "thread": threads[t], "action": _action(ins, failed), "where": ins.where,
                     "holds": ", ".join(m for m, o in zip(LOCKS, state[1]) if o == t) or "-"})
    moves = [t for t in range(len(threads)) if _enabled(progs[t], state[0][t], state[1], t)]
    if schedule and not moves:
        for t, pc in enumerate(state[0]):
            if pc < len(progs[t]):
                ins = progs[t][pc]
                owner = threads[state[1][LOCKS.index(ins.arg)]]
                rows.append({"t": len(schedule) + 1, "thread": threads[t],
                             "action": f"blocked in mutex_lock({ins.arg}), held by {owner}", "where": ins.where,
                             "holds": ", ".join(m for m, o in zip(LOCKS, state[1]) if o == t) or "-"})
    return pd.DataFrame(rows, columns=["t", "thread", "action", "where", "holds"])


def df_designs(thread_sets=(("bpf_link", "klp_register"), ("bpf_link", "klp_register", "bpf_link2"),
                            ("bpf_link", "klp_register", "klp_unregister"))) -> pd.DataFrame:
    """Every design against every thread set.

    :returns: a :class:`pandas.DataFrame` with one row per (design, thread set): ``design``,
      ``threads``, ``states``, ``schedules``, ``deadlocks`` (schedules ending in a deadlock) and
      ``outcomes`` (``thread=result | ... xN`` joined by ``;``).
    """
    rows = []
    for threads in thread_sets:
        for d in DESIGNS:
            if d == "song-refuse" and "klp_unregister" in threads:
                continue                  # nothing to unregister: the livepatch was refused
            rows.append(interleavings(d, threads).summary())
    return pd.DataFrame(rows)


def bench() -> dict:
    """The issue's target, measured: every interleaving of both three-thread sets under every design."""
    import time
    t0 = time.perf_counter()
    df = df_designs(thread_sets=(("bpf_link", "klp_register", "bpf_link2"),
                                 ("bpf_link", "klp_register", "klp_unregister")))
    return {"searches": len(df), "states": int(df["states"].sum()), "schedules": int(df["schedules"].sum()),
            "seconds": round(time.perf_counter() - t0, 3)}
