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

from . import consumers, policy as policies
from .errors import FtsimError
from .flags import Errno
from .model import Model
from .policy import Policy
from .invariants import INVARIANTS  # noqa: F401 (the names expectations may use)
from .expect import (CALL_ONLY, EXPECT_KEYS, FUNC_RE, HANDLE_RE, NOT_ON_CALL, Expect, ScenarioError,  # noqa: F401
                     _parse_expect, _short)
from .guarded import MAX_BYTES, read_text  # noqa: F401 (presets read through it too)
from .versions import parse as parse_version

#: handles named in one error message at most
SHOW = 8


@dataclass(slots=True)
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
    """A parsed file: its steps, its leading comment block, and its header directives (``kernel``,
    ``set FIELD=VALUE``, ``function NAME error_injection=yes|no``)."""
    name: str
    steps: list[ScenarioStep]
    comments: list[str] = field(default_factory=list)   # the leading comment block: what it shows
    kernel: str | None = None
    sets: dict = field(default_factory=dict)
    functions: dict = field(default_factory=dict)        # function -> allows error injection

    def policy(self, name: str, kernel=None, sets=None) -> Policy:
        """The policy this file runs under ``name``: the command line's ``kernel`` and ``sets`` win over
        the file's (the file's kernel applies to merged only)."""
        k = kernel if kernel is not None else (self.kernel if name == "merged" else None)
        overrides = {**self.sets, **dict(sets or {})}
        return policies.get(name, kernel=k, **overrides)

    def injectable(self):
        return Injectable(self.functions)


class Injectable:
    """is_injectable() with the file's ``function NAME error_injection=...`` overrides (picklable)."""

    def __init__(self, overrides: dict):
        self.overrides = dict(overrides)

    def __call__(self, func: str) -> bool:
        from .functions import is_injectable
        return self.overrides.get(func, is_injectable(func))


DIRECTIVES = ("kernel", "set", "function")


def _directive(words: list[str], sc: "Scenario", where: str, lineno: int, seen: dict):
    """A header line: ``kernel VERSION``, ``set FIELD=VALUE``, ``function NAME error_injection=yes|no``."""
    def err(msg):
        return ScenarioError(where, lineno, msg)
    verb, args = words[0], words[1:]
    key = verb if verb == "kernel" else f"{verb} {args[0].split('=')[0] if args else ''}"
    if key in seen:
        raise err(f"{key!r} given twice (line {seen[key]}); allowed: once per file")
    if verb == "kernel":
        if len(args) != 1:
            raise err("expected 'kernel VERSION' (e.g. kernel 6.1.192)")
        try:
            parse_version(args[0])
        except FtsimError as e:
            raise err(str(e)) from None
        sc.kernel = args[0]
    elif verb == "set":
        if len(args) != 1:
            raise err("expected 'set FIELD=VALUE' (e.g. set modify_path_checked=true)")
        try:
            f, v = policies.parse_set(args[0])
        except FtsimError as e:
            raise err(str(e)) from None
        sc.sets[f] = v
    else:
        if len(args) != 2 or not FUNC_RE.match(args[0]) or args[1] not in ("error_injection=yes",
                                                                            "error_injection=no"):
            raise err(f"{_short(' '.join(words))!r}: expected 'function NAME error_injection=yes|no'")
        sc.functions[args[0]] = args[1].endswith("yes")
    seen[key] = lineno


def parse_text(text: str, name: str = "<text>") -> Scenario:
    """Parse scenario text (one step per line; lines end at '\n' only).  A leading UTF-8 byte order
    mark is ignored; every bad line raises a one-line ScenarioError naming file, line and token."""
    if not isinstance(text, str):
        raise FtsimError(f"scenario text: a {type(text).__name__} is not allowed; allowed: a str")
    if len(text) > MAX_BYTES:
        raise FtsimError(f"scenario {name}: {len(text):,} characters; allowed: at most {MAX_BYTES:,}")
    steps, header = [], []
    sc = Scenario(name, steps, header)
    names = _Names()
    exp_cache: dict = {}                # identical expectation groups share one (read-only) Expect
    in_header = True
    seen: dict = {}
    for lineno, raw in enumerate(text.removeprefix("\ufeff").split("\n"), 1):
        body = raw.split("#", 1)[0].strip()
        if not body:
            if in_header and raw.strip().startswith("#"):
                header.append(raw.strip().lstrip("#").strip())
            continue
        in_header = False
        words = body.split()
        if words[0] in DIRECTIVES:
            if steps:
                raise ScenarioError(name, lineno, f"directive {words[0]!r} after the first step (line "
                                                  f"{steps[0].line}); allowed: before the first step")
            _directive(words, sc, name, lineno, seen)
            continue
        step = _parse_line(body, name, lineno, names, exp_cache)
        steps.append(step)
    return sc


def parse_file(path) -> Scenario:
    """Read a scenario file: a regular file of UTF-8 text, at most MAX_BYTES.  Special files (a FIFO,
    /dev/zero, /dev/urandom, a directory) are refused before anything is read, without blocking."""
    text = read_text(path, "scenario file")
    return parse_text(text, str(path))


class _Names:
    """Handles of a scenario being parsed: every name taken (line), the live ones, and per consumer the
    next default suffix (so that a default handle costs O(1) however many came before)."""
    __slots__ = ("taken", "live", "next")

    def __init__(self):
        self.taken: dict[str, int] = {}
        self.live: dict[str, None] = {}         # insertion order: messages list the oldest first
        self.next: dict[str, int] = {}

    def default(self, consumer: str) -> str:
        n = self.next.get(consumer, 1)
        handle = consumer if n == 1 else f"{consumer}-{n}"
        while handle in self.taken:
            n += 1
            handle = f"{consumer}-{n}"
        self.next[consumer] = n + 1
        return handle

    def shown(self) -> str:
        if not self.live:
            return "none attached yet"
        first = list(self.live)[:SHOW] if len(self.live) > SHOW else sorted(self.live)
        more = len(self.live) - len(first)
        return ", ".join(first) + (f" (and {more:,} more)" if more else "")


