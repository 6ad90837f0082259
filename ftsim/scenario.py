"""Scenario files (`*.fts`): parse, run under a policy, check expectations.  Format: data/scenarios/FORMAT.md.

    attach livepatch cmdline_proc_show as lp   => 0 record=1:I
    attach bpf-fexit cmdline_proc_show as fx   => 0 retries=1 regen=2  =>[pre-6.0] -EBUSY
    call cmdline_proc_show                     => body=new

An expectation group `=>[SEL,...]` applies only under matching policies (SEL: a policy name, optionally
with kernel bounds for merged: `merged<6.18`, `merged>=6.7<6.18`); a group applies when any of its
selectors matches, and then the plain `=>` group of that line is ignored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import consumers, policy as policies
from .errors import FtsimError
from .flags import ERRNO_NAMES, Errno
from .invariants import INVARIANTS
from .model import Model
from .policy import Policy, parse_version

HANDLE_RE = re.compile(r"[A-Za-z0-9_.\-]+\Z")
FUNC_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
SEL_RE = re.compile(r"(?P<name>[a-z0-9.\-]+?)(?P<bounds>(?:(?:<=|>=|<|>|==)\d+\.\d+(?:\.\d+)?)*)\Z")
BOUND_RE = re.compile(r"(<=|>=|<|>|==)(\d+\.\d+(?:\.\d+)?)")
EXPECT_KEYS = ("regen", "retries", "callbacks", "record", "attached", "body", "result", "fired", "violations")


class ScenarioError(FtsimError):
    """A bad scenario line: names the file, the line, the bad token and what is allowed."""

    def __init__(self, where: str, lineno: int, message: str):
        super().__init__(f"{where}:{lineno}: {message}")
        self.where, self.lineno = where, lineno


@dataclass
class Expect:
    selectors: tuple[str, ...]          # () = every policy
    checks: dict[str, object]

    def applies(self, pol: Policy) -> bool:
        return any(_selected(s, pol) for s in self.selectors)


def _selected(sel: str, pol: Policy) -> bool:
    m = SEL_RE.match(sel)
    if m["name"] != pol.name:
        return False
    if not m["bounds"]:
        return True
    if not pol.kernel:
        return False
    v = parse_version(pol.kernel)
    for op, ver in BOUND_RE.findall(m["bounds"]):
        bound = parse_version(ver)
        if not {"<": v < bound, "<=": v <= bound, ">": v > bound, ">=": v >= bound, "==": v == bound}[op]:
            return False
    return True


@dataclass
class ScenarioStep:
    line: int
    op: str                     # attach | detach | call
    consumer: str | None
    function: str | None
    handle: str | None
    expect: list[Expect] = field(default_factory=list)
    text: str = ""

    def expectations(self, pol: Policy) -> dict[str, object]:
        chosen = [e for e in self.expect if e.selectors and e.applies(pol)]
        if not chosen:
            chosen = [e for e in self.expect if not e.selectors]
        merged: dict[str, object] = {}
        for e in chosen:
            merged.update(e.checks)
        return merged


@dataclass
class Scenario:
    name: str
    steps: list[ScenarioStep]
    comments: list[str] = field(default_factory=list)   # the leading comment block: what it shows


def parse_text(text: str, name: str = "<text>") -> Scenario:
    steps, handles, live, header = [], {}, set(), []
    in_header = True
    for lineno, raw in enumerate(text.splitlines(), 1):
        body = raw.split("#", 1)[0].strip()
        if not body:
            if in_header and raw.strip().startswith("#"):
                header.append(raw.strip().lstrip("#").strip())
            continue
        in_header = False
        step = _parse_line(body, name, lineno, handles, live)
        step.text = body.split("=>", 1)[0].strip()
        steps.append(step)
    return Scenario(name, steps, header)


def parse_file(path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise FtsimError(f"scenario file: {str(path)!r} cannot be read ({e.strerror})") from None
    return parse_text(text, str(path))


def _parse_line(body: str, where: str, lineno: int, handles: dict, live: set) -> ScenarioStep:
    def err(msg):
        return ScenarioError(where, lineno, msg)

    parts = re.split(r"(=>(?:\[[^\]]*\])?)", body)
    words = parts[0].split()
    expects = [_parse_expect(parts[i], parts[i + 1], err) for i in range(1, len(parts), 2)]
    if not words:
        raise err(f"expected a step before {parts[1]!r}; allowed: attach, detach, call")
    verb, args = words[0], words[1:]
    if verb == "attach":
        if len(args) not in (2, 4) or (len(args) == 4 and args[2] != "as"):
            raise err(f"{body!r}: expected 'attach CONSUMER FUNCTION [as HANDLE]'")
        consumer, func = args[0], args[1]
        if consumer not in consumers.CATALOG:
            raise err(f"consumer {consumer!r} is unknown; allowed: {', '.join(consumers.NAMES)}")
        _check_func(func, err)
        if len(args) == 4:
            handle = args[3]
            if not HANDLE_RE.match(handle):
                raise err(f"handle {handle!r} is malformed; allowed: letters, digits, '_', '-', '.'")
            if handle in handles:
                raise err(f"handle {handle!r} is taken (line {handles[handle]}); allowed: a new name")
        else:
            handle, n = consumer, 2
            while handle in handles:
                handle, n = f"{consumer}-{n}", n + 1
        handles[handle] = lineno
        live.add(handle)
        return ScenarioStep(lineno, "attach", consumer, func, handle, expects)
    if verb == "detach":
        if len(args) != 1:
            raise err(f"{body!r}: expected 'detach HANDLE'")
        handle = args[0]
        if handle not in handles:
            allowed = ", ".join(sorted(live)) or "none attached yet"
            raise err(f"handle {handle!r} is unknown; allowed: {allowed}")
        if handle not in live:
            raise err(f"handle {handle!r} is detached already (detaching twice)")
        live.discard(handle)
        return ScenarioStep(lineno, "detach", None, None, handle, expects)
    if verb == "call":
        if len(args) != 1:
            raise err(f"{body!r}: expected 'call FUNCTION'")
        _check_func(args[0], err)
        return ScenarioStep(lineno, "call", None, args[0], None, expects)
    raise err(f"step {verb!r} is unknown; allowed: attach, detach, call")


def _check_func(func, err):
    if not FUNC_RE.match(func):
        raise err(f"function {func!r} is not a C identifier")


def _parse_expect(arrow: str, text: str, err) -> Expect:
    selectors = ()
    if arrow != "=>":
        selectors = tuple(s.strip() for s in arrow[3:-1].split(",") if s.strip())
        for s in selectors:
            m = SEL_RE.match(s)
            if not m or m["name"] not in policies.NAMES:
                raise err(f"expectation selector {s!r} is unknown; allowed: {', '.join(policies.NAMES)}, "
                          "optionally with a kernel bound such as merged<6.18")
    checks: dict[str, object] = {}
    for tok in text.split():
        key, eq, val = tok.partition("=")
        if not eq:
            try:
                checks["ret"] = Errno.parse(tok)
            except KeyError:
                raise err(f"expectation {tok!r} is unknown; allowed: 0, {', '.join(ERRNO_NAMES)}, "
                          f"or KEY=VALUE with KEY one of {', '.join(EXPECT_KEYS)}") from None
            continue
        if key not in EXPECT_KEYS:
            raise err(f"expectation key {key!r} is unknown; allowed: {', '.join(EXPECT_KEYS)}")
        checks[key] = _parse_value(key, val, err)
    return Expect(selectors, checks)


def _parse_value(key, val, err):
    if key in ("regen", "retries", "callbacks"):
        if not val.isdigit():
            raise err(f"{key}={val!r}: expected a count such as {key}=1")
        return int(val)
    if key == "record":
        m = re.fullmatch(r"(\d+):([RIDM]*)", val)
        if not m:
            raise err(f"record={val!r}: expected COUNT:FLAGS with FLAGS from R, I, D, M (e.g. record=2:RID)")
        return {"count": int(m[1]), "flags": m[2]}
    if key == "attached":
        if val not in ("yes", "no"):
            raise err(f"attached={val!r}: allowed: yes, no")
        return val == "yes"
    if key == "body":
        if val not in ("orig", "new", "none"):
            raise err(f"body={val!r}: allowed: orig, new, none")
        return val
    if key in ("fired", "violations"):
        items = [] if val in ("-", "") else val.split(",")
        if key == "violations":
            for v in items:
                if v not in INVARIANTS:
                    raise err(f"violations: {v!r} is unknown; allowed: {', '.join(INVARIANTS)} or -")
        return items
    return val                                                   # result=HANDLE|orig


def _actual(d: dict, key: str):
    return {"regen": d["regenerations"], "body": d.get("body_ran"), "result": d.get("result_from")}.get(
        key, d.get(key))


def run(scenario: Scenario, pol: Policy, model: Model | None = None) -> list[dict]:
    """Run every step; one dict per step with the keys of `ftsim scenario --json` plus `failures`."""
    model = model or Model(pol)
    rows = []
    for st in scenario.steps:
        if st.op == "attach":
            step = model.attach(st.consumer, st.function, st.handle)
        elif st.op == "detach":
            step = model.detach(st.handle)
        else:
            step = model.call(st.function)
        d = {"file": scenario.name, "line": st.line, **step.as_json()}
        d["notes"] = step.notes
        failures = []
        for key, want in st.expectations(pol).items():
            got = _actual(d, key)
            if key == "record" and "M" not in want["flags"]:
                got = {"count": got["count"], "flags": got["flags"].replace("M", "")}
            if key == "record" and got != want:
                failures.append(f"record={want['count']}:{want['flags']} (got {got['count']}:{got['flags']})")
            elif key != "record" and got != want:
                failures.append(f"{key}={_fmt(key, want)} (got {_fmt(key, got)})")
        d["expect_ok"] = not failures
        d["failures"] = failures
        rows.append(d)
    return rows


def _fmt(key, v):
    if key == "ret":
        return Errno.name_of(v)
    if isinstance(v, list):
        return ",".join(v) or "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def format_rows(rows: list[dict], scenario: Scenario) -> str:
    """The readable table `ftsim scenario` prints."""
    text = {st.line: st.text for st in scenario.steps}
    out = []
    for d in rows:
        rec = d["record"]
        line = f"{d['line']:>4}  {text[d['line']]:<48} "
        if d["op"] == "call":
            line += f"body={d['body_ran']} result={d['result_from']} fired={','.join(d['fired']) or '-'}"
        else:
            line += (f"{Errno.name_of(d['ret']):>7}  record={rec['count']}:{rec['flags'] or '-':<5}"
                     f" cb={d['callbacks']} retry={d['retries']} regen={d['regenerations']}")
        if d["violations"]:
            line += f"  !{','.join(d['violations'])}"
        if d["op"] != "call" and d["ret"]:
            line += f"  ({d['reason']})"
        if d["failures"]:
            line += "  FAIL: expected " + "; ".join(d["failures"])
        out.append(line)
    return "\n".join(out)
