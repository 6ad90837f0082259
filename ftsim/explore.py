"""Exhaustive exploration: every attach/detach/call sequence up to a length, shortest counterexamples.

    ex = explore(policy.get("merged", kernel="6.1"), max_len=4)
    ex.df_counterexamples()        # one row per step of the shortest sequence breaking each invariant
    ex.scenario_text("NoSilentBypass")   # the same sequence as a .fts file that `ftsim scenario` runs

The search is breadth first over *states*, not sequences: two models whose kernels are the same up to
the names of handles and the absolute values of ops sequence numbers (`state_key`) are explored once,
so the first time an invariant shows up is at the shortest length that can break it.  The number of
raw action sequences those states stand for is counted on the state graph (`sequences`).

A BPF program attached to (or detached from) a trampoline that is already live goes through
modify_fentry() -> modify_ftrace_direct(), not through the registration gate: such steps are labelled
`path='modify_fentry'`, and the shortest counterexample is also kept per path, so the upgrade paths
that exist only because BPF programs share one trampoline are reported even when a shorter sequence
breaks the same invariant another way.
"""
from __future__ import annotations

import pickle
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import consumers as cons
from . import policy as policies
from .errors import bad
from .flags import Errno
from .invariants import INVARIANTS, check
from .model import Model
from .paths import DATA
from .orders import df_order_sensitivity, df_order_summary, plot_order_sensitivity
from .policy import Policy
from .search_space import (CROSS_CONSUMERS, DEFAULT_CONSUMERS, FUNCTIONS, PATHS, actions, apply, state_key,
                           symmetric)

__all__ = ["explore", "explore_all", "Exploration", "df_summary", "df_shortest_grid", "found_searches",
           "write_found", "to_scenario", "state_key", "symmetric", "actions", "apply", "df_order_sensitivity",
           "df_order_summary", "plot_order_sensitivity", "DEFAULT_CONSUMERS", "CROSS_CONSUMERS", "FUNCTIONS",
           "PATHS", "FOUND_DIR", "PEER_GAP_CONSUMERS"]


