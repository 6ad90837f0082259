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

import itertools
import pickle
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import consumers as cons
from . import policy as policies
from .consumers import BPF
from .errors import FtsimError, bad
from .flags import Errno
from .invariants import INVARIANTS, check
from .model import Model
from .paths import DATA
from .policy import Policy

#: The six consumer kinds explored by default: the two IPMODIFY users, the undeclared ip writer, the two
#: BPF trampoline programs (fentry-only answers SELF at once, fexit needs CALL_ORIG), a flavor #1 direct.
DEFAULT_CONSUMERS = ("livepatch", "kprobe-post", "bpf-override-return", "bpf-fentry", "bpf-fexit", "direct")
#: Functions: both allow error injection (data/kernel/functions.csv), so every consumer can attach.
FUNCTIONS = ("__x64_sys_getppid", "__x64_sys_getpid")
ABBREV = {"livepatch": "lp", "kprobe-post": "kp", "kprobe": "kpr", "fail-function": "ff",
          "bpf-override-return": "ovr", "bpf-fentry": "fe", "bpf-fexit": "fx", "bpf-fmod-ret": "fmr",
          "bpf-fmod-ret-pass": "fmp", "direct": "dir", "ftrace-ops": "ops", "function-tracer": "ft",
          "function-graph": "fg", "kretprobe": "krp", "fprobe": "fp", "fprobe-exit": "fpx"}
PATHS = ("register", "modify_fentry", "unregister", "call")


# -- state canonicalisation ---------------------------------------------------------------------
def state_key(model: Model) -> tuple:
    """A hashable description of the kernel, equal for two models that differ only in handle names
    (renamed in order of first appearance in the kernel's ordered lists) and in absolute ops sequence
    numbers (replaced by their rank).  Refused and detached handles are left out: nothing reads them."""
    k = model.kernel
    live = [h for h in k.handles.values() if not h.detached]
    names: dict[str, str] = {}

    def H(handle: str) -> str:
        if handle not in names:
            names[handle] = f"{k.handles[handle].consumer}#{len(names)}"
        return names[handle]

    ops_of_handle = {h.ops.name: h.name for h in live if h.ops is not None}
    all_ops = {}
    for rec in k.records.values():
        for o in rec.ops:
            all_ops[id(o)] = o
        if rec.direct is not None:
            all_ops[id(rec.direct)] = rec.direct
    for o, _ in k.klp.values():
        all_ops[id(o)] = o
    for o in k.kprobe_ops.values():
        all_ops[id(o)] = o
    for tr in k.tramps.values():
        all_ops[id(tr.ops)] = tr.ops
    rank = {s: i for i, s in enumerate(sorted({o.seq for o in all_ops.values()}))}

    def O(o) -> tuple | None:
        if o is None:
            return None
        name = o.name
        if name in ops_of_handle:
            name = name.split(":", 1)[0] + ":" + H(ops_of_handle[name])
        return (name, o.flags.value, o.has_ops_func, tuple(sorted(o.funcs)), o.enabled, rank[o.seq])

    recs = []
    for func in sorted(k.records):
        r = k.records[func]
        if not r.ops and r.direct is None and not (r.ipmodify or r.modified or r.stale_direct
                                                   or r.shared_ipmodify):
            continue
        recs.append((func, tuple(O(o) for o in r.ops), r.ipmodify, O(r.direct), r.modified,
                     r.stale_direct, r.shared_ipmodify))
    klp = tuple((f, O(o), tuple(H(h) for h in stack)) for f, (o, stack) in sorted(k.klp.items()))
    probes = tuple((f, name, tuple(H(h) for h in members)) for f, (name, members) in sorted(k.probes.items()))
    kops = tuple((n, O(o), k.kprobe_cnt[n]) for n, o in sorted(k.kprobe_ops.items())
                 if k.kprobe_cnt[n] or o.enabled or o.funcs)      # an unused shared ops is no state
    tramps = tuple((f, O(t.ops), tuple((H(p.handle), p.kind, p.skips) for p in t.progs), t.flags.value,
                    None if t.live_flags is None else t.live_flags.value,
                    tuple((H(p.handle), p.kind, p.skips) for p in t.live_progs))
                   for f, t in sorted(k.tramps.items()))
    handles = tuple(sorted((H(h.name), h.consumer, h.func, O(h.ops)) for h in live))
    unarmed = tuple(sorted(H(h) for h in k.unarmed))    # told 0, in no kprobe table (6.14+)
    return (tuple(recs), klp, probes, kops, tramps, handles, unarmed)


