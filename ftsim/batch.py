"""The batch engine: memoised transition tables over canonical one-function states (ftsim.transitions),
stepped with numpy across many workloads and policies at once; exactly equivalent to the reference
engine (ftsim.engine).

Why it is exact.  Everything the model keeps about one function changes only on events on that
function, except through what functions share; the engine carries those as per-workload registers:

* the two shared kprobe ops: ``cnt`` (the kernel's count, which an aggregate disarmed from the wrong
  ops can drive negative: RefCountNonNegative is read from it), ``en`` (registered) and ``regt``
  (when last registered), and per function ``klpt`` / ``trt`` (when its klp_ops / trampoline ops
  registered): a kprobe event's context;
* ftrace killed (``dead``: each function's state is moved to its killed form before its next event)
  and a kernel oops (``oops_at``: nothing runs after it);
* one BPF direct ops for all trampolines (7.x): ``n_danger`` / ``n_ipmt`` count the functions whose
  trampoline is dangerous (CALL_ORIG without ORIG_STACK on an IPMODIFY record) or on an IPMODIFY
  record at all; an event that may modify a trampoline is looked up with the first dangerous one as
  context, SELF sent to it sets its SHARE (the engine applies the same change to that function), and
  every SELF answered by another function's safe trampoline adds a callback.

A transition that leaves the kprobe counts irregular (an aggregate disarmed from the ops it is not
armed on, a failed disarm after ftrace_kill()) marks its workload: such rows are rerun by the
reference engine (``fallback`` counts them).
"""
from __future__ import annotations

import time

import numpy as np

from .engine import RESULT_FIELDS, run_one
from .errors import FtsimError
from .policy import Policy
from .engine import BIT, NOTRUN
from .transitions import AUX, KCTX, REC, ST, Tables

REFCOUNT = BIT["RefCountNonNegative"]

A = {name: i for i, name in enumerate(AUX)}
S_ = {name: i for i, name in enumerate(ST)}
NEVER = np.iinfo(np.int32).max

TABLES: dict[int, Tables] = {}
"""The tables of this process, per ``instances`` (built on demand; ``ftsim.cache`` persists them)."""


def tables(instances: int, persist: bool = False) -> Tables:
    """This process's tables for ``instances``; with ``persist``, first loaded from ``ftsim.cache``."""
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


#: seconds of discovering transitions after which ``run`` shows a progress bar (on a terminal only)
DISCOVERY_BAR_AFTER = 1.0


def _discovery_bar(total: int, done: int):  # pragma: no mutate block (how the bar looks, not what is computed)
    from tqdm import tqdm
    return tqdm(total=total, initial=done, desc="discovering transitions", unit="event", leave=False,
                disable=None)


def _bar_step(bar, tb, T: int, t: int, known: int, started: float):  # pragma: no mutate block (the bar, not results)
    """After event ``t``: the discovery bar, opened once this run has discovered for DISCOVERY_BAR_AFTER s."""
    if bar is None and tb.transitions > known and time.perf_counter() - started > DISCOVERY_BAR_AFTER:
        bar = _discovery_bar(T, t)
    if bar is not None:
        bar.update()
        bar.set_postfix(states=len(tb.snap), refresh=False)
    return bar


