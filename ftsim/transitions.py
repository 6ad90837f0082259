"""Transition tables of the batch engine: canonical one-function states and what each event does to them.

A state is ``state.encode()`` of a one-function ``Model`` (function ``f``) in canonical form: handles
named ``consumer#instance``, the shared ops held by ``f`` alone or not at all.  What other functions
contribute is a *context*, recreated in the one-function model by phantoms before the event runs:

* kprobe events (15), for the shared kprobe ops the event touches (the one its aggregate is disarmed
  from, else the one it arms on), from the counts elsewhere: 0 nobody else; 1-4 registered and one
  more count elsewhere, 5-8 two or more, each 1 + (it was registered after f's klp_ops) + 2 * (after
  f's trampoline ops) - a phantom holder ``zk`` of that age; not registered (an aggregate was disarmed
  from the wrong ops): 9 a negative count, 10 / 11 one / more counts of probes armed on it unregistered,
  12 none but such probes in its filter, 13 the same when f's arming registers the ops over them (the
  engine then moves each of those functions as ``regover`` says); 14 f's probe holds the registered ops
  alone while other functions' ips stay in its filter (a failed disarm): f's disarm unregisters it over them;
* with one shared BPF direct ops (7.x), events that may modify a trampoline (5): 0 no other
  function's trampoline is dangerous (CALL_ORIG without ORIG_STACK on an IPMODIFY record), else the
  first one in address order, before or after ``f`` (phantom ``e`` / ``g``), with its SHARE bit.

A transition (``tid``) holds the next state, the step's result record, and what the engine's registers
need: the kprobe ops slot it takes or drops, whether klp_ops or the trampoline ops registered, where
each SELF scan stopped (other functions' safe trampolines add callbacks), whether the dangerous
phantom was poked (its SHARE set), whether ftrace was killed or the kernel oopsed, and whether the
step left the kprobe counts irregular (the row is then recomputed by the reference engine).
"""
from __future__ import annotations

import numpy as np

from . import kprobes, state as kstate
from .consumers import BPF, CATALOG, KLP, KPROBE, LIST, NAMES as CONSUMERS
from .engine import BODY, decode as decode_code, live_flags, src_code, step_result, viol_bits
from .flags import TrampFlag
from .invariants import check
from .mechanisms import OPS_FUNCS
from .model import Model
from .policy import Policy
from .phantoms import AFTER, BEFORE, F, _install_danger, _install_kprobe, _kheld, _phantom_tramp, canonicalise
from .state import Counters

REFCOUNT = 1 << list(__import__("ftsim.invariants", fromlist=["INVARIANTS"]).INVARIANTS).index("RefCountNonNegative")
KOPS = kprobes.KOPS
#: the result record of a transition, packed so that one gather fetches it
REC = np.dtype([("ret", "<i2"), ("attached", "i1"), ("callbacks", "i1"), ("retries", "i1"),
                ("regenerations", "i1"), ("viol", "<i2"), ("lp", "i1"), ("wr", "i1"), ("body", "i1"),
                ("src", "i1"), ("pad", "V4")])
#: per transition, for the registers (int8 each)
AUX = ("dcnt0", "dcnt1", "reg0", "reg1", "klpch", "trch", "stop_f", "stop_d", "full", "poke", "kills", "oopses",
       "irregular", "ddanger", "dipmt", "dfilt0", "dfilt1", "unreg0", "unreg1")
KCTX = 15
#: per state (int16 each): the call results, then what contexts and registers read
ST = ("viol", "lp", "wr", "body", "src", "agg", "klp", "trg", "danger", "share", "ipmt", "dead", "oops", "kslot",
      "kheld0", "kheld1")


