"""Outcome metrics of randomized workloads per design, with 95% confidence intervals over workloads.

    out = Outcomes(preset="security-response", workloads=1000, events=200, seed=0)
    out.df_summary()["livepatch_refused"]      # policy x (mean, ci_low, ci_high)
    out.plot_comparison("bypass_time_share")

Every metric is computed per workload from the per-event results of an engine (``ftsim.engine`` or
``ftsim.batch``, which agree exactly), then averaged over workloads (NaN workloads, e.g. no livepatch
attach at all, are left out of that metric's mean).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import batch, engine, policy as policies, workload
from .consumers import NAMES as CONSUMERS
from .workload import bad, _number
from .flags import Errno
from .policy import Policy, pick

#: metric -> (description, unit)
METRICS = {
    "livepatch_refused": ("livepatch attaches refused for good (any error but -EAGAIN)", "share of livepatch attaches"),
    "livepatch_refused_transient": ("livepatch attaches refused with -EAGAIN (a retry may succeed)", "share of livepatch attaches"),
    "other_refused": ("attaches of every other consumer refused", "share of other attaches"),
    "told_unattached_share": ("attaches told 0 whose consumer is not attached after the step "
                              "(ToldImpliesAttached)", "share of attaches told 0"),
    "retries_per_1k": ("-EAGAIN retries inside bpf_trampoline_update()", "per 1,000 events"),
    "regenerations_per_1k": ("BPF trampoline images built", "per 1,000 events"),
    "callbacks_per_1k": ("ops_func callbacks from ftrace", "per 1,000 events"),
    "bypass_time_share": ("time a livepatch told 0 is bypassed (NoSilentBypass)", "share of livepatched function-time"),
    "bypass_call_share": ("calls that run the original body despite a live livepatch", "share of calls to livepatched functions"),
    "discard_time_share": ("time an ip write by a consumer told 0 is discarded (NoSilentDiscard)", "share of function-time with a live mutator"),
    "discard_call_share": ("calls whose mutation by a consumer told 0 is discarded", "share of calls to functions with a live mutator"),
    "order_sensitivity": ("workloads whose final state changes when adjacent attaches are swapped", "share of workloads"),
}
LP = CONSUMERS.index("livepatch")
BYP = engine.BIT["NoSilentBypass"]
DISC = engine.BIT["NoSilentDiscard"]
EAGAIN = int(Errno.EAGAIN)
Z95 = 1.959963984540054


def swapped(arrays: dict) -> dict:
    """The same workloads with each pair of events (2j, 2j+1) swapped when both are attaches of
    different (function, consumer); times stay in place."""
    code, func = arrays["code"], arrays["func"]
    T = code.shape[1] - code.shape[1] % 2
    a, b = np.s_[:, 0:T:2], np.s_[:, 1:T:2]
    att = (code % 2 == 1) & (code > 0)
    sw = att[a] & att[b] & ((code[a] != code[b]) | (func[a] != func[b]))
    out = dict(arrays)
    for key in ("code", "func", "handle"):
        x = arrays[key].copy()
        ea, eb = x[a].copy(), x[b].copy()
        x[a] = np.where(sw, eb, ea)
        x[b] = np.where(sw, ea, eb)
        out[key] = x
    return out


def _ratio(num, den):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1e-300), np.nan)


def per_workload(arrays: dict, res: dict, order_changed: np.ndarray | None = None) -> dict:
    """Metric -> array (..., workloads) from per-event results ``res`` (arrays (..., workloads, events))."""
    code, time, func = arrays["code"], arrays["time"], arrays["func"]
    T = code.shape[-1]
    I = arrays["instances"]
    att = (code % 2 == 1) & (code > 0)
    cons = np.where(code > 0, (code - 1) // 2 // I, -1)
    lp_att = att & (cons == LP)
    ot_att = att & (cons != LP)
    ret = res["ret"]
    m = {
        "livepatch_refused": _ratio((lp_att & (ret != 0) & (ret != EAGAIN)).sum(-1), lp_att.sum(-1)),
        "livepatch_refused_transient": _ratio((lp_att & (ret == EAGAIN)).sum(-1), lp_att.sum(-1)),
        "other_refused": _ratio((ot_att & (ret != 0)).sum(-1), ot_att.sum(-1)),
        "told_unattached_share": _ratio((att & (ret == 0) & (res["attached"] == 0)).sum(-1), (att & (ret == 0)).sum(-1)),
        "retries_per_1k": 1000.0 * res["retries"].sum(-1) / T,
        "regenerations_per_1k": 1000.0 * res["regenerations"].sum(-1) / T,
        "callbacks_per_1k": 1000.0 * res["callbacks"].sum(-1) / T,
    }
    call = code == 0
    viol, lp, wr = res["viol"], res["lp"], res["wr"]
    m["bypass_call_share"] = _ratio((call & (viol & BYP > 0)).sum(-1), (call & (lp > 0)).sum(-1))
    m["discard_call_share"] = _ratio((call & (viol & DISC > 0)).sum(-1), (call & (wr > 0)).sum(-1))
    counts = function_counts(arrays, res)
    dt = np.diff(time, axis=-1, append=time[..., -1:])
    tot = {k: (v * dt).sum(-1) for k, v in counts.items()}
    m["bypass_time_share"] = _ratio(tot["bypassed"], tot["livepatched"])
    m["discard_time_share"] = _ratio(tot["discarded"], tot["mutated"])
    if order_changed is not None:
        m["order_sensitivity"] = order_changed.astype(float)
    else:
        m["order_sensitivity"] = np.full(ret.shape[:-1], np.nan)
    return m


def function_counts(arrays: dict, res: dict) -> dict:
    """After each event: how many functions are livepatched, bypassed, mutated, discarded."""
    func = arrays["func"].astype(np.int64)
    shape = res["viol"].shape
    lead = int(np.prod(shape[:-1]))
    T = shape[-1]
    Fn = int(func.max()) + 1 if func.size else 1
    flags = {"livepatched": res["lp"] > 0, "bypassed": (res["viol"] & BYP) > 0,
             "mutated": res["wr"] > 0, "discarded": (res["viol"] & DISC) > 0}
    fidx = np.broadcast_to(func, shape).reshape(lead, T) + np.arange(lead)[:, None] * Fn
    out = {}
    for name, fl in flags.items():
        fl = fl.reshape(lead, T).astype(np.int16)
        cur = np.zeros(lead * Fn, np.int16)
        n = np.zeros(lead, np.int32)
        acc = np.empty((lead, T), np.int32)
        for t in range(T):
            i = fidx[:, t]
            n += fl[:, t] - cur[i]
            cur[i] = fl[:, t]
            acc[:, t] = n
        out[name] = acc.reshape(shape)
    return out


def summarize(df: pd.DataFrame, metrics=None) -> pd.DataFrame:
    """Policy x (metric, mean | ci_low | ci_high): 95% normal intervals over workloads."""
    if not isinstance(df, pd.DataFrame) or "policy" not in df.columns:
        raise bad("df", type(df).__name__, "a DataFrame with a policy column (df_workloads(), a sweep's table)")
    if metrics is not None and (isinstance(metrics, str) or not all(isinstance(m, str) for m in metrics)):
        raise bad("metrics", metrics, "a list of metric names")
    metrics = [m for m in (metrics or METRICS) if m in df.columns]
    g = df.groupby("policy", sort=False)[metrics]
    mean, sem, n = g.mean(), g.sem(), g.count()
    sem = sem.where(n > 1, 0.0).fillna(0.0)
    parts = {m: pd.DataFrame({"mean": mean[m], "ci_low": mean[m] - Z95 * sem[m],
                              "ci_high": mean[m] + Z95 * sem[m]}) for m in metrics}
    out = pd.concat(parts, axis=1)
    out.index.name = "policy"
    return out


def _policies(spec) -> list[Policy]:
    if isinstance(spec, str):
        return policies.all_policies() if spec == "all" else [policies.get(spec)]
    if isinstance(spec, Policy):
        return [spec]
    if not isinstance(spec, (list, tuple)) or not spec:
        raise bad("policies", spec, ("all", "a name", "a Policy", "a non-empty list of them"))
    out = []
    for p in spec:
        if not isinstance(p, (str, Policy)):
            raise bad("policies", p, ("a name", "a Policy") + policies.NAMES)
        out.append(p if isinstance(p, Policy) else policies.get(p))
    labels = [p.label for p in out]
    for x in labels:
        if labels.count(x) > 1:
            raise bad("policies", x, "each design (label) once")
    return out


ARRAY_KEYS = {"time": "f", "func": "i", "code": "i", "handle": "i"}


def check_arrays(arrays) -> int:
    """Columnar workloads as ``generate_arrays``/``from_frame`` make them (2-D arrays of one shape,
    codes and functions in range); returns the number of workloads."""
    if not isinstance(arrays, dict) or not set(ARRAY_KEYS) | {"instances", "functions"} <= set(arrays):
        raise bad("arrays", type(arrays).__name__, "the dict of workload.generate_arrays() or from_frame()")
    I = _number("arrays['instances']", arrays["instances"], 1, 3, integer=True)
    _number("arrays['functions']", arrays["functions"], 1, 4096, integer=True)
    shape = None
    for k, kind in ARRAY_KEYS.items():
        a = arrays[k]
        if not isinstance(a, np.ndarray) or a.ndim != 2 or a.dtype.kind not in (kind + ("u" if kind == "i" else "")):
            raise bad(f"arrays[{k!r}]", type(a).__name__ if not isinstance(a, np.ndarray) else f"{a.dtype} {a.shape}",
                      "a 2-D array (workloads, events) of " + ("floats" if kind == "f" else "integers"))
        if shape is not None and a.shape != shape:
            raise bad(f"arrays[{k!r}] shape", a.shape, f"{shape}, the shape of arrays['time']")
        shape = a.shape
    if 0 in shape:
        raise bad("arrays shape", shape, "at least one workload and one event")
    code, func = arrays["code"], arrays["func"]
    ncode = 1 + 2 * len(CONSUMERS) * I
    if code.min() < 0 or code.max() >= ncode:
        raise bad("arrays['code']", int(code.min() if code.min() < 0 else code.max()), f"codes in [0, {ncode - 1}]")
    if func.min() < 0 or func.max() >= 4096:
        raise bad("arrays['func']", int(func.min() if func.min() < 0 else func.max()), "functions in [0, 4095]")
    if not np.isfinite(arrays["time"]).all():
        raise bad("arrays['time']", "inf or nan", "finite times")
    return shape[0]


CHUNK = 2000   # workloads per batch run inside compute(): bounds the engine's temporary arrays


def _rows(arrays: dict, a: int, b: int) -> dict:
    return {k: (v[a:b] if isinstance(v, np.ndarray) else v) for k, v in arrays.items()}


def compute(arrays: dict, pols: list[Policy], engine_name: str = "batch",
            progress: bool | None = None, persist: bool = False) -> tuple[pd.DataFrame, dict]:
    """Run ``arrays`` (and the swapped variant) under ``pols``: (df_workloads, per-event results).
    More than ``CHUNK`` workloads run chunk by chunk, with a tqdm bar (``progress=None``: when chunked).
    ``persist``: the batch engine starts from the tables on disk and saves what it learnt (``ftsim.cache``)."""
    W = check_arrays(arrays)
    pols = _policies(pols)
    if engine_name not in ("batch", "reference"):
        raise bad("engine", engine_name, ("batch", "reference"))
    if W > CHUNK:
        from tqdm.auto import tqdm
        starts = range(0, W, CHUNK)
        dfs, ress = [], []
        for a in tqdm(starts, desc="workload chunks", unit="chunk", disable=progress is False):
            df, res = compute(_rows(arrays, a, a + CHUNK), pols, engine_name, persist=persist)
            df["workload"] += a
            dfs.append(df)
            ress.append(res)
        df = pd.concat(dfs).sort_values(["policy", "workload"], key=lambda c: c.map(
            [p.label for p in pols].index) if c.name == "policy" else c, kind="stable").reset_index(drop=True)
        return df, {k: np.concatenate([r[k] for r in ress], axis=1) for k in ress[0]}
    var = swapped(arrays)
    if engine_name == "batch":
        both = {k: (np.concatenate([arrays[k], var[k]]) if isinstance(arrays[k], np.ndarray) else arrays[k])
                for k in arrays}
        r = batch.run(both, pols, want_final=True, keep=W, persist=persist)
        if persist:
            batch.save_tables()
        tb = batch.tables(arrays["instances"])
        changed = batch.final_differs(tb, r["final"][:, :W], r["final"][:, W:])
        res = {k: v for k, v in r.items() if k != "final"}
    elif engine_name == "reference":
        runs = [engine.run(arrays, p, variant=var) for p in pols]
        res = {k: np.stack([x[k] for x in runs]) for k in engine.RESULT_FIELDS}
        changed = np.stack([x["order_changed"] for x in runs])
    else:
        raise bad("engine", engine_name, ("batch", "reference"))
    m = per_workload(arrays, res, changed)
    rows = {"policy": np.repeat([p.label for p in pols], W), "workload": np.tile(np.arange(W), len(pols))}
    rows.update({k: np.asarray(v).reshape(-1) for k, v in m.items()})
    return pd.DataFrame(rows), res


#: time bins of df_exposure at most (each bin scans every event once)
MAX_BINS = 10_000


class Outcomes:
    """Randomized workloads of a preset under several designs (``name = "outcomes"``)."""
    name = "outcomes"

    def __init__(self, preset="uniform", policies="all", workloads=1000, events=200, seed=0, mix=None,
                 functions=None, engine="batch", persist=True, **overrides):
        self.params = workload.resolve(preset, mix=mix, functions=functions, **overrides)
        self.policies = _policies(policies)
        if engine not in ("batch", "reference"):
            raise bad("engine", engine, ("batch", "reference"))
        workload._sizes(events, workloads)
        workloads, events = int(workloads), int(events)
        self.preset, self.workloads, self.events, self.seed, self.engine = preset, workloads, events, seed, engine
        self.arrays = workload.generate_arrays(self.params, seed, events, workloads)
        self._df, self.results = compute(self.arrays, self.policies, engine, persist=persist)

    # -- DataFrame getters -------------------------------------------------------------------------
    def df_workloads(self) -> pd.DataFrame:
        """One row per policy x workload:
          * ``policy`` (label), ``workload`` (index in the batch)
          * one column per metric in ``METRICS`` (NaN where the workload has no denominator)
        """
        return self._df.copy()

    def df_summary(self) -> pd.DataFrame:
        """Policies as index; columns (metric, ``mean`` | ``ci_low`` | ``ci_high``), 95% over workloads;
        ``df_summary()[metric]`` is that metric's table."""
        return summarize(self._df)

    def df_exposure(self, bins: int = 40) -> pd.DataFrame:
        """Exposure over time: one row per policy x time bin:
          * ``policy``, ``time`` (s, bin start)
          * ``bypassed`` share of livepatched functions whose livepatch is bypassed (all workloads)
          * ``discarded`` share of functions with a live mutator whose mutation is discarded
        """
        bins = _number("bins", bins, 1, MAX_BINS, integer=True)
        counts = function_counts(self.arrays, self.results)
        time = self.arrays["time"]
        edges = np.linspace(0, np.median(time[:, -1]), bins, endpoint=False)
        pos = np.stack([(time <= e).sum(1) - 1 for e in edges], axis=1)       # (W, bins)
        valid = pos >= 0
        pos = np.maximum(pos, 0)
        rows = []
        W = time.shape[0]
        for pi, p in enumerate(self.policies):
            g = {k: np.where(valid, v[pi][np.arange(W)[:, None], pos], 0).sum(0) for k, v in counts.items()}
            rows.append(pd.DataFrame({"policy": p.label, "time": edges,
                                      "bypassed": _ratio(g["bypassed"], g["livepatched"]),
                                      "discarded": _ratio(g["discarded"], g["mutated"])}))
        return pd.concat(rows, ignore_index=True)

    def df_heat(self, policy: str = "merged") -> pd.DataFrame:
        """Per function under one policy (index ``function`` f0, f1, ...):
          * ``calls``, ``bypassed_calls``, ``discarded_calls`` summed over workloads
          * ``attaches``, ``refused`` summed over workloads
        """
        pi = pick(self.policies, policy)
        r = {k: v[pi] for k, v in self.results.items()}
        code, func = self.arrays["code"], self.arrays["func"]
        Fn = self.params.functions
        call, att = code == 0, (code % 2 == 1) & (code > 0)

        def per_func(mask):
            return np.bincount(func[mask].astype(np.int64), minlength=Fn)[:Fn]
        df = pd.DataFrame({"calls": per_func(call), "bypassed_calls": per_func(call & (r["viol"] & BYP > 0)),
                           "discarded_calls": per_func(call & (r["viol"] & DISC > 0)),
                           "attaches": per_func(att), "refused": per_func(att & (r["ret"] != 0))},
                          index=pd.Index([f"f{i}" for i in range(Fn)], name="function"))
        return df

    # -- Plotting methods ----------------------------------------------------------------------------
    def plot_comparison(self, metric: str = "livepatch_refused"):
        """Bars with 95% CIs, one per policy, for one metric; returns the Figure."""
        from . import plots
        if not isinstance(metric, str) or metric not in METRICS:
            raise bad("metric", metric, list(METRICS))
        return plots._plot_comparison(self.df_summary()[metric], metric, self._what(), unit=METRICS[metric][1])

    def plot_exposure(self):
        """Share of livepatched functions bypassed (and of mutations discarded) over time, per policy."""
        from . import plots
        return plots._plot_exposure(self.df_exposure(), self._what())

    def plot_cost_safety(self):
        """Regenerations + retries per 1,000 events against bypass exposure, one point per policy."""
        from . import plots
        return plots._plot_cost_safety(self.df_summary(), self._what())

    def plot_heat_strip(self, policy: str = "merged"):
        """Per-function strip: share of calls bypassed or discarded, functions by popularity."""
        from . import plots
        return plots._plot_heat_strip(self.df_heat(policy), policy, self._what())

    def _what(self) -> str:
        return f"{self.preset}, {self.workloads} workloads x {self.events} events, seed {self.seed}"