def run(arrays: dict, policies: list[Policy], want_final: bool = False, keep: int | None = None,
        persist: bool = False) -> dict:
    """All workloads of ``arrays`` under every policy: dict field -> (policies, workloads, events) array
    (the reference's ``RESULT_FIELDS``), ``fallback`` (policies, workloads) rows rerun by the reference
    engine; with ``want_final``, ``final`` (policies, workloads, functions) state ids.  ``keep``:
    decode the per-event results of the first ``keep`` workloads only."""
    tb = tables(arrays["instances"], persist)
    func, code = arrays["func"], arrays["code"]
    W, T = code.shape
    P = len(policies)
    Fn = int(max(arrays["functions"], int(func.max()) + 1 if func.size else 1))
    R = P * W
    if R * Fn >= 2**31:
        raise FtsimError(f"workloads x functions x designs = {R * Fn:,} per chunk; the batch engine indexes "
                         f"with int32: run fewer workloads per chunk (at most {2**31 // (P * Fn):,})")
    S = np.repeat(np.array([tb.initial(p) for p in policies], np.int32), W * Fn)
    funcT = np.ascontiguousarray(func.T, dtype=np.int32)
    codes = np.tile(np.ascontiguousarray(code.T, dtype=np.int32), (1, P))      # (T, R)
    base = np.arange(0, R * Fn, Fn, dtype=np.int32)
    shared = np.repeat(np.array([p.shared_direct_ops for p in policies]), W)
    cnt = np.zeros((R, 2), np.int32)
    fcnt = np.zeros((R, 2), np.int32)            # functions in each shared kprobe ops' filter
    en = np.zeros((R, 2), bool)
    regt = np.full((R, 2), -1, np.int32)
    negative = {}
    negnow = np.zeros(0, np.int64)
    klpt = np.full(R * Fn, NEVER, np.int32)
    trt = np.full(R * Fn, NEVER, np.int32)
    dead = np.zeros(R, bool)
    oops_at = np.full(R, NEVER, np.int32)
    fallback = np.zeros(R, bool)
    n_danger = np.zeros(R, np.int32)
    n_ipmt = np.zeros(R, np.int32)
    tids = np.empty((T, R), np.int32)
    cb_add = {}
    bar, started = None, time.perf_counter()
    known = tb.transitions                         # a bar only when this run discovers
    for t in range(T):
        iv = base + np.tile(funcT[t], P)
        s = S.take(iv)
        if dead.any():                              # a killed ftrace reaches each function lazily
            d = np.flatnonzero(dead & (tb.st[S_["dead"]].take(s) == 0))
            if d.size:
                s[d] = tb.kill(s[d])
                S[iv[d]] = s[d]
        live = oops_at > t                          # after a workload's oops nothing runs in it
        c = np.where(live, codes[t], 0)
        key = s * tb.NCODE + c
        km = tb.keymap.take(key)
        if (km == -1).any():
            tb.resolve(key)
            km = tb.keymap.take(key)
        tid = km.copy()
        sens = np.flatnonzero(km <= -2)
        d1 = np.full(R, -1, np.int32)
        if sens.size:
            ctx, d1[sens], odd = _contexts(tb, sens, s[sens], c[sens], iv[sens], S, base, Fn, cnt, fcnt, en,
                                           regt, klpt, trt, n_danger, shared)
            fallback[sens[odd]] = True
            sub = -2 - km[sens] + ctx
            tid[sens] = tb.ctxtids.take(sub)
            if (tid[sens] < 0).any():
                tb.fill_sub(sub, key[sens], ctx)
                tid[sens] = tb.ctxtids.take(sub)
        tids[t] = np.where(live, tid, -1)
        ns = tb.next.take(tid)
        hit = np.flatnonzero(live & tb.touch.take(tid))
        if hit.size:                                # the few events that move a register
            aux = tb.aux[:, tid.take(hit)]
            _registers(tb, aux, hit, iv.take(hit), s.take(hit), ns.take(hit), t, S, base, Fn, d1, cnt, fcnt, en,
                       regt, klpt, trt, n_danger, n_ipmt, dead, oops_at, fallback, cb_add, negative)
            if (aux[A["dcnt0"]] | aux[A["dcnt1"]]).any():
                negnow = np.flatnonzero((cnt < 0).any(axis=1))
        if negnow.size:
            negative[t] = negnow
        S[iv] = np.where(live, ns, s)
        bar = _bar_step(bar, tb, T, t, known, started)
    if bar is not None:
        bar.close()
    keep = W if keep is None else keep
    out = _decode(tb, tids, codes, cb_add, negative, P, W, T, keep)
    fb = fallback.reshape(P, W)
    for pi, w in zip(*np.nonzero(fb[:, :keep])):
        one = run_one(policies[pi], func[w], code[w], arrays["handle"][w], arrays["instances"])
        for k in RESULT_FIELDS:
            out[k][pi, w] = one[k]
    out["fallback"] = fb
    if want_final:
        out["final"] = S.reshape(P, W, Fn)
    return out


