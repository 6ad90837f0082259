"""A real kernel's observations (data/kernel/observed-<release>.jsonl, written by `make kernel-lab`) held
against the model's `merged` policy at that kernel's version, field by field.

A difference between the two is either a *lab limitation* -- listed in data/kernel/known-differences.csv
under one of the fixed categories of `LIMITATIONS`, and confirmed by the observation itself (`_holds`) --
or a difference the model has to answer for.  `explain()` is the one definition of an explained difference:
tests/test_kernel_agreement.py and notebook 09 both use it.
"""
from __future__ import annotations

import csv
import json
import re
from functools import lru_cache
from pathlib import Path

import pandas as pd

from . import policy, scenario, versions
from .functions import DATA

ROOT = DATA.parent
FIELDS = ("ret", "record", "attached", "body_ran", "result_from")
KNOWN = DATA / "kernel" / "known-differences.csv"
FINDINGS = DATA / "kernel" / "findings"

#: The only reasons a difference may be accepted.  Each is a limit of the lab, never of the model, and
#: each can be checked against the observation of its file (`_holds`): a row whose category the
#: observation does not show is not an explanation.
LIMITATIONS = {
    "not-built": "a consumer of the file is not built into this kernel (its CONFIG_ option is off): the lab "
                 "records its attach as not run, the model attaches it, and the file's later steps differ",
    "not-in-btf": "the function is not in this kernel's BTF: BPF tracing programs do not load on it "
                  "(-ESRCH), the model attaches them",
    "one-module": "the lab has a fixed number of modules per consumer kind (lab/src/mod/Kbuild) and one "
                  "tracer instance: a further handle of that kind is not run",
    "crash-point": "the guest crashed (oops or panic) in this file: the step it died in, and how far a "
                   "crashing file gets, vary from run to run",
}


def paths() -> list[Path]:
    return sorted((DATA / "kernel").glob("observed-*.jsonl"))