def _parse_line(body: str, where: str, lineno: int, names: _Names, exp_cache: dict) -> ScenarioStep:
    def err(msg):
        return ScenarioError(where, lineno, msg)

    parts = re.split(r"(=>(?:\[[^\]]*\])?)", body)
    words = parts[0].split()
    if not words:
        raise err(f"expected a step before {parts[1]!r}; allowed: attach, detach, call")
    verb, args = words[0], words[1:]
    shown = repr(_short(body))
    if verb == "attach":
        if len(args) not in (2, 4) or (len(args) == 4 and args[2] != "as"):
            raise err(f"{shown}: expected 'attach CONSUMER FUNCTION [as HANDLE]'")
        consumer, func = args[0], args[1]
        if consumer not in consumers.CATALOG:
            raise err(f"consumer {_short(consumer)!r} is unknown; allowed: {', '.join(consumers.NAMES)}")
        _check_func(func, err)
        if len(args) == 4:
            handle = args[3]
            if not HANDLE_RE.match(handle):
                raise err(f"handle {_short(handle)!r} is malformed; allowed: letters, digits, '_', '-', '.'")
            if handle in names.taken:
                raise err(f"handle {handle!r} is taken (line {names.taken[handle]}); allowed: a new name")
        else:
            handle = names.default(consumer)
        step = ScenarioStep(lineno, "attach", consumer, func, handle)
    elif verb == "detach":
        if len(args) != 1:
            raise err(f"{shown}: expected 'detach HANDLE'")
        handle = args[0]
        if handle not in names.taken:
            raise err(f"handle {_short(handle)!r} is unknown; allowed: {names.shown()}")
        if handle not in names.live:
            raise err(f"handle {handle!r} is detached already (detaching twice)")
        step = ScenarioStep(lineno, "detach", None, None, handle)
    elif verb == "call":
        if len(args) != 1:
            raise err(f"{shown}: expected 'call FUNCTION'")
        _check_func(args[0], err)
        step = ScenarioStep(lineno, "call", None, args[0], None)
    else:
        raise err(f"step {_short(verb)!r} is unknown; allowed: attach, detach, call")
    plain = 0
    for i in range(1, len(parts), 2):
        key = (parts[i], parts[i + 1].strip())
        e = exp_cache.get(key)
        if e is None:
            e = _parse_expect(parts[i], parts[i + 1], err)
            if len(exp_cache) < 4096:
                exp_cache[key] = e
        plain += not e.selectors
        if plain > 1:
            raise err("several plain '=>' groups on one line; allowed: one '=>' group "
                      "(and any number of '=>[SEL,...]' groups)")
        wrong = [k for k in e.checks if k in (NOT_ON_CALL if verb == "call" else CALL_ONLY)]
        if wrong:
            k = wrong[0]
            what = repr(_fmt(k, e.checks[k]) if k == "ret" else f"{k}={_fmt(k, e.checks[k])}")
            allowed = ("regen, retries, callbacks, record, violations, body, result, fired" if verb == "call" else
                       f"0, -EBUSY, ..., {', '.join(k for k in EXPECT_KEYS if k not in CALL_ONLY)}")
            raise err(f"expectation {what} does not apply to {'an' if verb == 'attach' else 'a'} {verb} step; "
                      f"allowed: {allowed}")
        step.expect.append(e)
    if verb == "attach":                        # only now: a refused line takes no name
        names.taken[handle] = lineno
        names.live[handle] = None
    elif verb == "detach":
        del names.live[handle]
    step.text = parts[0].strip()
    return step


def _check_func(func, err):
    if not FUNC_RE.match(func):
        raise err(f"function {_short(func)!r} is not a C identifier")


def _actual(d: dict, key: str):
    return {"regen": d["regenerations"], "body": d.get("body_ran"), "result": d.get("result_from")}.get(
        key, d.get(key))


def run(scenario: Scenario, pol: Policy, model: Model | None = None) -> list[dict]:
    """Run every step; one dict per step with the keys of `ftsim scenario --json` plus `failures`."""
    return list(iter_run(scenario, pol, model))


def iter_run(scenario: Scenario, pol: Policy, model: Model | None = None):
    """``run`` one step at a time (a generator): the CLI prints each row as it comes, so a long scenario
    costs the memory of its parsed steps, not of every result."""
    model = model or Model(pol, injectable=scenario.injectable())
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
        yield d


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
    return "\n".join(format_row(d, text[d["line"]]) for d in rows)


def format_row(d: dict, text: str) -> str:
    """One line of ``format_rows``: row ``d`` of the step whose text (before ``=>``) is ``text``."""
    rec = d["record"]
    line = f"{d['line']:>4}  {text:<48} "
    if d["op"] == "call" and "body_ran" not in d:
        line += "not run"
    elif d["op"] == "call":
        line += f"body={d['body_ran']} result={d['result_from']} fired={','.join(d['fired']) or '-'}"
    else:
        line += (f"{Errno.name_of(d['ret']):>7}  record={rec['count']}:{rec['flags'] or '-':<5}"
                 f" cb={d['callbacks']} retry={d['retries']} regen={d['regenerations']}")
    if d["violations"]:
        line += f"  !{','.join(d['violations'])}"
    if (d["op"] != "call" and d["ret"] is not False and d["ret"] != 0) or d.get("warns"):
        line += f"  ({d['reason']})"
    if d["failures"]:
        line += "  FAIL: expected " + "; ".join(d["failures"])
    return line