# -- the search -----------------------------------------------------------------------------------
@dataclass
class Exploration:
    """The result of one exhaustive search.

    * `states`: distinct canonical states reached (the empty kernel included)
    * `transitions`: steps executed (one per state and action, states of length < max_len)
    * `sequences`: action sequences of length 0..max_len that the states stand for
    * `shortest`: (invariant, path) -> the rows of the shortest sequence whose last step breaks it
      (newly: the state before that step did not break it on the step's function)
    """
    policy: Policy
    consumers: tuple[str, ...]
    functions: tuple[str, ...]
    max_len: int
    states: int = 0
    transitions: int = 0
    sequences: int = 0
    states_by_len: list[int] = field(default_factory=list)
    seconds: float = 0.0
    shortest: dict[tuple[str, str], list[dict]] = field(default_factory=dict)

    # DataFrame getters ------------------------------------------------------------------------
    def counterexamples(self) -> dict[str, list[dict]]:
        """invariant -> the shortest sequence breaking it (over every path)."""
        best: dict[str, list[dict]] = {}
        for (inv, _), rows in self.shortest.items():
            if inv not in best or len(rows) < len(best[inv]):
                best[inv] = rows
        return {inv: best[inv] for inv in INVARIANTS if inv in best}

    def df_counterexamples(self, by_path: bool = False) -> pd.DataFrame:
        """The shortest counterexamples as step tables.

        :returns: a :class:`pandas.DataFrame` with one row per step:
          * ``policy``: the design (with kernel for merged)
          * ``invariant``: the invariant the sequence breaks at its last step
          * ``path``: the kernel path of that last step (register, modify_fentry, unregister, call)
          * ``length``: steps in the sequence
          * ``step``: 1-based position of the step
          * ``action``: the step as a scenario line (``attach bpf-fexit F as fx``)
          * ``ret``: what the caller was told (``0``, ``-EBUSY``; ``-`` for a call)
          * ``record``: the function's enabled_functions line after the step (``2:RID``)
          * ``violations``: invariants broken after the step (``-`` for none)
        """
        items = (sorted(self.shortest.items(), key=lambda kv: (list(INVARIANTS).index(kv[0][0]),
                                                               PATHS.index(kv[0][1])))
                 if by_path else [((inv, rows[-1]["path"]), rows) for inv, rows in self.counterexamples().items()])
        out = []
        for (inv, path), rows in items:
            for i, d in enumerate(rows, 1):
                out.append({"policy": self.policy.label, "invariant": inv, "path": path, "length": len(rows),
                            "step": i, "action": _line(d), "ret": Errno.name_of(d["ret"]),
                            "record": f"{d['record']['count']}:{d['record']['flags']}",
                            "violations": ",".join(d["violations"]) or "-"})
        cols = ["policy", "invariant", "path", "length", "step", "action", "ret", "record", "violations"]
        return pd.DataFrame(out, columns=cols)

    def df_shortest(self) -> pd.DataFrame:
        """One row per invariant and path.

        :returns: a :class:`pandas.DataFrame` with:
          * ``policy``, ``invariant``, ``path`` (of the breaking step), ``length`` (steps)
          * ``sequence``: the steps joined by `` ; ``
        """
        rows = [{"policy": self.policy.label, "invariant": inv, "path": path, "length": len(r),
                 "sequence": " ; ".join(_line(d) for d in r)}
                for (inv, path), r in sorted(self.shortest.items(), key=lambda kv: (
                    list(INVARIANTS).index(kv[0][0]), len(kv[1]), PATHS.index(kv[0][1])))]
        return pd.DataFrame(rows, columns=["policy", "invariant", "path", "length", "sequence"])

    def summary(self) -> dict:
        return {"policy": self.policy.label, "consumers": len(self.consumers), "functions": len(self.functions),
                "max_len": self.max_len, "states": self.states, "transitions": self.transitions,
                "sequences": self.sequences, "seconds": round(self.seconds, 2),
                "broken": ",".join(self.counterexamples()) or "-"}

    # scenario files ---------------------------------------------------------------------------
    def scenario_text(self, invariant: str, path: str | None = None) -> str:
        rows = self.counterexamples()[invariant] if path is None else self.shortest[(invariant, path)]
        return to_scenario(rows, self.policy, invariant, self)

    def write_scenarios(self, out_dir, prefix: str = "") -> list[Path]:
        """One file per invariant (the shortest), plus one per other path when it differs."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        label = slug(self.policy.label)
        written = []
        best = self.counterexamples()
        for (inv, path), rows in sorted(self.shortest.items()):
            suffix = "" if rows is best[inv] else f"--via-{path.replace('_', '-')}"
            p = out_dir / f"{prefix}{label}--{inv}{suffix}.fts"
            p.write_text(to_scenario(rows, self.policy, inv, self))
            written.append(p)
        return written


def slug(label: str) -> str:
    """A policy label as a file name part: ``merged 6.1.192 [modify_path_checked=true]`` ->
    ``merged-6.1.192-modify_path_checked=true``."""
    return re.sub(r"[^A-Za-z0-9.=_-]+", "-", label).strip("-")


def _line(d: dict) -> str:
    if d["op"] == "attach":
        return f"attach {d['consumer']} {d['function']} as {d['handle']}"
    if d["op"] == "detach":
        return f"detach {d['handle']}"
    return f"call {d['function']}"


def selector(pol: Policy) -> str:
    """The scenario expectation selector of a policy: `merged==6.1`, `merged>=6.18`, `song`."""
    if pol.name != "merged" or not pol.kernel:
        return pol.name
    return f"merged>={pol.kernel}" if pol.kernel == policies.NEWEST_KERNEL else f"merged=={pol.kernel}"


def to_scenario(rows: list[dict], pol: Policy, invariant: str, ex: Exploration | None = None) -> str:
    """A counterexample as a .fts scenario whose expectations hold under `pol` (and only there)."""
    kernel = ""
    head = [f"# Shortest sequence breaking {invariant} under {pol.label} ({len(rows)} steps; the last step "
            f"goes through {rows[-1]['path']}).",
            f"# {INVARIANTS[invariant]}.",
            "# Generated by ftsim.explore (breadth-first over canonical states); do not edit by hand.",
            f"# Run: ftsim scenario THIS_FILE --policy {pol.name}{kernel}"]
    if ex is not None:
        head.append(f"# Search: consumers {', '.join(ex.consumers)}; {len(ex.functions)} function(s); "
                    f"max length {ex.max_len}.")
    width = max(len(_line(d)) for d in rows) + 2
    body = [f"kernel {pol.kernel}", ""] if pol.name == "merged" and pol.kernel else []
    body += [f"set {k}={policies._fmt(v)}" for k, v in pol.changed().items()]
    for d in rows:
        exp = []
        if d.get("outcome") == "oops":
            exp.append("oops")
        elif d["op"] != "call":
            exp.append(Errno.name_of(d["ret"]))
        else:
            exp.append(f"body={d['body_ran']}")
        exp.append(f"violations={','.join(d['violations']) or '-'}")
        body.append(f"{_line(d):<{width}}=>[{selector(pol)}] {' '.join(exp)}")
    return "\n".join(head) + "\n\n" + "\n".join(body) + "\n"


def _freeze(m: Model) -> bytes:
    """The model's kernel as bytes, without its policy and injectable (the same for every state)."""
    k = m.kernel
    pol, inj = k.policy, k.injectable
    k.policy = k.injectable = None
    try:
        return pickle.dumps(k, -1)
    finally:
        k.policy, k.injectable = pol, inj


