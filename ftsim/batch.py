"""The batch engine: memoised transition tables over a canonical per-function state, stepped with numpy
across many workloads and policies at once; exactly equivalent to the reference engine (ftsim.engine).

Why it is exact.  Everything the model keeps about one function (its record, handles, klp func_stack,
kprobe aggregate, BPF trampoline) changes only on events on that function, except through the two
shared kprobe ops.  Those couple functions in two ways, which the engine carries as per-workload
registers (``cnt``: how many functions hold each shared ops; ``regt``: the event at which it was
last registered) and per-function ``klpt`` (the event at which its klp_ops was registered, NEVER while
it has none):
  * the first probe anywhere registers the ops (PEER callbacks run); later probes only add a filter
    ip (the PEER gap), and the last one unregisters it;
  * ops order is global registration order, so whether the kprobe ops runs before or after the
    function's klp_ops (the oldest ip writer wins) depends on when it was registered elsewhere.
A kprobe event therefore carries a context: 0 nobody else holds the ops; 1 others hold it and it is
older than this function's klp_ops (or there is none); 2 others hold it and it is newer.

A state is a snapshot of a one-function ``Model`` (function ``f``) in canonical form (handles named
``consumer#instance``, shared kprobe ops held by ``f`` alone or unregistered); an unknown transition
(state, event, context) is computed by copying the snapshot, recreating the context with a phantom
holder ``g`` of the shared ops, applying the event through ``Model`` and canonicalising the result.
Tables grow on demand and are kept per process (``TABLES``) and on disk.  Besides the next state and
the result record of each key (state x K + code x 3 + context), ``Tables._derive`` keeps per key what the
registers need (which ops a probe event concerns, which ops the function stops or starts holding, what
happens to its klp_ops), so that a step reads them with one gather each instead of recomputing them.
"""
from __future__ import annotations

import pickle
import time

import numpy as np

from . import kprobes
from .errors import FtsimError
from .consumers import CATALOG, KPROBE, LIST, NAMES as CONSUMERS
from .engine import BODY, RESULT_FIELDS, decode, live_flags, src_code, viol_bits
from .invariants import check
from .model import Model
from .policy import Policy

NCTX = 3
KOPS = (kprobes.FTRACE_OPS, kprobes.IPMODIFY_OPS)
F, G = "f", "g"


#: the arrays of ``Tables`` with one entry per key
PER_KEY = ("next", "tab", "kx", "kheld", "kdec", "kinc", "klpch")


