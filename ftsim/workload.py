"""Randomized workloads: seeded streams of attach, detach and call events over a fleet of functions.

A workload is a sequence of events in time.  Arrivals come at ``rate`` per second; an arrival is a
call with probability ``call_share``, else an attach of a consumer drawn from ``mix`` on a function
drawn with Zipf popularity (``zipf`` exponent over ``functions`` functions).  Each attached handle
lives an exponential time (mean ``lifetimes[consumer]``, ``null``: until the end) and is then
detached.  A livepatch arrival may open a burst (mean size ``livepatch_burst``) whose other
livepatches follow at mean gaps of ``burst_gap`` seconds.  At most ``max_live`` handles are live in a
workload and at most ``instances`` of one consumer on one function; an arrival that finds no room is
a call on its function instead.  A detach names the handle of an earlier attach (refused or not: the
detach of a refused attach is a no-op that the model answers -ENOENT).

Workload ``j`` of a batch with seed ``s`` uses the random stream ``SeedSequence([s, j])``, so it is
the same workload whatever the batch size, chunking or executor: ``generate(seed=s)`` is workload 0.

Columnar form (what the engines read), arrays of shape (workloads, events):
  * ``time`` float64 seconds; ``func`` int16 function index (``f{func}``);
  * ``code`` int16: 0 call, ``1 + 2*slot`` attach, ``2 + 2*slot`` detach, ``slot = consumer*instances + instance``;
  * ``handle`` int32 handle number within the workload (``h{handle}``), -1 for calls.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .consumers import CATALOG, NAMES as CONSUMERS
from .checks import _bound, _number, bad, shown  # noqa: F401 (the package's checked input)
from .errors import FtsimError
from .frames import frame, from_frame  # noqa: F401 (API)
from .paths import DATA

PRESET_DIR = DATA / "presets"
KEYS = ("description", "functions", "zipf", "call_share", "rate", "livepatch_burst", "burst_gap",
        "max_live", "instances", "lifetimes", "mix")
LIVEPATCH = CONSUMERS.index("livepatch")
NC = len(CONSUMERS)
DRAWS = 6   # uniforms per event and workload
#: a preset file larger than this is refused before it is read
PRESET_MAX_BYTES = 2**20


def _load_presets() -> tuple[dict[str, dict], dict[str, str]]:
    """Every preset file: (name -> preset, name -> error of a file that does not load).  One bad file
    costs only its own preset: using it gives its error, every other preset works."""
    out, errors = {}, {}
    for path in sorted(PRESET_DIR.glob("*.json")):
        try:
            out[path.stem] = load_preset(path)
        except FtsimError as e:
            errors[path.stem] = str(e)
    return out, errors


_PRESETS: tuple | None = None


def presets() -> dict[str, dict]:
    """The presets of ``data/presets/`` (loaded on first use, then kept)."""
    global _PRESETS
    if _PRESETS is None:
        _PRESETS = _load_presets()
    return _PRESETS[0]


def preset_errors() -> dict[str, str]:
    """Preset files that do not load: name -> the one-line error."""
    presets()
    return _PRESETS[1]


def __getattr__(name):                  # PRESETS is loaded when first read, not at import
    if name == "PRESETS":
        return presets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"key {k!r} given twice")
        d[k] = v
    return d


def load_preset(path) -> dict:
    """Read and validate one preset file: exactly the keys in KEYS (a JSON object of at most
    PRESET_MAX_BYTES, UTF-8, no key twice)."""
    from .guarded import read_text
    path = Path(path)
    text = read_text(path, "preset", PRESET_MAX_BYTES).removeprefix("\ufeff")
    try:
        d = json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as e:
        raise FtsimError(f"preset: {str(path)!r} is not valid JSON ({' '.join(str(e).split())[:120]})") from None
    if not isinstance(d, dict):
        raise bad("preset", str(path), "a JSON object")
    check_preset(d, path.name)
    return d


def check_preset(d, name: str = "preset") -> Params:
    """Validate a preset dict (what a preset file holds): exactly the keys in KEYS, a one-line
    description, valid parameters; returns its Params.  Errors name the preset."""
    if not isinstance(d, Mapping):
        raise bad(f"preset {name}", type(d).__name__, "a mapping with the keys " + ", ".join(KEYS))
    keys = set(d)
    if not all(isinstance(k, str) for k in keys):
        raise bad(f"preset {name} key", next(k for k in keys if not isinstance(k, str)), KEYS)
    missing, extra = set(KEYS) - keys, keys - set(KEYS)
    if missing:
        raise FtsimError(f"preset {name}: missing key(s) {sorted(missing)}; required: {', '.join(KEYS)}")
    if extra:
        raise bad(f"preset {name} key", sorted(extra)[0], KEYS)
    if not isinstance(d["description"], str) or "\n" in d["description"]:
        raise bad(f"preset {name} description", d["description"], "one line of text")
    try:
        return params(**{k: v for k, v in d.items() if k != "description"})
    except FtsimError as e:
        raise FtsimError(f"preset {name}: {e}") from None


@dataclass(frozen=True)
class Params:
    """Validated generator parameters, with the derived tables the generator reads."""
    functions: int
    zipf: float
    call_share: float
    rate: float
    livepatch_burst: float
    burst_gap: float
    max_live: int
    instances: int
    lifetimes: tuple            # mean lifetime per consumer index (inf: never detached)
    mix: tuple                  # weight per consumer index

    @property
    def func_cdf(self) -> np.ndarray:
        p = 1.0 / np.arange(1, self.functions + 1) ** self.zipf
        return np.cumsum(p / p.sum())

    @property
    def mix_cdf(self) -> np.ndarray:
        w = np.array(self.mix, float)
        return np.cumsum(w / w.sum())


#: the shortest mean time between events or lifetime (seconds): below, event times overflow or stall
MIN_TIME = 1e-9


def params(functions=16, zipf=1.1, call_share=0.4, rate=1.0, livepatch_burst=1.0, burst_gap=0.05,
           max_live=12, instances=1, lifetimes=None, mix=None) -> Params:
    """Validate every generator parameter (one-line FtsimError naming the field) and build Params."""
    functions = _number("functions", functions, 1, 4096, integer=True)
    zipf = _number("zipf", zipf, 0.0, 5.0)
    call_share = _number("call_share", call_share, 0.0, 1.0)
    if call_share == 1.0:
        raise bad("call_share", call_share, "a number in [0, 1) (1 leaves no attach)")
    rate = _number("rate", rate, MIN_TIME, 1e9)                  # 5e-324 would make every time inf
    livepatch_burst = _number("livepatch_burst", livepatch_burst, 1.0, 1000.0)
    burst_gap = _number("burst_gap", burst_gap, MIN_TIME, 1e9)
    max_live = _number("max_live", max_live, 1, 64, integer=True)
    instances = _number("instances", instances, 1, 3, integer=True)
    if lifetimes is None or (isinstance(lifetimes, Mapping) and not lifetimes):
        lifetimes = {"default": 30.0}
    if not isinstance(lifetimes, Mapping):
        raise bad("lifetimes", lifetimes, "a mapping consumer -> mean seconds (null: never detached)")
    life = dict(lifetimes)
    default = life.pop("default", 30.0)
    for k in life:
        if not isinstance(k, str) or k not in CATALOG:
            raise bad("lifetimes consumer", k, ("default",) + CONSUMERS)
    lt = []
    for c in CONSUMERS:
        v = life.get(c, default)
        lt.append(math.inf if v is None else _number(f"lifetimes[{c}]", v, MIN_TIME, 1e12))
    if mix is None:
        mix = {c: 1.0 for c in CONSUMERS}
    if not isinstance(mix, Mapping) or not mix:
        raise bad("mix", mix, "a non-empty mapping consumer -> weight")
    w = {}
    for k, v in mix.items():
        if not isinstance(k, str) or k not in CATALOG:
            raise bad("mix consumer", k, CONSUMERS)
        w[CATALOG[k].name] = _number(f"mix[{k}]", v, 0.0, 1e9)
    weights = tuple(w.get(c, 0.0) for c in CONSUMERS)
    if sum(weights) <= 0:
        raise bad("mix", mix, "at least one consumer with a weight above 0")
    return Params(functions, zipf, call_share, rate, livepatch_burst, burst_gap, max_live, instances,
                  tuple(lt), weights)


def resolve(preset="uniform", **overrides) -> Params:
    """The preset's parameters with overrides (None values are ignored) applied, validated."""
    known = presets()
    if not isinstance(preset, str) or preset not in known:
        if isinstance(preset, str) and preset in preset_errors():
            raise FtsimError(preset_errors()[preset])
        raise bad("preset", preset, sorted(known))
    d = {k: v for k, v in known[preset].items() if k != "description"}
    for k, v in overrides.items():
        if k not in d:
            raise bad("workload parameter", k, sorted(d))
        if v is not None:
            d[k] = v
    return params(**d)