def _thaw(blob: bytes, pol: Policy, inj) -> Model:
    k = pickle.loads(blob)
    k.policy, k.injectable = pol, inj
    return Model(pol, injectable=inj, kernel=k)


def explore(pol: Policy, consumers=DEFAULT_CONSUMERS, functions: int | tuple = 1, max_len: int = 4) -> Exploration:
    """Breadth-first search over every attach/detach/call sequence of length <= max_len."""
    consumers = tuple(consumers)
    for c in consumers:
        cons.get(c)
    if isinstance(functions, int):
        if functions not in (1, 2, 3):
            raise bad("functions", functions, "1, 2, 3")
        functions = FUNCTIONS[:functions]
    if not isinstance(max_len, int) or max_len < 0:
        raise bad("max_len", max_len, "an integer >= 0")
    t0 = time.perf_counter()
    ex = Exploration(pol, consumers, tuple(functions), max_len)
    for c in consumers:
        cons.check_available(c, pol)
    sym = symmetric(pol)
    root = Model(pol)
    key0 = state_key(root, functions, sym)
    seen = {key0}
    graph: dict[tuple, list[tuple]] = {}
    inj = root.kernel.injectable
    frontier = [(key0, _freeze(root), [])]
    ex.states_by_len = [1]
    for depth in range(1, max_len + 1):
        nxt = []
        for key, blob, rows in frontier:
            base = _thaw(blob, pol, inj)
            before = {f: set(check(base, f)) for f in functions}   # broken already: not a new break
            succ = graph[key] = []
            if base.kernel.oops:               # nothing runs after an oops: every step leads back here
                graph[key] = [key] * len(actions(base, consumers, functions))
                continue
            for act in actions(base, consumers, functions):
                if act[0] == "call":            # a call changes the state only by killing ftrace or an oops
                    out = base.simulate(act[2])
                    m = _thaw(blob, pol, inj) if out.oops or out.null_func else base
                else:
                    m = _thaw(blob, pol, inj)
                d = apply(m, act)
                ex.transitions += 1
                path = rows + [d]
                for inv in d["violations"]:       # first broken by this step: not before it, not earlier
                    if inv not in before[d["function"]] and not any(inv in r["violations"] for r in rows):
                        ex.shortest.setdefault((inv, d["path"]), path)
                k2 = key if act[0] == "call" and m.kernel.dead == base.kernel.dead and not m.kernel.oops \
                    else state_key(m, functions, sym)
                succ.append(k2)
                if k2 not in seen:
                    seen.add(k2)
                    if depth < max_len:
                        nxt.append((k2, _freeze(m), path))
        ex.states_by_len.append(len(seen))
        frontier = nxt
    ex.states = len(seen)
    counts = Counter({key0: 1})
    total = 1
    for _ in range(max_len):
        new = Counter()
        for s, c in counts.items():
            for t in graph.get(s, ()):
                new[t] += c
        counts = new
        total += sum(counts.values())
    ex.sequences = total
    ex.seconds = time.perf_counter() - t0
    return ex


def explore_all(policies_=None, **kw) -> list[Exploration]:
    """`explore` under each policy (default: the five designs, merged at 6.1 and at the newest kernel)."""
    if policies_ is None:
        policies_ = [policies.get(n) for n in policies.NAMES] + [policies.get("merged", kernel="6.1.192")]
    return [explore(p, **kw) for p in policies_]


def df_summary(results: list[Exploration]) -> pd.DataFrame:
    """One row per search.

    :returns: a :class:`pandas.DataFrame` with ``policy``, ``consumers``, ``functions``, ``max_len``,
      ``states``, ``transitions``, ``sequences``, ``seconds`` and ``broken`` (invariants with a
      counterexample, comma separated, ``-`` for none).
    """
    return pd.DataFrame([r.summary() for r in results])