class Tables:
    """Transition tables of all policies seen so far (state ids are global) for one ``instances``."""

    def __init__(self, instances: int):
        self.I = instances
        self.NCODE = 1 + 2 * len(CONSUMERS) * instances
        self.K = self.NCODE * NCTX
        self.snap: list[bytes] = []       # pickled canonical one-function models
        self.index: dict = {}
        self.init: dict[Policy, int] = {}
        cap = 64
        self.next = np.full(cap * self.K, -1, np.int32)      # per key: next state's first key (-1 unknown)
        self.tab = np.zeros(cap * self.K, REC)                # every result of a transition, 16 bytes
        self.st = np.zeros((7, cap), np.int16)                # viol lp wr body src agg klp
        # per key, for the shared kprobe ops registers (slots 0, 1: the two ops; 2: nothing):
        self.kx = np.zeros(cap * self.K, np.int8)       # the ops a probe event on this state concerns
        self.kheld = np.zeros(cap * self.K, bool)       # f's aggregate holds a shared ops already
        self.kdec = np.zeros(cap * self.K, np.int8)     # slot f stops holding (2: none, no change)
        self.kinc = np.zeros(cap * self.K, np.int8)     # slot f starts holding (2: none, no change)
        self.klpch = np.zeros(cap * self.K, np.int8)    # klp_ops: 1 registered, 2 gone, 0 neither
        self.final: list = []                                 # semantic final state per state id
        ck = np.zeros(self.NCODE, bool)
        cops = np.zeros(self.NCODE, np.int8)
        lpc = np.zeros(self.NCODE, bool)
        for code in range(1, self.NCODE):
            _, c, _ = decode(code, instances)
            ck[code] = CATALOG[c].mechanism == KPROBE
            cops[code] = 1 if CATALOG[c].post_handler else 0
            lpc[code] = c == "livepatch"
        self.code_kprobe, self.code_ops, self.code_lp = ck, cops, lpc
        # passive list consumers (mechanism LIST) never conflict and change nothing a step reports:
        # their events leave the state as it is, with constant results (ret 0, no callbacks)
        self.passive = np.array([code > 0 and CATALOG[decode(code, instances)[1]].mechanism == LIST
                                 for code in range(self.NCODE)])
        self.transitions = 0

    # -- states ----------------------------------------------------------------------------------
    def initial(self, policy: Policy) -> int:
        if policy not in self.init:
            self.init[policy] = self._intern(Model(policy))
        return self.init[policy]

    def first_key(self, policy: Policy) -> int:
        """The key of the policy's initial state with code 0, context 0: how ``run`` stores a state."""
        return self.initial(policy) * self.K

    def _intern(self, m: Model) -> int:
        key = (m.policy, fingerprint(m))
        sid = self.index.get(key)
        if sid is not None:
            return sid
        sid = len(self.snap)
        self.index[key] = sid
        self.snap.append(pickle.dumps(m, protocol=pickle.HIGHEST_PROTOCOL))
        if sid >= self.st.shape[1]:
            self._grow()
        out = m.simulate(F)
        lp, wr = live_flags(m, F)
        entry = m.kernel.probes.get(F)
        agg = -1 if entry is None else KOPS.index(entry[0])
        self.st[:, sid] = (viol_bits(check(m, F, out)), lp, wr, BODY[out.body_ran], src_code(m, out.result_from),
                           agg, F in m.kernel.klp)
        self._derive(np.arange(sid * self.K, (sid + 1) * self.K))
        att = frozenset(h for h in m.kernel.live_on(F) if m.attached(h))
        self.final.append((att, int(self.st[0, sid])))
        return sid

    def _grow(self):
        cap = self.st.shape[1] * 2
        if cap * self.K >= 2**31:
            raise FtsimError(f"more than {2**31 // self.K:,} states: the batch engine's int32 keys overflow")
        for name in PER_KEY:
            old = getattr(self, name)
            new = np.full(cap * self.K, -1, old.dtype) if name == "next" else np.zeros(cap * self.K, old.dtype)
            new[:old.size] = old
            setattr(self, name, new)
        st = np.zeros((7, cap), np.int16)
        st[:, :self.st.shape[1]] = self.st
        self.st = st

    def __getstate__(self):
        """Saved without the unused capacity (the next new state grows the arrays again)."""
        d = dict(self.__dict__)
        n = len(self.snap)
        for name in PER_KEY:
            d[name] = d[name][:n * self.K].copy()
        d["st"] = d["st"][:, :n].copy()
        return d

    def final_ids(self) -> np.ndarray:
        """Per state id: an id of its semantic final state (equal ids: same attachments and breaks)."""
        ids = getattr(self, "_final_ids", None)
        if ids is None or len(ids) < len(self.final):
            seen = getattr(self, "_final_seen", {})
            extra = [seen.setdefault(x, len(seen)) for x in self.final[0 if ids is None else len(ids):]]
            self._final_seen = seen
            self._final_ids = ids = np.concatenate([ids if ids is not None else np.zeros(0, np.int64),
                                                    np.array(extra, np.int64)])
        return ids

    # -- transitions -----------------------------------------------------------------------------
    def fill(self, keys: np.ndarray):
        """Compute the unknown transitions ``keys`` (state*K + code*NCTX + ctx) through the Model."""
        keys = np.unique(keys)
        for key in keys:
            key = int(key)
            if self.next[key] >= 0:
                continue
            s, rest = divmod(key, self.K)
            code, ctx = divmod(rest, NCTX)
            if self.passive[code]:          # no state change, constant results (see __init__)
                ns, res = s, (0, code % 2, 0, 0, 0)
            else:
                m = pickle.loads(self.snap[s])
                res, refused_detach = self._apply(m, code, ctx)
                canonicalise(m, refused_detach)
                ns = self._intern(m)
            self.next[key] = ns * self.K
            viol, lp, wr, body, src = (int(v) for v in self.st[:5, ns])
            if code:
                body = src = -1
            self.tab[key] = (*res, viol, lp, wr, body, src, b"")
            self.transitions += 1
        self._derive(keys)

    def _derive(self, keys: np.ndarray):
        """The per-key tables ``run`` reads for the shared-ops registers, from ``st`` and ``next``:
        for every key of a known state the ops slot it concerns and whether f holds one already; for
        every known transition the slots f stops and starts holding and what happens to klp_ops."""
        s, code = np.divmod(keys, self.K)
        code //= NCTX
        agg, klp = self.st[5].take(s), self.st[6].take(s)
        self.kx[keys] = np.where(agg < 0, self.code_ops.take(code), agg)
        self.kheld[keys] = agg >= 0
        known = self.next.take(keys) >= 0
        keys, agg, klp = keys[known], agg[known], klp[known]
        ns = self.next.take(keys) // self.K
        agg1, klp1 = self.st[5].take(ns), self.st[6].take(ns)
        moved = agg != agg1                                  # slot 2 (none, or no change) -> scratch
        self.kdec[keys] = np.where(moved, agg % 3, 2)
        self.kinc[keys] = np.where(moved, agg1 % 3, 2)
        self.klpch[keys] = np.where(klp1 > klp, 1, np.where(klp > klp1, 2, 0))

    def _apply(self, m: Model, code: int, ctx: int):
        op, consumer, inst = decode(code, self.I)
        k = m.kernel
        if op == "call":
            return (-1, -1, 0, 0, 0), None
        name = f"{consumer}#{inst}"
        if ctx and CATALOG[consumer].mechanism == KPROBE:
            entry = k.probes.get(F)
            ops_name = entry[0] if entry else KOPS[int(CATALOG[consumer].post_handler)]
            ops = kprobes._ops(k, ops_name)
            if F in ops.funcs:
                k.kprobe_cnt[ops_name] += 1                  # someone else holds it too
            else:                                            # registered elsewhere, filter ip only
                ops.enabled, ops.funcs, k.kprobe_cnt[ops_name] = True, {G}, 1
                klp = k.klp.get(F)
                ops.seq = 0.5 if klp is None else klp[0].seq + (-0.5 if ctx == 1 else 0.5)
        if op == "attach":
            st = m.attach(consumer, F, name)
            refused = None
        else:
            h = k.handles[name]
            refused = name if (h.detached and h.told) else None
            st = m.detach(name)
        return (st.ret, int(bool(st.attached)), st.callbacks, st.retries, st.regenerations), refused