def load(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def release_of(path) -> str:
    return Path(path).name[len("observed-"):-len(".jsonl")]


def kernel_version(release: str) -> str:
    """The version the model is asked about for a kernel release (uname -r): ``ftsim.versions.parse``,
    which maps Debian's ABI names through data/kernel/debian-abi.csv (6.1.0-56-amd64 -> 6.1.192)."""
    return str(versions.parse(release, "release"))


def fmt(field: str, v) -> str:
    if field == "record" and isinstance(v, dict):
        return f"{v['count']}:{v['flags']}"
    return json.dumps(v)


# ---------------------------------------------------------------- the model, told what the lab knows
def model_text(file: str, obs: list[dict], blank: set[int] = frozenset()) -> tuple[str, int]:
    """The text the model runs for one observed file, and how many lines precede the file's own.

    - model lines the lab was given (`make kernel-lab LAB_SET=... LAB_MODEL=...`), as they are;
    - the boot's history: a function the boot had already modified before the file began keeps the
      sticky M (FTRACE_FL_MODIFIED, 6.4+) on its record, so the model first attaches and detaches a
      livepatch on it -- the one trace earlier files leave (each file ends with everything detached);
    - the file, with the lines in `blank` left empty (the steps the lab could not run, see `_not_run`).
    """
    first = obs[0]
    lines = list(first.get("model_lines") or [])
    for i, func in enumerate(first.get("modified_before") or []):
        lines += [f"attach livepatch {func} as boot-history-{i}", f"detach boot-history-{i}"]
    body = [("" if n in blank else t) for n, t in enumerate((ROOT / file).read_text().splitlines(), 1)]
    return "\n".join(lines + body), len(lines)


def model_rows(file: str, obs: list[dict], blank: set[int] = frozenset()) -> dict[int, dict]:
    """The model's row per line of the file, at the observed kernel's version."""
    text, skip = model_text(file, obs, blank)
    pol = policy.get("merged", kernel=kernel_version(obs[0]["kernel"]))
    rows = scenario.run(scenario.parse_text(text, file), pol)
    return {r["line"] - skip: r for r in rows if r["line"] > skip}


def _by_file(path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for d in load(path):
        out.setdefault(d["file"], []).append(d)
    return out


def compared(path) -> list[dict]:
    """Every observed field next to the model's: kernel, file, line, field, observed, model, agree."""
    return [dict(d) for d in _compared(str(path), Path(path).stat().st_mtime)]


@lru_cache(maxsize=16)
def _compared(path: str, mtime: float) -> tuple[dict, ...]:
    out = []
    for file, obs in _by_file(path).items():
        model = model_rows(file, obs)
        for d in obs:
            m = model.get(d["line"])
            if m is None:
                continue
            for field in FIELDS:
                seen, want = d.get(field), m.get(field)
                if seen is None:                     # not observable, not run or not reached
                    continue
                out.append({"kernel": d["kernel"], "file": file, "line": str(d["line"]), "field": field,
                            "observed": fmt(field, seen), "model": fmt(field, want), "agree": seen == want,
                            "crashed": bool(d.get("crashed"))})
    return tuple(out)


# ---------------------------------------------------------------- explained differences
KEY = ("kernel", "file", "line", "field", "observed", "model")


def known_differences() -> dict[tuple, str]:
    """(kernel, file, line, field, observed, model) -> category, from data/kernel/known-differences.csv."""
    with open(KNOWN, newline="") as f:
        return {tuple(r[k] for k in KEY): r["category"] for r in csv.DictReader(f)}


_CRASH = re.compile(r"Oops|BUG:|Kernel panic|general protection fault|^crash: ")
_EVIDENCE = {   # what the observation of an attach shows when the lab could not run that consumer
    "not-built": lambda d: any(re.search(r"CONFIG_\w+ is off", n) for n in d.get("notes", [])),
    "not-in-btf": lambda d: (d["consumer"] or "").startswith("bpf-") and d["ret"] == -3,
    "one-module": lambda d: any("are all taken" in n or "one tracer instance" in n for n in d.get("notes", [])),
}


def _not_run(file_obs: list[dict]) -> dict[str, tuple[str, int]]:
    """handle -> (category, attach line) of the attaches the lab could not run as the model assumes."""
    out = {}
    for d in file_obs:
        if d["op"] == "attach":
            cat = next((c for c, ev in _EVIDENCE.items() if ev(d)), None)
            if cat:
                out[d["handle"]] = (cat, d["line"])
    return out


class _Counterfactual:
    """The model run on each file without the steps the lab could not run (their attach and detach lines
    left empty): where it agrees with the kernel, the lab limitation explains the difference; where it
    does not, the difference is the model's."""

    def __init__(self, by_file: dict[str, list[dict]]):
        self.by_file, self.cache = by_file, {}

    def rows(self, file: str) -> dict[int, dict]:
        if file not in self.cache:
            obs = self.by_file[file]
            skip = _not_run(obs)
            blank = {d["line"] for d in obs if d["handle"] in skip and d["op"] in ("attach", "detach")}
            self.cache[file] = model_rows(file, obs, blank) if blank else {}
        return self.cache[file]


def _holds(category: str, file_obs: list[dict], line: int, field: str, seen: str, cf: _Counterfactual) -> bool:
    """Does the observation show that `category` explains the difference of `field` at `line`?
    crash-point: the guest crashed in the file, at or before the line (oops, BUG, panic).  The others: an
    attach the lab could not run for that reason is at or before the line, and either it is the step
    itself, or the model without the steps the lab could not run gives the kernel's value."""
    before = [d for d in file_obs if d["line"] <= line]
    if category == "crash-point":
        return bool(file_obs[0].get("crashed")) and any(_CRASH.search(n) for d in before for n in d.get("notes", []))
    if category not in _EVIDENCE:
        return False
    skip = _not_run(file_obs)
    if not any(c == category and l <= line for c, l in skip.values()):
        return False
    if any(d["line"] == line and d["handle"] in skip for d in file_obs):
        return True
    m = cf.rows(file_obs[0]["file"]).get(line)
    return m is not None and fmt(field, m.get(field)) == seen


def explain(path) -> list[dict]:
    """Every difference of one observed kernel, with `category`: the lab limitation that explains it, or
    None when nothing does (a difference of the model's).  A row of the CSV explains a difference only
    when its category is one of LIMITATIONS and the observation shows that limitation (`_holds`)."""
    known = known_differences()
    by_file = _by_file(path)
    cf = _Counterfactual(by_file)
    out = []
    for d in compared(path):
        if d["agree"]:
            continue
        cat = known.get(tuple(d[k] for k in KEY))
        if cat not in LIMITATIONS or not _holds(cat, by_file[d["file"]], int(d["line"]), d["field"], d["observed"], cf):
            cat = None
        out.append({**{k: d[k] for k in KEY}, "category": cat})
    return out


def categorize(path) -> list[dict]:
    """Every difference of one observed kernel with the first category (crash-point, not-built, not-in-btf,
    one-module) that `_holds`, or None: what lab/draft_differences.py writes to the CSV."""
    by_file = _by_file(path)
    cf = _Counterfactual(by_file)
    out = []
    for d in compared(path):
        if not d["agree"]:
            cat = next((c for c in LIMITATIONS
                        if _holds(c, by_file[d["file"]], int(d["line"]), d["field"], d["observed"], cf)), None)
            out.append({**{k: d[k] for k in KEY}, "category": cat})
    return out


def differences(path) -> list[dict]:
    """The differences no lab limitation explains: the model's to answer for."""
    return [d for d in explain(path) if d["category"] is None]


# ---------------------------------------------------------------- DataFrame getters
def df_agreement(path=None) -> pd.DataFrame:
    """Per scenario file of one observed kernel: fields compared, agreeing, differing because of each
    lab limitation, differing because of the model, and whether the guest crashed in the file.

    :returns: a DataFrame indexed by ``file`` with columns ``compared, agree``, one column per category of
        LIMITATIONS, ``model`` and ``crashed``.
    """
    path = path or paths()[-1]
    cmp_ = pd.DataFrame(compared(path))
    ex = pd.DataFrame(explain(path), columns=[*KEY, "category"])
    table = cmp_.groupby("file").agg(compared=("agree", "size"), agree=("agree", "sum"), crashed=("crashed", "any"))
    for cat in LIMITATIONS:
        table[cat] = ex[ex.category == cat].groupby("file").size().reindex(table.index, fill_value=0)
    table["model"] = ex[ex.category.isna()].groupby("file").size().reindex(table.index, fill_value=0)
    cols = ["compared", "agree", *LIMITATIONS, "model"]
    return table[cols + ["crashed"]].astype({c: int for c in cols})


def df_kernels() -> pd.DataFrame:
    """One row per observed kernel: steps, files, files crashed, fields compared, agreeing, explained by
    each lab limitation, and differences of the model.

    :returns: a DataFrame indexed by ``kernel`` (uname -r), in version order.
    """
    rows = []
    for p in paths():
        t, obs = df_agreement(p), load(p)
        rows.append({"kernel": release_of(p), "version": kernel_version(release_of(p)), "steps": len(obs),
                     "files": t.shape[0], "crashed": int(t.crashed.sum()),
                     **t.drop(columns="crashed").sum().to_dict()})
    df = pd.DataFrame(rows)
    df["_v"] = [versions.parse(v).key for v in df.version]
    return df.sort_values("_v").drop(columns="_v").set_index("kernel")


def df_grid() -> pd.DataFrame:
    """Kernel x scenario file: '=' every compared field agrees, 'L' the only differences are lab
    limitations, 'M<n>' n differences of the model's, '-' the file was not observed; a trailing '!' marks
    a file in which the guest crashed.

    :returns: a DataFrame indexed by ``file``, one column per kernel (uname -r) in version order.
    """
    cols = {}
    for k in df_kernels().index:
        t = df_agreement(DATA / "kernel" / f"observed-{k}.jsonl")
        lim = t[list(LIMITATIONS)].sum(axis=1)
        mark = ["=" if m == 0 and l == 0 else ("L" if m == 0 else f"M{m}") for m, l in zip(t.model, lim)]
        cols[k] = pd.Series([s + ("!" if c else "") for s, c in zip(mark, t.crashed)], index=t.index)
    grid = pd.DataFrame(cols).fillna("-")
    grid.index = [f.replace("data/scenarios/", "") for f in grid.index]
    grid.index.name = "file"
    return grid.sort_index()


def df_findings() -> pd.DataFrame:
    """The findings of data/kernel/findings/: file, title (first heading), kernels (its 'Affected' line)."""
    rows = []
    for f in sorted(FINDINGS.glob("*.md")):
        text = f.read_text()
        title = next((l.lstrip("# ").strip() for l in text.splitlines() if l.startswith("# ")), f.stem)
        aff = next((l.split(":", 1)[1].strip() for l in text.splitlines() if l.lower().startswith("affected")), "")
        rows.append({"finding": str(f.relative_to(ROOT)), "title": title, "affected": aff})
    return pd.DataFrame(rows, columns=["finding", "title", "affected"])


def df_differences() -> pd.DataFrame:
    """Every difference no lab limitation explains, for every observed kernel: the model's to answer for.

    :returns: a DataFrame with columns ``kernel, file, line, field, observed, model``.
    """
    rows = [d for p in paths() for d in differences(p)]
    return pd.DataFrame(rows, columns=[*KEY, "category"]).drop(columns="category")


def df_file(file: str, fields=("ret", "record", "body_ran")) -> pd.DataFrame:
    """One scenario file on every observed kernel, step by step: what each kernel did, next to the model.

    :returns: a DataFrame indexed by ``line, step`` (the step's text), with a column per kernel and field
        (``kernel/field``) and the model's value at that kernel (``kernel/field (model)``) where they differ.
    """
    steps = {st.line: st.text for st in scenario.parse_file(ROOT / file).steps}
    out = pd.DataFrame(index=pd.MultiIndex.from_tuples([(l, t) for l, t in steps.items()], names=["line", "step"]))
    for k in df_kernels().index:
        obs = [d for d in load(DATA / "kernel" / f"observed-{k}.jsonl") if d["file"] == file]
        if not obs:
            continue
        model = model_rows(file, obs)
        for field in fields:
            seen = {d["line"]: d.get(field) for d in obs}
            col = [fmt(field, seen[l]) if seen.get(l) is not None else "" for l in steps]
            want = [fmt(field, model[l].get(field)) if l in model and model[l].get(field) is not None else "" for l in steps]
            out[f"{k}/{field}"] = [s if not s or s == w else f"{s} (model {w})" for s, w in zip(col, want)]
    return out


GRID_COLOURS = {"=": "#b7e1b0", "L": "#c9dcf2", "M": "#e86c6c", "-": "#ffffff"}
GRID_KEY = {"=": "every field agrees", "L": "differs by a lab limitation only", "M": "differs by the model",
            "-": "not observed"}


def plot_grid(grid: pd.DataFrame | None = None, all_files: bool = False):
    """``df_grid()`` as a colour grid (kernel columns, file rows; ``!`` = the guest crashed in the file).
    Files on which every kernel agrees in every field are left out unless ``all_files``.  Returns the
    Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    grid = df_grid() if grid is None else grid
    shown = grid if all_files else grid[(grid != "=").any(axis=1)]
    keys = list(GRID_COLOURS)
    codes = shown.map(lambda s: keys.index(s.rstrip("!")[:1])).to_numpy()
    fig, ax = plt.subplots(figsize=(1.3 * shown.shape[1] + 4.2, 0.28 * len(shown) + 1.9), layout="constrained")
    ax.imshow(codes, cmap=ListedColormap([GRID_COLOURS[k] for k in keys]), vmin=-0.5, vmax=len(keys) - 0.5,
              aspect="auto")
    for (i, j), text in pd.DataFrame(shown.to_numpy()).stack().items():
        ax.text(j, i, text, ha="center", va="center", fontsize=8)
    ax.set_xticks(range(shown.shape[1]), [f"{k}\n({kernel_version(k)})" for k in shown.columns], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(shown)), shown.index, fontsize=8)
    hidden = len(grid) - len(shown)
    ax.set_title(f"Model against each kernel, per scenario file (! = the guest crashed; not shown: the {hidden} "
                 "files where every kernel agrees in every field)" if hidden else
                 "Model against each kernel, per scenario file (! = the guest crashed)", fontsize=9)
    fig.legend(handles=[Patch(facecolor=GRID_COLOURS[k], edgecolor="0.5", label=f"{k}  {GRID_KEY[k]}")
                        for k in keys], loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    return fig