# -- actions --------------------------------------------------------------------------------------
def actions(model: Model, consumers, functions) -> list[tuple]:
    """Every step possible from a model: attach each consumer to each function, detach each live
    handle (oldest first), call each function."""
    acts = [("attach", c, f) for f in functions for c in consumers]
    acts += [("detach", h.name, h.func) for h in model.kernel.handles.values() if not h.detached]
    acts += [("call", None, f) for f in functions]
    return acts


def _handle_for(model: Model, consumer: str) -> str:
    base = ABBREV.get(consumer, consumer)
    name, n = base, 2
    while name in model.kernel.handles:
        name, n = f"{base}{n}", n + 1
    return name


def _path_of(model: Model, act: tuple) -> str:
    """Which kernel path a step takes (modify_fentry: a BPF program joins or leaves a live trampoline)."""
    op, who, func = act
    if op == "call":
        return "call"
    consumer = who if op == "attach" else model.kernel.handles[who].consumer
    if cons.get(consumer).mechanism == BPF:
        tr = model.kernel.tramps.get(func)
        if tr is not None and tr.live_flags is not None and (op == "attach" or len(tr.progs) > 1):
            return "modify_fentry"
    return "register" if op == "attach" else "unregister"


def apply(model: Model, act: tuple) -> dict:
    """Run one action; returns the step as a row (keys of `ftsim scenario --json`: op, consumer, function,
    handle, ret, attached, callbacks, retries, regenerations, record, violations, body_ran and
    result_from for a call; plus `path`)."""
    op, who, func = act
    path = _path_of(model, act)
    if op == "attach":
        step = model.attach(who, func, _handle_for(model, who))
    elif op == "detach":
        step = model.detach(who)
    else:
        step = model.call(func)
    d = {"op": step.op, "consumer": step.consumer, "function": step.function, "handle": step.handle,
         "ret": step.ret, "attached": step.attached, "callbacks": step.callbacks, "retries": step.retries,
         "regenerations": step.regenerations, "record": step.record, "violations": step.violations,
         "path": path}
    if step.call is not None:                       # Step.as_json() (dataclasses.asdict) is 3x slower
        d["body_ran"], d["result_from"] = step.call.body_ran, step.call.result_from
    return d


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
        label = self.policy.label.replace("[", "-").replace("]", "")
        written = []
        best = self.counterexamples()
        for (inv, path), rows in sorted(self.shortest.items()):
            suffix = "" if rows is best[inv] else f"--via-{path.replace('_', '-')}"
            p = out_dir / f"{prefix}{label}--{inv}{suffix}.fts"
            p.write_text(to_scenario(rows, self.policy, inv, self))
            written.append(p)
        return written


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
    kernel = f" --kernel {pol.kernel}" if pol.name == "merged" and pol.kernel != policies.NEWEST_KERNEL else ""
    head = [f"# Shortest sequence breaking {invariant} under {pol.label} ({len(rows)} steps; the last step "
            f"goes through {rows[-1]['path']}).",
            f"# {INVARIANTS[invariant]}.",
            "# Generated by ftsim.explore (breadth-first over canonical states); do not edit by hand.",
            f"# Run: ftsim scenario THIS_FILE --policy {pol.name}{kernel}"]
    if ex is not None:
        head.append(f"# Search: consumers {', '.join(ex.consumers)}; {len(ex.functions)} function(s); "
                    f"max length {ex.max_len}.")
    width = max(len(_line(d)) for d in rows) + 2
    body = []
    for d in rows:
        exp = []
        if d["op"] != "call":
            exp.append(Errno.name_of(d["ret"]))
        else:
            exp.append(f"body={d['body_ran']}")
        exp.append(f"violations={','.join(d['violations']) or '-'}")
        body.append(f"{_line(d):<{width}}=>[{selector(pol)}] {' '.join(exp)}")
    return "\n".join(head) + "\n\n" + "\n".join(body) + "\n"