#: events generated in one call at most (about 100 bytes each while generating: 2 GB)
MAX_EVENTS = 2 * 10**7


def _sizes(n_events, workloads):
    _number("n_events", n_events, 1, 10**7, integer=True)
    _number("workloads", workloads, 1, 10**8, integer=True)


def generate_arrays(p: Params, seed: int = 0, n_events: int = 200, workloads: int = 1, start: int = 0) -> dict:
    """Workloads ``start .. start+workloads-1`` in columnar form (see the module docstring)."""
    if not isinstance(p, Params):
        raise bad("params", type(p).__name__, "a workload.Params (from workload.resolve() or workload.params())")
    n_events = _number("n_events", n_events, 1, 10**7, integer=True)
    workloads = _number("workloads", workloads, 1, 10**8, integer=True)
    seed = _number("seed", seed, 0, 2**63 - 1, integer=True)
    start = _number("start", start, 0, 2**63 - 1 - workloads, integer=True)
    if n_events * workloads > MAX_EVENTS:
        raise bad("workloads x n_events", n_events * workloads, f"at most {MAX_EVENTS:,} events in one batch "
                  "(run them in chunks: ftsim sweep)")
    W, T, F, I, H = workloads, n_events, p.functions, p.instances, p.max_live
    U = np.stack([np.random.default_rng([seed, start + w]).random((T, DRAWS), dtype=np.float32)
                  for w in range(W)], axis=1).astype(np.float64)          # (T, W, DRAWS)
    U = np.clip(U, 1e-12, 1 - 1e-12)
    fcdf, mcdf = p.func_cdf, p.mix_cdf
    life = np.array(p.lifetimes)
    ar = np.arange(W)
    time = np.empty((W, T)); func = np.empty((W, T), np.int16)
    code = np.empty((W, T), np.int16); handle = np.empty((W, T), np.int32)
    expiry = np.full((W, H), np.inf); occ = np.zeros((W, H), bool); s_code = np.zeros((W, H), np.int16)
    s_func = np.zeros((W, H), np.int16); s_hdl = np.zeros((W, H), np.int32)
    busy = np.zeros((W, F * NC), np.uint8)           # bit i: instance i of (func, consumer) is live
    nxt = -np.log(U[0, :, 0]) / p.rate
    burst = np.zeros(W, np.int64)
    nh = np.zeros(W, np.int32)
    lp_mean_extra = p.livepatch_burst - 1.0
    for t in range(T):
        u = U[t]
        j = expiry.argmin(axis=1)
        e = expiry[ar, j]
        dep = e <= nxt
        now = np.where(dep, e, nxt)
        time[:, t] = now
        # arrivals
        f = np.minimum(np.searchsorted(fcdf, u[:, 1]), F - 1)
        c = np.minimum(np.searchsorted(mcdf, u[:, 2]), NC - 1)
        in_burst = burst > 0
        c = np.where(in_burst, LIVEPATCH, c)
        is_call = (u[:, 3] < p.call_share) & ~in_burst
        m = busy[ar, f * NC + c]
        inst = np.zeros(W, np.int64)
        for i in range(I - 1, -1, -1):
            inst = np.where((m >> i) & 1 == 0, i, inst)
        full = ((m & ((1 << I) - 1)) == (1 << I) - 1) | occ.all(axis=1)
        att = ~dep & ~is_call & ~full
        # departures: free the slot
        dc = s_code[ar, j]
        df_ = s_func[ar, j]
        dslot = (dc - 1) // 2
        di = dslot % I
        dcons = dslot // I
        if dep.any():
            r = ar[dep]
            busy[r, df_[dep] * NC + dcons[dep]] &= ~(1 << di[dep]).astype(np.uint8)
            expiry[r, j[dep]] = np.inf
            occ[r, j[dep]] = False
        # attaches: take a free slot
        acode = 1 + 2 * (c * I + inst)
        if att.any():
            r = ar[att]
            free = (~occ[r]).argmax(axis=1)
            occ[r, free] = True
            lt = -np.log(u[att, 4]) * life[c[att]]
            expiry[r, free] = now[att] + lt
            s_code[r, free] = acode[att]; s_func[r, free] = f[att]; s_hdl[r, free] = nh[att]
            busy[r, f[att] * NC + c[att]] |= (1 << inst[att]).astype(np.uint8)
        func[:, t] = np.where(dep, df_, f)
        code[:, t] = np.where(dep, dc + 1, np.where(att, acode, 0))
        handle[:, t] = np.where(dep, s_hdl[ar, j], np.where(att, nh, -1))
        nh += att
        # bursts and the next arrival
        arrived = ~dep
        new_burst = arrived & ~in_burst & att & (c == LIVEPATCH) & (lp_mean_extra > 0)
        if lp_mean_extra > 0:
            extra = np.floor(np.log(u[:, 5]) / np.log(lp_mean_extra / (lp_mean_extra + 1))).astype(np.int64)
        else:
            extra = np.zeros(W, np.int64)
        burst = np.where(new_burst, extra, np.where(arrived & in_burst, burst - 1, burst))
        gap = np.where(burst > 0, p.burst_gap, 1.0 / p.rate)
        nxt = np.where(arrived, now - np.log(u[:, 0]) * gap, nxt)
    return {"time": time, "func": func, "code": code, "handle": handle, "instances": I,
            "functions": F}


def generate(preset: str = "uniform", seed: int = 0, n_events: int = 200, **overrides) -> pd.DataFrame:
    """One seeded workload as a tidy DataFrame: ``time`` (s), ``function``, ``consumer`` (None for a
    call), ``op`` (attach | detach | call), ``handle`` (None for a call)."""
    p = resolve(preset, **overrides)
    return frame(generate_arrays(p, seed, n_events, 1))