class Tables:
    """Transition tables of all policies seen so far (state ids are global) for one ``instances``."""
    REC, AUX, ST = REC, AUX, ST            # what the arrays hold (ftsim.tablesio reads them here)

    def __init__(self, instances: int):
        self.I = instances
        self.NCODE = 1 + 2 * len(CONSUMERS) * instances
        self.snap: list[tuple] = []
        self.pol: list[int] = []
        self.policies: list[Policy] = []
        self.index: dict = {}
        self.init: dict[Policy, int] = {}
        self.st = np.zeros((len(ST), 0), np.int16)
        self.final: list = []
        self.killmap = np.zeros(0, np.int32)
        self.pokemap = np.zeros(0, np.int32)
        self.xmaps: dict = {}                         # (kind, slot) -> state -> (state, callbacks, retries, regen, ok)
        self.keymap = np.zeros(0, np.int32)          # state * NCODE + code -> tid, -1 unknown, <= -2 block
        self.ctxn = np.zeros(0, np.int8)             # contexts of a sensitive key (5 or 25)
        self.ctxtids = np.zeros(0, np.int32)         # blocks of tids per context (-1 unknown)
        self.nblocks = 0
        self.next = np.zeros(0, np.int32)            # per tid: next state id
        self.rec = np.zeros(0, REC)
        self.aux = np.zeros((len(AUX), 0), np.int8)
        self.ntid = 0
        self.transitions = 0
        cons = [decode_code(c, instances)[1] for c in range(1, self.NCODE)]
        self.code_kprobe = np.array([False] + [CATALOG[c].mechanism == KPROBE for c in cons])
        self.code_post = np.array([False] + [CATALOG[c].post_handler for c in cons])
        self.code_danger = np.array([False] + [CATALOG[c].mechanism in (BPF, KLP) or CATALOG[c].post_handler
                                               for c in cons])
        self.code_passive = np.array([False] + [CATALOG[c].mechanism == LIST for c in cons])
        self.touch = np.zeros(0, bool)              # per tid: any register to update

    # -- plain arrays (ftsim.cache; ftsim.tablesio does the work) ----------------------------------
    def to_arrays(self) -> dict:
        from .tablesio import to_arrays
        return to_arrays(self)

    @classmethod
    def from_arrays(cls, arrays: dict) -> "Tables":
        from .tablesio import from_arrays
        return from_arrays(cls, arrays)

    # -- states ----------------------------------------------------------------------------------
    def initial(self, policy: Policy) -> int:
        if policy not in self.init:
            self.init[policy] = self._intern(Model(policy))
        return self.init[policy]

    def _policy_index(self, p: Policy) -> int:
        try:
            return self.policies.index(p)
        except ValueError:
            self.policies.append(p)
            return len(self.policies) - 1

    def _intern(self, m: Model) -> int:
        key = (self._policy_index(m.policy), kstate.encode(m.kernel, rename=False))
        sid = self.index.get(key)
        if sid is not None:
            return sid
        sid = len(self.snap)
        self.index[key] = sid
        self.snap.append(key[1])
        self.pol.append(key[0])
        if sid >= self.st.shape[1]:
            self._grow_states()
        k = m.kernel
        out = m.simulate(F)
        lp, wr = live_flags(m, F)
        entry = k.probes.get(F)
        tr = k.tramps.get(F)
        rec = k.records.get(F)
        ipm = bool(rec and rec.ipmodify and tr is not None and tr.registered and m.policy.shared_direct_ops)
        danger = ipm and TrampFlag.CALL_ORIG in tr.flags and TrampFlag.ORIG_STACK not in tr.flags
        trg = tr is not None and tr.ops.enabled and not m.policy.shared_direct_ops
        self.st[:, sid] = (viol_bits(check(m, F, out)), lp, wr, BODY[out.body_ran], src_code(m, out.result_from),
                           -1 if entry is None else KOPS.index(entry[0]), F in k.klp, trg, danger,
                           bool(tr is not None and TrampFlag.SHARE_IPMODIFY in tr.flags), ipm, k.dead,
                           k.oops is not None, -1 if entry is None else KOPS.index(kprobes.disarm_ops(k, F)),
                           *(_kheld(k, n) for n in KOPS))
        att = frozenset(h for h in k.live_on(F) if m.attached(h))
        self.final.append((att, int(self.st[0, sid])))
        return sid

    def _grow_states(self):
        cap = max(64, 2 * self.st.shape[1])
        st = np.zeros((len(ST), cap), np.int16)
        st[:, :self.st.shape[1]] = self.st
        self.st = st
        for name in ("killmap", "pokemap"):
            old = getattr(self, name)
            new = np.full(cap, -1, np.int32)
            new[:old.size] = old
            setattr(self, name, new)
        old = self.keymap
        self.keymap = np.full(cap * self.NCODE, -1, np.int32)
        self.keymap[:old.size] = old
        ctxn = np.zeros(cap * self.NCODE, np.int8)
        ctxn[:self.ctxn.size] = self.ctxn
        self.ctxn = ctxn

    def model(self, sid: int) -> Model:
        p = self.policies[self.pol[sid]]
        return Model(p, kernel=kstate.decode(self.snap[sid], p, OPS_FUNCS))

    # -- keys and contexts -----------------------------------------------------------------------
    def nctx(self, sid: int, code: int) -> int:
        p = self.policies[self.pol[sid]]
        n = KCTX if self.code_kprobe[code] else 1
        if p.shared_direct_ops and self.code_danger[code]:
            n *= 5
        return n

    def resolve(self, keys: np.ndarray) -> None:
        """Make every key known: a tid, or a block of per-context tids (allocated, filled on demand)."""
        for key in np.unique(keys[self.keymap.take(keys) == -1]).tolist():
            s, code = divmod(key, self.NCODE)
            n = self.nctx(s, code)
            if n == 1:
                self.keymap[key] = self._fill(s, code, 0)
            else:
                off = self.nblocks
                self.nblocks += n
                if self.nblocks > self.ctxtids.size:
                    grown = np.full(max(1024, 2 * self.nblocks), -1, np.int32)
                    grown[:self.ctxtids.size] = self.ctxtids
                    self.ctxtids = grown
                self.keymap[key] = -2 - off
                self.ctxn[key] = n

    def fill_sub(self, subs: np.ndarray, keys: np.ndarray, ctxs: np.ndarray):
        """Compute the unknown per-context tids ``subs`` (block offset + context) of ``keys``."""
        todo = self.ctxtids.take(subs) < 0
        seen = set()
        for sub, key, c in zip(subs[todo].tolist(), keys[todo].tolist(), ctxs[todo].tolist()):
            if sub in seen:
                continue
            seen.add(sub)
            s, code = divmod(key, self.NCODE)
            self.ctxtids[sub] = self._fill(s, code, c)

    def kill(self, sids: np.ndarray) -> np.ndarray:
        """The same states on a killed ftrace (ftrace_disabled set by a call on another function)."""
        for s in np.unique(sids[self.killmap.take(sids) < 0]).tolist():
            m = self.model(s)
            m.kernel.dead = True
            self.killmap[s] = self._intern(m)
        return self.killmap.take(sids)

    def poke(self, sids: np.ndarray) -> np.ndarray:
        """The same states after another function's modify sent SELF to f's dangerous trampoline."""
        for s in np.unique(sids[self.pokemap.take(sids) < 0]).tolist():
            m = self.model(s)
            m.kernel.tramps[F].flags |= TrampFlag.SHARE_IPMODIFY
            self.pokemap[s] = self._intern(m)
        return self.pokemap.take(sids)

    def cross(self, kind: str, slot: int, sids: np.ndarray) -> np.ndarray:
        """Another function (un)registered the shared kprobe ops ``slot`` over f: ``unreg`` (f's probe
        loses it, DISABLE_PEER to f's direct ops) or ``regover`` (f's probe, armed on it while it was
        unregistered, gains it: PEER and the gate for f).  Returns (state, callbacks, retries,
        regenerations, ok) per state; ok 0: the change met something this engine does not carry."""
        table = self.xmaps.setdefault((kind, slot), {})
        out = np.zeros((5, sids.size), np.int32)
        for i, sid in enumerate(sids.tolist()):
            if sid not in table:
                m = self.model(sid)
                k, ctx = m.kernel, Counters()
                ops = kprobes.shared_ops(k, KOPS[slot])
                rec = k.records.get(F)
                if kind == "unreg":
                    from .ftrace import unregister_ftrace_function as act
                else:
                    from .ftrace import register_ftrace_function as act
                ok = not (kind == "regover" and rec is not None and rec.direct is not None)
                ret = act(k, ops, ctx) if ok else 0
                ok = ok and ret == 0 and not ctx.irregular and not ctx.warns and not k.oops and not (
                    m.policy.shared_direct_ops and ctx.passes)
                table[sid] = (self._intern(m), ctx.callbacks, ctx.retries, ctx.regenerations, int(ok))
            out[:, i] = table[sid]
        return out

    # -- one transition ----------------------------------------------------------------------------
    def _fill(self, s: int, code: int, ctx: int) -> int:
        p = self.policies[self.pol[s]]
        if self.code_passive[code] and not p.again_clears_func:
            return self._passive(s, code)
        m = self.model(s)
        k = m.kernel
        op, consumer, inst = decode_code(code, self.I)
        kctx, dctx = (ctx // 5, ctx % 5) if self.nctx(s, code) == KCTX * 5 else (
            (ctx, 0) if self.code_kprobe[code] else (0, ctx))
        if self.code_kprobe[code]:
            slot = self.st[13, s] if self.st[13, s] >= 0 else int(self.code_post[code])
            if kctx:
                _install_kprobe(k, KOPS[slot], kctx)
        if dctx:
            _install_danger(k, dctx)
        before = {n: (k.kprobe_cnt.get(n, 0), kprobes.shared_ops(k, n).enabled) for n in KOPS}
        klp0, tr0 = self.st[6, s], self.st[7, s]
        name = f"{consumer}#{inst}" if op != "call" else None
        refused = None
        if op == "attach":
            st = m.attach(consumer, F, name)
        elif op == "detach":
            h = k.handles[name]
            refused = name if (h.detached and h.told) else None
            st = m.detach(name)
        else:
            st = m.call(F)
        passes = m.last_ctx.passes
        ph = _phantom_tramp(k)
        poked = bool(dctx in (1, 3) and ph is not None and TrampFlag.SHARE_IPMODIFY in ph.flags)
        after = {n: (k.kprobe_cnt.get(n, 0), kprobes.shared_ops(k, n).enabled) for n in KOPS}
        irregular = m.last_ctx.irregular
        canonicalise(m, refused)
        ns = self._intern(m)
        tid = self._new_tid()
        self.next[tid] = ns
        res = step_result(m, st)
        self.rec[tid] = (*res, b"")
        klp1, tr1 = self.st[6, ns], self.st[7, ns]
        dc = [max(-1, min(1, after[n][0] - before[n][0])) for n in KOPS]
        rg = [0 if after[n][1] == before[n][1] else (1 if after[n][1] else 2) for n in KOPS]
        self.aux[:, tid] = (*dc, *rg,
                            1 if klp1 > klp0 else (2 if klp0 > klp1 else 0),
                            1 if tr1 > tr0 else (2 if tr0 > tr1 else 0),
                            passes.count(F), sum(p in (BEFORE, AFTER) for p in passes), passes.count(""),
                            poked, bool(self.st[11, ns]) and not bool(self.st[11, s]), bool(self.st[12, ns]),
                            irregular, int(self.st[8, ns]) - int(self.st[8, s]), int(self.st[10, ns]) - int(self.st[10, s]),
                            int(self.st[14, ns] > 0) - int(self.st[14, s] > 0), int(self.st[15, ns] > 0) - int(self.st[15, s] > 0),
                            *(m.last_ctx.unreg_under == n for n in KOPS))
        self.touch[tid] = bool(self.aux[:, tid].any())
        self.transitions += 1
        return tid

    def _passive(self, s: int, code: int) -> int:
        """A passive list consumer (no IPMODIFY, no DIRECT) on a kernel whose ftrace cannot be killed:
        it conflicts with nothing and nothing a step reports depends on it (the record count aside),
        so its events leave the state as it is with constant results."""
        tid = self._new_tid()
        self.next[tid] = s
        viol, lp, wr = (int(v) for v in self.st[:3, s])
        self.rec[tid] = (0, code % 2, 0, 0, 0, viol & ~REFCOUNT, lp, wr, -1, -1, b"")
        self.transitions += 1
        return tid

    def _new_tid(self) -> int:
        tid = self.ntid
        self.ntid += 1
        if tid >= self.next.size:
            cap = max(1024, 2 * self.next.size)
            for name in ("next", "rec"):
                old = getattr(self, name)
                new = np.zeros(cap, old.dtype)
                new[:old.size] = old
                setattr(self, name, new)
            aux = np.zeros((len(AUX), cap), np.int8)
            aux[:, :self.aux.shape[1]] = self.aux
            self.aux = aux
            touch = np.zeros(cap, bool)
            touch[:self.touch.size] = self.touch
            self.touch = touch
        return tid

    def final_ids(self) -> np.ndarray:
        """Per state id: an id of its semantic final state (equal ids: same attachments and breaks)."""
        seen: dict = {}
        return np.array([seen.setdefault(x, len(seen)) for x in self.final], np.int64)


__all__ = ["Tables", "REC", "AUX", "ST", "canonicalise", "Counters"]