def canonicalise(m: Model, refused_detach: str | None):
    """Drop finished handles and the phantom holder; shared kprobe ops held by ``f`` alone or unregistered."""
    k = m.kernel
    for name in [n for n, h in k.handles.items() if (h.detached and not h.told) or n == refused_detach]:
        del k.handles[name]
    entry = k.probes.get(F)
    for name, ops in k.kprobe_ops.items():
        if entry is not None and entry[0] == name:
            ops.enabled, ops.funcs, k.kprobe_cnt[name] = True, {F}, 1
        else:
            ops.enabled, ops.funcs, k.kprobe_cnt[name], ops.seq = False, set(), 0, -1
    k.records.pop(G, None)
    m.steps = 0
    # orders nothing reported depends on: non-overriding kprobe members, livepatch instances (the
    # result names the consumer), BPF programs other than skipping fmod_ret (first one wins)
    if entry is not None:
        ov = [h for h in entry[1] if CATALOG[k.handles[h].consumer].overrides]
        entry[1][:] = ov + sorted(h for h in entry[1] if h not in ov)
    if F in k.klp:
        k.klp[F][1].sort()
    tr = k.tramps.get(F)
    if tr is not None:
        tr.progs = _prog_order(tr.progs)
        tr.live_progs = _prog_order(tr.live_progs)


def _prog_order(progs):
    skip = [p for p in progs if p.skips]
    return skip + sorted((p for p in progs if not p.skips), key=lambda p: (p.kind, p.handle))


def _ops_key(o):
    return (o.name, o.flags.value, o.enabled, o.has_ops_func)


def fingerprint(m: Model) -> tuple:
    """Everything about function ``f`` that can change what a later step reports."""
    k = m.kernel
    rec = k.records.get(F)
    if rec is not None:
        writers = sorted((o for o in rec.ops if o.name.startswith(("klp_ops", "kprobe_"))), key=lambda o: o.seq)
        r = (tuple(sorted(_ops_key(o) for o in rec.ops)), tuple(o.name for o in writers), rec.ipmodify,
             rec.direct.name if rec.direct is not None else None, rec.modified, rec.stale_direct,
             rec.shared_ipmodify)
    else:
        r = None
    handles = tuple(sorted((n, h.consumer, h.told, h.detached,
                            _ops_key(h.ops) if h.ops is not None else None) for n, h in k.handles.items()))
    probes = k.probes.get(F)
    klp = k.klp.get(F)
    tr = k.tramps.get(F)
    trk = None
    if tr is not None:
        trk = (_ops_key(tr.ops), tuple((p.handle, p.kind, p.skips) for p in tr.progs), tr.flags.value,
               None if tr.live_flags is None else tr.live_flags.value,
               tuple((p.handle, p.kind, p.skips) for p in tr.live_progs))
    return (r, handles, tuple(k.live.get(F, {})), tuple(sorted(k.unarmed)),
            None if probes is None else (probes[0], tuple(probes[1])),
            None if klp is None else (_ops_key(klp[0]), tuple(klp[1])), trk)