def explore(pol: Policy, consumers=DEFAULT_CONSUMERS, functions: int | tuple = 1, max_len: int = 4) -> Exploration:
    """Breadth-first search over every attach/detach/call sequence of length <= max_len."""
    consumers = tuple(consumers)
    for c in consumers:
        cons.get(c)
    if isinstance(functions, int):
        if functions not in (1, 2):
            raise bad("functions", functions, "1, 2")
        functions = FUNCTIONS[:functions]
    if not isinstance(max_len, int) or max_len < 0:
        raise bad("max_len", max_len, "an integer >= 0")
    t0 = time.perf_counter()
    ex = Exploration(pol, consumers, tuple(functions), max_len)
    root = Model(pol)
    key0 = state_key(root)
    seen = {key0}
    graph: dict[tuple, list[tuple]] = {}
    frontier = [(key0, pickle.dumps(root, -1), [])]
    ex.states_by_len = [1]
    for depth in range(1, max_len + 1):
        nxt = []
        for key, blob, rows in frontier:
            base = pickle.loads(blob)
            before = {f: set(check(base, f)) for f in functions}   # broken already: not a new break
            succ = graph[key] = []
            for act in actions(base, consumers, functions):
                m = base if act[0] == "call" else pickle.loads(blob)
                d = apply(m, act)
                ex.transitions += 1
                path = rows + [d]
                for inv in d["violations"]:
                    if inv not in before[d["function"]]:
                        ex.shortest.setdefault((inv, d["path"]), path)
                k2 = key if act[0] == "call" else state_key(m)
                succ.append(k2)
                if k2 not in seen:
                    seen.add(k2)
                    if depth < max_len:
                        nxt.append((k2, pickle.dumps(m, -1), path))
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
        policies_ = [policies.get(n) for n in policies.NAMES] + [policies.get("merged", kernel="6.1")]
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
    one = explore_all(max_len=6)
    two = [explore(policies.get(n), PEER_GAP_CONSUMERS, functions=2, max_len=3) for n in ("merged",)]
    return one + two