def _contexts(tb, row, s, c, iv, S, base, Fn, cnt, fcnt, en, regt, klpt, trt, n_danger, shared):
    """Per sensitive row: its context (kprobe x danger, see ftsim.transitions), the first dangerous
    other function (-1: none), and whether the kprobe registers are in a state no context describes
    (the row then goes to the reference engine)."""
    fidx = iv - base[row]
    kctx = np.zeros(row.size, np.int32)
    odd = np.zeros(row.size, bool)
    kp = np.flatnonzero(tb.code_kprobe.take(c))
    if kp.size:
        sk = s[kp]
        ks = tb.st[S_["kslot"]].take(sk)
        slot = np.where(ks >= 0, ks, tb.code_post.take(c[kp]).astype(np.int16)).astype(np.int32)
        kh = np.where(slot == 0, tb.st[S_["kheld0"]].take(sk), tb.st[S_["kheld1"]].take(sk))
        own = (kh > 0).astype(np.int32)
        r = row[kp]
        others = cnt[r, slot] - own
        hothers = fcnt[r, slot] - own
        e = en[r, slot]
        rt = regt[r, slot]
        pos = (rt > klpt.take(iv[kp])) + 2 * (rt > trt.take(iv[kp]))
        arming = (c[kp] % 2 == 1) & (tb.st[S_["agg"]].take(sk) < 0)
        off = ~e & (kh != 1)
        over = off & (others == 0) & (hothers > 0) & arming
        k = np.select([(others == 0) & (hothers == 0) & (e == (kh == 1)),
                       e & (kh == 1) & (others == 0) & (hothers > 0),
                       e & (kh != 2) & (others >= 1) & (hothers >= others),
                       off & (others <= -1), off & (others >= 1),
                       off & (others == 0) & (hothers > 0) & ~arming, over],
                      [0, 14, 1 + pos + 4 * (others >= 2), 9, 10 + (others >= 2), 12, 13], -1)
        for j in np.flatnonzero(over):                    # registering over unregistered probes elsewhere
            held = _held_elsewhere(tb, S, base[r[j]], Fn, fidx[kp[j]], slot[j], 2)
            if not tb.cross("regover", int(slot[j]), S.take(base[r[j]] + held))[4].all():
                k[j] = -1
        odd[kp] = k < 0
        kctx[kp] = np.maximum(k, 0)
    dctx = np.zeros(row.size, np.int32)
    d1 = np.full(row.size, -1, np.int32)
    dg = np.flatnonzero(shared[row] & tb.code_danger.take(c)
                        & (n_danger[row] - tb.st[S_["danger"]].take(s) > 0))
    if dg.size:
        states = S[base[row[dg]][:, None] + np.arange(Fn)]
        danger = tb.st[S_["danger"]].take(states).astype(bool)
        danger[np.arange(dg.size), fidx[dg]] = False
        first = danger.argmax(axis=1)
        share = tb.st[S_["share"]].take(states[np.arange(dg.size), first])
        dctx[dg] = 1 + 2 * (first < fidx[dg]) + (share > 0)
        d1[dg] = first
    n = tb.ctxn.take(s * tb.NCODE + c)
    ctx = np.where(n == KCTX * 5, kctx * 5 + dctx, np.where(tb.code_kprobe.take(c), kctx, dctx))
    return ctx.astype(np.int32), d1, odd


def _held_elsewhere(tb, S, b, Fn, fidx, slot, kind) -> np.ndarray:
    """Function indexes of row base ``b`` other than ``fidx`` whose kheld for ``slot`` is ``kind``."""
    states = S[b:b + Fn]
    kh = tb.st[S_[f"kheld{int(slot)}"]].take(states)
    idx = np.flatnonzero(kh == kind)
    return idx[idx != fidx]


def _cross(tb, kind, slot, rows_x, iv, S, base, Fn, adds, t, fallback, need):
    """Another function's probes gain or lose the shared kprobe ops ``slot`` with this step: move their
    states, add their callbacks to the step's counts (all rows at once)."""
    at = base[rows_x][:, None] + np.arange(Fn, dtype=np.int32)              # (rows, Fn) state positions
    kh = tb.st[S_[f"kheld{int(slot)}"]].take(S.take(at))
    mask = (kh == need) & (at != iv[:, None])
    if not mask.any():
        return
    who, _ = np.nonzero(mask)
    pos = at[mask]
    res = tb.cross(kind, slot, S.take(pos))
    S[pos] = res[0]
    bad = res[4] == 0
    if bad.any():
        fallback[rows_x[np.unique(who[bad])]] = True
    for field, k in (("callbacks", 1), ("retries", 2), ("regenerations", 3)):
        v = np.bincount(who, weights=res[k], minlength=rows_x.size).astype(np.int32)
        nz = np.flatnonzero(v)
        if nz.size:
            adds.setdefault(t, []).append((rows_x[nz], field, v[nz]))


def _safe_callbacks(tb, rows_p, aux, fidx, S, base, Fn, first):
    """SELF callbacks answered by other functions' safe trampolines: each scan visits the safe ones
    before where it stopped (f, the first dangerous one, or the end)."""
    states = S[base[rows_p][:, None] + np.arange(Fn)]
    st_ipmt = tb.st[S_["ipmt"]].take(states).astype(bool)
    st_danger = tb.st[S_["danger"]].take(states).astype(bool)
    idx = np.arange(Fn)
    safe = st_ipmt & ~st_danger & (idx != fidx[:, None])
    before_f = (safe & (idx < fidx[:, None])).sum(1)
    total = safe.sum(1)
    before_d = (safe & (idx < np.where(first < 0, Fn, first)[:, None])).sum(1)
    return (aux[A["stop_f"]] * before_f + aux[A["stop_d"]] * before_d + aux[A["full"]] * total).astype(np.int32)