TABLES: dict[int, Tables] = {}
"""The tables of this process, per ``instances`` (built on demand; ``ftsim.cache`` persists them)."""


def tables(instances: int, persist: bool = False) -> Tables:
    """This process's tables for ``instances``; with ``persist``, first loaded from ``ftsim.cache``
    when this process has none yet."""
    if instances not in TABLES:
        from . import cache
        TABLES[instances] = (cache.load(instances) if persist else None) or Tables(instances)
        TABLES[instances].saved = TABLES[instances].transitions
    return TABLES[instances]


def save_tables() -> list:
    """Write every table that grew since it was loaded or saved (``ftsim.cache.save``); returns the paths."""
    from . import cache
    written = []
    for tb in TABLES.values():
        if tb.transitions != getattr(tb, "saved", -1):
            path = cache.save(tb)
            if path is not None:
                tb.saved = tb.transitions
                written.append(path)
    return written


def run(arrays: dict, policies: list[Policy], want_final: bool = False, keep: int | None = None,
        persist: bool = False) -> dict:
    """All workloads of ``arrays`` under every policy: dict field -> (policies, workloads, events) array
    (the reference's ``RESULT_FIELDS``); with ``want_final``, ``final`` (policies, workloads, functions)
    state ids whose ``Tables.final`` entries give what is attached where at the end.  ``keep``: decode
    the per-event results of the first ``keep`` workloads only.

    One row per (policy, workload); per event one state gather, one table gather and one scatter over
    all rows, int32 throughout.  Kprobe events (a few per cent) also read and update the shared-ops
    registers; everything about them that does not depend on the state is prepared before the loop.
    ``persist``: start from the tables ``ftsim.cache`` keeps on disk (saving is ``save_tables()``)."""
    tb = tables(arrays["instances"], persist)
    func, code = arrays["func"], arrays["code"]
    W, T = code.shape
    P = len(policies)
    Fn = int(max(arrays["functions"], int(func.max()) + 1 if func.size else 1))
    R = P * W
    if R * Fn >= 2**31:
        raise FtsimError(f"workloads x functions x designs = {R * Fn:,} per chunk; the batch engine indexes "
                         f"with int32: run fewer workloads per chunk (at most {2**31 // (P * Fn):,})")
    init = np.array([tb.first_key(p) for p in policies], np.int32)
    S = np.repeat(init, W * Fn)                   # (row, function) -> first key of its state (state x K)
    funcT = np.ascontiguousarray(func.T, dtype=np.int32)                   # (T, W)
    codeT = np.ascontiguousarray(code.T, dtype=np.int32)
    c3 = codeT * NCTX                                                      # the same for every policy
    base = np.arange(0, R * Fn, Fn, dtype=np.int32).reshape(P, W)          # row r's first function
    i = np.empty((P, W), np.int32)
    # kprobe and livepatch events, by step (offsets ko, lo): their rows, and for kprobe events the
    # row's register base and the (row, function) index
    (ko, krow, kidx), (lo, lrow, lidx) = _rows(tb.code_kprobe.astype(np.int8) + 2 * tb.code_lp, codeT, funcT,
                                               P, Fn)
    kreg = 3 * krow
    NEVER = np.iinfo(np.int32).max
    cnt = np.zeros(3 * R, np.int32)           # per (row, ops slot): functions holding it (slot 2: scratch)
    regt = np.full(3 * R, -1, np.int32)       # per (row, ops slot): event at which it was last registered
    klpt = np.full(R * Fn, NEVER, np.int32)   # per (row, function): event at which its klp_ops was
    keys = np.empty((T, R), np.int32)         # registered (NEVER while it has none)
    K = tb.K
    bar, started = None, time.perf_counter()
    for t in range(T):
        np.add(base, funcT[t], out=i)
        iv = i.reshape(R)
        k = keys[t]
        kw = k.reshape(P, W)
        np.add(S.take(iv).reshape(P, W), c3[t], out=kw)
        a, b = ko[t], ko[t + 1]
        if a < b:                       # context of a kprobe event: 0 alone, 1 others older, 2 newer
            kr, kg = krow[a:b], kreg[a:b]
            k0 = k.take(kr)
            ci = kg + tb.kx.take(k0)
            others = cnt.take(ci) > tb.kheld.take(k0)
            newer = regt.take(ci) >= klpt.take(kidx[a:b])
            kk = k0 + np.left_shift(others, newer, dtype=np.int32)
            k.put(kr, kk)
        ns = tb.next.take(k)
        if ns.min() < 0:
            tb.fill(k[ns < 0])
            ns = tb.next.take(k)
            if bar is None and time.perf_counter() - started > DISCOVERY_BAR_AFTER:
                bar = _discovery_bar(T, t)
        if bar is not None:
            bar.update()
            bar.set_postfix(states=len(tb.snap), refresh=False)
        S.put(iv, ns)
        if a < b:                       # the aggregate took or dropped a shared ops: registers follow
            dn = kg + tb.kdec.take(kk)      # (slot 2 of each row: no change; one event per row and
            cnt.put(dn, cnt.take(dn) - 1)   # step, so the indices are unique)
            up = kg + tb.kinc.take(kk)
            cu = cnt.take(up)
            regt.put(up.compress(cu == 0), t)
            cnt.put(up, cu + 1)
        a, b = lo[t], lo[t + 1]
        if a < b:                       # klp_ops registered or gone
            c = tb.klpch.take(k.take(lrow[a:b]))
            if c.any():
                li = lidx[a:b]
                klpt.put(li, np.where(c == 0, klpt.take(li), np.where(c == 1, t, NEVER)))
    if bar is not None:
        bar.close()
    keep = W if keep is None else keep
    keys = keys.T.reshape(P, W, T)[:, :keep]
    return _decode(tb, keys, S.reshape(P, W, Fn) // K if want_final else None)


#: seconds of discovering transitions after which ``run`` shows a progress bar (on a terminal only)
DISCOVERY_BAR_AFTER = 1.0


def _discovery_bar(total: int, done: int):
    """A tqdm bar over the events of a run that is discovering transitions.  On a terminal only
    (``disable=None``): a notebook's stored outputs must not depend on whether the tables were warm."""
    from tqdm import tqdm
    return tqdm(total=total, initial=done, desc="discovering transitions", unit="event", leave=False,
                disable=None)


def _rows(kind: np.ndarray, codeT: np.ndarray, funcT: np.ndarray, P: int, Fn: int):
    """For kinds 1 and 2 of ``kind`` (per event code), the events of that kind in all ``P`` policies,
    grouped by step: (offsets per step as a list, rows, (row, function) indices), int32."""
    T, W = codeT.shape
    kc = kind.take(codeT).ravel()
    flat = np.flatnonzero(kc)
    which = kc.take(flat)
    out = []
    for k in (1, 2):
        f = flat.compress(which == k)
        t, w = np.divmod(f, W)
        p = np.arange(0, P * W, W, dtype=np.int32)
        rows = (w.astype(np.int32)[:, None] + p).ravel()
        idx = ((w * Fn + funcT.ravel().take(f)).astype(np.int32)[:, None] + p * Fn).ravel()
        out.append(((np.searchsorted(t, np.arange(T + 1)) * P).tolist(), rows, idx))
    return out


#: every per-event result of a transition, packed so that one gather fetches them all
REC = np.dtype([("ret", "<i2"), ("attached", "i1"), ("callbacks", "i1"), ("retries", "i1"),
                ("regenerations", "i1"), ("viol", "i1"), ("lp", "i1"), ("wr", "i1"), ("body", "i1"),
                ("src", "i1"), ("pad", "V5")])


def _decode(tb: Tables, keys: np.ndarray, final) -> dict:
    g = tb.tab[np.ascontiguousarray(keys)]
    out = {name: g[name] for name in RESULT_FIELDS}
    if final is not None:
        out["final"] = final
    return out


def final_differs(tb: Tables, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(policies, workloads) bool: the final states of two runs differ on some function."""
    fa = tb.final_ids()
    return (fa[a] != fa[b]).any(axis=-1)