def write_found(out_dir=FOUND_DIR, results: list[Exploration] | None = None) -> list[Path]:
    """Regenerate data/scenarios/found/: one .fts per (search, invariant, path) shortest counterexample.
    Two searches that find the same sequence keep the first file only."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.fts"):
        old.unlink()
    written = []
    for ex in results or found_searches():
        for p in ex.write_scenarios(out_dir, prefix="2fn-" if len(ex.functions) == 2 else ""):
            written.append(p)
    return written


# -- order sensitivity ----------------------------------------------------------------------------
def _end_state(pol: Policy, order, func: str):
    m = Model(pol)
    refused = []
    for c in order:
        d = apply(m, ("attach", c, func))
        if d["ret"]:
            refused.append((c, Errno.name_of(d["ret"])))
    out = m.simulate(func)
    attached = sorted(m.kernel.handles[h].consumer for h in m.live_handles() if m.attached(h))
    result = out.result_from if out.result_from in ("orig", "none") else m.kernel.handles[out.result_from].consumer
    end = (f"{m.line(func)['count']}:{m.line(func)['flags'].replace('M', '')}", tuple(attached),
           out.body_ran, result, tuple(check(m, func, out)))
    return end, tuple(sorted(refused))


def df_order_sensitivity(pol: Policy, consumers=DEFAULT_CONSUMERS, max_size: int = 4) -> pd.DataFrame:
    """For every multiset of 1..max_size attachments on one function: do the end state or the
    refusals depend on the order?

    :returns: a :class:`pandas.DataFrame` with one row per multiset:
      * ``policy``, ``multiset`` (consumers joined by ``+``), ``size``
      * ``orders``: distinct orders tried (all permutations)
      * ``end_states``: distinct end states (record line, consumers attached, body run, who decided
        the result, invariants broken)
      * ``refusal_sets``: distinct sets of refused attaches (consumer and errno)
      * ``sensitive``: more than one end state or refusal set
      * ``example``: two orders that differ (``a>b | b>a``), empty when insensitive
    """
    func = FUNCTIONS[0]
    rows = []
    for size in range(1, max_size + 1):
        for ms in itertools.combinations_with_replacement(consumers, size):
            outcomes = {}
            for order in sorted(set(itertools.permutations(ms))):
                outcomes[order] = _end_state(pol, order, func)
            ends = {o[0] for o in outcomes.values()}
            refs = {o[1] for o in outcomes.values()}
            sensitive = len(ends) > 1 or len(refs) > 1
            example = ""
            if sensitive:
                first = next(iter(outcomes))
                other = next(o for o, v in outcomes.items() if v != outcomes[first])
                example = ">".join(first) + " | " + ">".join(other)
            rows.append({"policy": pol.label, "multiset": "+".join(ms), "size": size, "orders": len(outcomes),
                         "end_states": len(ends), "refusal_sets": len(refs), "sensitive": sensitive,
                         "example": example})
    return pd.DataFrame(rows)


def df_order_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Share of order-sensitive multisets: policies as index, one column per multiset size."""
    return df.groupby(["policy", "size"], sort=False)["sensitive"].mean().unstack("size")


def plot_order_sensitivity(df: pd.DataFrame):
    """Bar chart of `df_order_summary(df)`: one group per policy, one bar per multiset size."""
    return _plot_order(df_order_summary(df))


def _plot_order(summary: pd.DataFrame):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    n = len(summary.columns)
    width = 0.8 / n
    for i, size in enumerate(summary.columns):
        ax.bar([j + i * width for j in range(len(summary))], summary[size], width, label=f"{size} attaches")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(summary))], list(summary.index))
    ax.set_ylabel("share of multisets order-sensitive")
    ax.set_ylim(0, 1)
    ax.set_title("Does the order of attaches change the outcome?")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# -- command line ---------------------------------------------------------------------------------
def add_command(sub):
    p = sub.add_parser("explore", help="every attach/detach/call sequence up to a length: shortest counterexamples")
    p.add_argument("--policy", required=True, choices=policies.NAMES)
    p.add_argument("--kernel", help="kernel version for --policy merged (default: newest behaviour)")
    p.add_argument("--max-len", type=int, default=4, help="longest sequence (default 4)")
    p.add_argument("--consumers", nargs="+", default=list(DEFAULT_CONSUMERS), metavar="CONSUMER")
    p.add_argument("--functions", type=int, choices=(1, 2), default=1)
    p.add_argument("--out", help="write each counterexample as a .fts scenario file in this directory")
    p.set_defaults(func=cmd_explore)


def cmd_explore(args) -> int:
    if args.max_len < 0 or args.max_len > 8:
        raise bad("--max-len", args.max_len, "0..8")
    pol = policies.get(args.policy, kernel=args.kernel)
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


def bench(max_len: int = 6) -> dict:
    """The issue's target, measured: length-`max_len` search over the six default consumer kinds on one
    function under each of the five designs (merged at the newest kernel), seconds per design and total."""
    out = {}
    for name in policies.NAMES:
        ex = explore(policies.get(name), max_len=max_len)
        out[name] = round(ex.seconds, 2)
    out["total"] = round(sum(out.values()), 2)
    return out