def df_shortest_grid(results: list[Exploration]) -> pd.DataFrame:
    """Length of the shortest counterexample: invariants as index, one column per policy (NaN: none)."""
    grid = pd.DataFrame({r.policy.label: {inv: float(len(rows)) if rows else float("nan")
                                          for inv, rows in ((i, r.counterexamples().get(i)) for i in INVARIANTS)}
                         for r in results})
    grid.index.name = "invariant"
    return grid


#: The searches whose counterexamples are kept in data/scenarios/found/ (`write_found`): every design on
#: one function at length 6, and the PEER gap that needs a second function.
FOUND_DIR = DATA / "scenarios" / "found"
PEER_GAP_CONSUMERS = ("kprobe-post", "fail-function", "bpf-fexit")


def found_searches() -> list[Exploration]:
    """Every design on one function at length 6 (merged at each kernel users run), the PEER gap on two
    functions, the 6.1.160+ ftrace kill, and the 7.x cross-function stuck state on three functions."""
    kernels = [policies.get("merged", kernel=k) for k in policies.USER_KERNELS if k != policies.NEWEST_KERNEL]
    one = explore_all([policies.get(n) for n in policies.NAMES] + kernels, max_len=6)
    two = [explore(policies.get("merged"), PEER_GAP_CONSUMERS, functions=2, max_len=3)]
    three = [explore(policies.get("merged"), CROSS_CONSUMERS, functions=3, max_len=5)]
    return one + two + three


def write_found(out_dir=FOUND_DIR, results: list[Exploration] | None = None) -> list[Path]:
    """Regenerate data/scenarios/found/: one .fts per (search, invariant, path) shortest counterexample.
    Two searches that find the same sequence keep the first file only."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.fts"):
        old.unlink()
    written = []
    for ex in results or found_searches():
        for p in ex.write_scenarios(out_dir, prefix=f"{len(ex.functions)}fn-" if len(ex.functions) > 1 else ""):
            written.append(p)
    return written


# -- command line ---------------------------------------------------------------------------------
def add_command(sub):
    from .cliargs import policy_args
    p = sub.add_parser("explore", help="every attach/detach/call sequence up to a length: shortest counterexamples")
    policy_args(p)
    p.add_argument("--max-len", type=int, default=4, help="longest sequence (default 4, at most 8)")
    p.add_argument("--consumers", nargs="+", default=list(DEFAULT_CONSUMERS), metavar="CONSUMER",
                   help=f"consumers to attach (default: {' '.join(DEFAULT_CONSUMERS)})")
    p.add_argument("--functions", type=int, choices=(1, 2, 3), default=1,
                   help="functions to attach to (3 finds the 7.x cross-function states)")
    p.add_argument("--out", help="write each counterexample as a .fts scenario file in this directory")
    p.set_defaults(func=cmd_explore)


def cmd_explore(args) -> int:
    from .cliargs import policy_sets
    if args.max_len < 0 or args.max_len > 8:
        raise bad("--max-len", args.max_len, "0..8")
    pol = policies.get(args.policy, kernel=args.kernel, **policy_sets(args))
    for c in args.consumers:
        cons.check_available(c, pol)
    if args.out:                                  # before the search, not after minutes of it
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise bad("--out", args.out, "a directory (or a name to create one)")
        if not out.exists() and not out.parent.is_dir():
            raise bad("--out", args.out, f"a directory in an existing one ({out.parent} does not exist)")
    ex = explore(pol, args.consumers, args.functions, args.max_len)
    s = ex.summary()
    print(f"{pol.label}: {s['states']} states, {s['transitions']} steps run, {s['sequences']} sequences "
          f"of length <= {args.max_len} ({len(ex.consumers)} consumers, {len(ex.functions)} function(s)) "
          f"in {s['seconds']:.2f} s")
    table = ex.df_shortest()
    if table.empty:
        print("no invariant broken")
    else:
        print(table.drop(columns="policy").to_string(index=False))
    if args.out:
        for p in ex.write_scenarios(args.out):
            print(f"wrote {p}")
    return 0


def bench(max_len: int = 5) -> dict:
    """The issue's target, measured: ``max_len`` search over CROSS_CONSUMERS on three functions under
    each of the five designs (merged at the newest kernel): seconds per design and in total."""
    out = {}
    for name in policies.NAMES:
        ex = explore(policies.get(name), CROSS_CONSUMERS, functions=3, max_len=max_len)
        out[name] = round(ex.seconds, 2)
    out["total"] = round(sum(out.values()), 2)
    return out