def _registers(tb, aux, hit, iv, s, ns, t, S, base, Fn, d1, cnt, fcnt, en, regt, klpt, trt, n_danger, n_ipmt,
               dead, oops_at, fallback, cb_add, negative):
    """Rows ``hit`` took a transition that moves registers (``aux``: its AUX columns)."""
    for slot in (0, 1):
        cnt[hit, slot] += aux[A[f"dcnt{slot}"]]
        fcnt[hit, slot] += aux[A[f"dfilt{slot}"]]
        g = aux[A[f"reg{slot}"]]
        reg, unreg = hit[g == 1], hit[g == 2]
        en[reg, slot] = True
        regt[reg, slot] = t
        en[unreg, slot] = False
    for arr, col in ((klpt, "klpch"), (trt, "trch")):
        ch = aux[A[col]]
        m = ch > 0
        arr[iv[m]] = np.where(ch[m] == 1, t, NEVER)
    n_danger[hit] += aux[A["ddanger"]]
    n_ipmt[hit] += aux[A["dipmt"]]
    scan = (aux[A["stop_f"]] | aux[A["stop_d"]] | aux[A["full"]]) > 0
    p = np.flatnonzero(scan & (n_ipmt[hit] - tb.st[S_["ipmt"]].take(ns) > 0))
    if p.size:
        rows_p = hit[p]
        cb_add.setdefault(t, []).append((rows_p, "callbacks", _safe_callbacks(tb, rows_p, aux[:, p],
                                                                            iv[p] - base[rows_p], S, base, Fn,
                                                                            d1[rows_p])))
    for slot in (0, 1):
        u = np.flatnonzero(aux[A[f"unreg{slot}"]] > 0)
        if u.size:
            _cross(tb, "unreg", slot, hit[u], iv[u], S, base, Fn, cb_add, t, fallback, 1)
        g = np.flatnonzero((aux[A[f"reg{slot}"]] == 1) & (aux[A[f"dfilt{slot}"]] > 0))
        if g.size:                                  # f's arming registered the ops: over others too
            _cross(tb, "regover", slot, hit[g], iv[g], S, base, Fn, cb_add, t, fallback, 2)
    poked = hit[aux[A["poke"]] > 0]
    if poked.size:
        at = base[poked] + d1[poked]
        S[at] = tb.poke(S.take(at))
    dead[hit[aux[A["kills"]] > 0]] = True
    oo = hit[aux[A["oopses"]] > 0]
    oops_at[oo] = np.minimum(oops_at[oo], t)
    fallback[hit[aux[A["irregular"]] > 0]] = True


def _decode(tb, tids, codes, cb_add, negative, P, W, T, keep) -> dict:
    """Per-event results from the transition ids (-1: after the workload's oops: nothing ran);
    RefCountNonNegative is kernel-wide: it comes from the count registers, not from the transition."""
    t3 = tids.T.reshape(P, W, T)[:, :keep]
    g = tb.rec[np.maximum(t3, 0)]
    out = {name: g[name].astype(np.int32) for name in RESULT_FIELDS}
    out["viol"] &= ~REFCOUNT
    for t, rows_n in negative.items():
        pi, w = np.divmod(rows_n, W)
        m = w < keep
        out["viol"][pi[m], w[m], t] |= REFCOUNT
    notrun = t3 < 0
    if notrun.any():
        call = (codes.T.reshape(P, W, T)[:, :keep] == 0)
        for name in RESULT_FIELDS:
            out[name][notrun] = 0
        out["ret"][notrun & ~call] = NOTRUN
        out["ret"][notrun & call] = -1
        out["attached"][notrun & call] = -1
        out["body"][notrun] = np.where(call[notrun], -2, -1)
        out["src"][notrun] = -1
    for t, items in cb_add.items():
        for rows_p, field, add in items:
            pi, w = np.divmod(rows_p, W)
            m = w < keep
            out[field][pi[m], w[m], t] += add[m]
    return out


def final_differs(tb: Tables, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(policies, workloads) bool: the final states of two runs differ on some function."""
    fa = tb.final_ids()
    return (fa[a] != fa[b]).any(axis=-1)


__all__ = ["run", "tables", "save_tables", "final_differs", "REC", "NOTRUN"]
