"""Expectations of a scenario step (``=> ...`` groups): the tokens, the selectors that pick a group for a
policy (a design name, kernel bounds, policy fields), and their parsing into checks.  ``ftsim.scenario``
runs them; data/scenarios/FORMAT.md documents them."""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import policy as policies
from .errors import FtsimError
from .flags import ERRNO_NAMES, Errno
from .invariants import INVARIANTS
from .policy import Policy
from .versions import parse as parse_version


class ScenarioError(FtsimError):
    """A bad scenario line: names the file, the line, the bad token and what is allowed."""

    def __init__(self, where: str, lineno: int, message: str):
        super().__init__(f"{where}:{lineno}: {message}")
        self.where, self.lineno = where, lineno


# ASCII only: str.isdigit() and a str pattern's \d also accept '²', '¹', '٦'
HANDLE_RE = re.compile(r"[A-Za-z0-9_.\-]+\Z")
FUNC_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
VERSION = r"[0-9]{1,4}\.[0-9]{1,4}(?:\.[0-9]{1,4})?(?:-rc[0-9]{1,2})?"
SEL_RE = re.compile(rf"(?P<name>[a-z0-9.\-]+?)(?P<bounds>(?:(?:<=|>=|<|>|==){VERSION})*)"
                    r"(?P<conds>(?::!?[a-z_]{1,40}(?:=[a-z0-9.\-]{1,20})?)*)\Z")
COND_RE = re.compile(r":(!?)([a-z_]{1,40})(?:=([a-z0-9.\-]{1,20}))?")
BOUND_RE = re.compile(rf"(<=|>=|<|>|==)({VERSION})")
COUNT_RE = re.compile(r"[0-9]{1,9}\Z")
RET_RE = re.compile(r"-?[0-9]{1,9}\Z|-[A-Z]{1,16}\Z")
RECORD_RE = re.compile(r"([0-9]{1,9}):([RIDM]*)\Z")
OUTCOMES = {"oops": "oops", "not-run": "not run"}
EXPECT_KEYS = ("regen", "retries", "callbacks", "record", "attached", "body", "result", "fired", "violations")
CALL_ONLY = ("body", "result", "fired")          # what a call reports; never an attach or a detach
NOT_ON_CALL = ("ret", "attached")               # what only an attach or a detach reports


@dataclass(slots=True)
class Expect:
    selectors: tuple[str, ...]          # () = every policy
    checks: dict[str, object]

    def applies(self, pol: Policy) -> bool:
        return any(_selected(s, pol) for s in self.selectors)


def _selected(sel: str, pol: Policy) -> bool:
    m = SEL_RE.match(sel)
    if m["name"] != pol.name:
        return False
    for neg, name, value in COND_RE.findall(m["conds"]):     # :FIELD, :!FIELD, :FIELD=VALUE
        have = getattr(pol, name)
        hit = (have == policies.typed(name, value)) if value else bool(have)
        if hit == bool(neg):
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


def _short(text: str, n: int = 80) -> str:
    """``text`` for a message: at most ``n`` characters (a message stays one readable line)."""
    return text if len(text) <= n else text[:n] + "..."


def _parse_expect(arrow: str, text: str, err) -> Expect:
    selectors = ()
    if arrow != "=>":
        selectors = tuple(s.strip() for s in arrow[3:-1].split(","))
        if selectors == ("",):
            raise err(f"expectation group {arrow!r} selects nothing; allowed: =>[SEL,...] with SEL one of "
                      f"{', '.join(policies.NAMES)} (or a plain '=>' group for every policy)")
        for s in selectors:
            m = SEL_RE.match(s)
            if not m or m["name"] not in policies.NAMES:
                raise err(f"expectation selector {_short(s)!r} is unknown; allowed: {', '.join(policies.NAMES)}, "
                          "optionally with a kernel bound such as merged<6.18 and policy fields such as "
                          "merged:again_clears_func, merged:!modify_path_checked, merged:fprobe=split")
            for neg, name, value in COND_RE.findall(m["conds"]):
                try:
                    if value:
                        policies.typed(name, value)
                    elif name not in policies.SETTABLE or policies.field_type(name) is not bool:
                        raise err(f"selector {_short(s)!r}: :{name} needs a true/false field; allowed: "
                                  + ", ".join(f for f in policies.SETTABLE if policies.field_type(f) is bool)
                                  + " (or :FIELD=VALUE)")
                    if neg and value:
                        raise err(f"selector {_short(s)!r}: write :!{name} or :{name}=VALUE, not both")
                except FtsimError as e:
                    if isinstance(e, ScenarioError):
                        raise
                    raise err(f"selector {_short(s)!r}: {e}") from None
    checks: dict[str, object] = {}
    for tok in text.split():
        key, eq, val = tok.partition("=")
        if not eq and tok in OUTCOMES:                 # oops: this step oopses; not-run: an earlier one did
            if "outcome" in checks:
                raise err("expectation oops/not-run given twice in one group; allowed: once")
            checks["outcome"] = OUTCOMES[tok]
            continue
        if not eq:
            if not RET_RE.match(tok):
                raise err(f"expectation {_short(tok)!r} is unknown; allowed: 0, {', '.join(ERRNO_NAMES)}, "
                          f"oops, not-run, or KEY=VALUE with KEY one of {', '.join(EXPECT_KEYS)}")
            try:
                ret = Errno.parse(tok)
            except (KeyError, ValueError):
                raise err(f"expectation {tok!r} is unknown; allowed: 0, {', '.join(ERRNO_NAMES)}, "
                          f"oops, not-run, or KEY=VALUE with KEY one of {', '.join(EXPECT_KEYS)}") from None
            key, value = "ret", ret
        else:
            if key not in EXPECT_KEYS:
                raise err(f"expectation key {_short(key)!r} is unknown; allowed: {', '.join(EXPECT_KEYS)}")
            value = _parse_value(key, val, err)
        if key in checks:
            raise err(f"expectation {'return value' if key == 'ret' else key + '='} given twice in one group; "
                      "allowed: once")
        checks[key] = value
    return Expect(selectors, checks)


def _parse_value(key, val, err):
    if key in ("regen", "retries", "callbacks"):
        if not COUNT_RE.match(val):
            raise err(f"{key}={_short(val)!r}: expected a count such as {key}=1 (ASCII digits, at most 9)")
        return int(val)
    if key == "record":
        m = RECORD_RE.match(val)
        if not m:
            raise err(f"record={_short(val)!r}: expected COUNT:FLAGS with FLAGS from R, I, D, M (e.g. record=2:RID)")
        return {"count": int(m[1]), "flags": m[2]}
    if key == "attached":
        if val not in ("yes", "no"):
            raise err(f"attached={_short(val)!r}: allowed: yes, no")
        return val == "yes"
    if key == "body":
        if val not in ("orig", "new", "none"):
            raise err(f"body={_short(val)!r}: allowed: orig, new, none")
        return val
    if key in ("fired", "violations"):
        items = [] if val in ("-", "") else val.split(",")
        if key == "violations":
            for v in items:
                if v not in INVARIANTS:
                    raise err(f"violations: {_short(v)!r} is unknown; allowed: {', '.join(INVARIANTS)} or -")
        else:
            for v in items:
                if not HANDLE_RE.match(v):
                    raise err(f"fired: {_short(v)!r} is not a handle; allowed: H1,H2,... (letters, digits, "
                              "'_', '-', '.') or -")
        return items
    if not HANDLE_RE.match(val):                                 # result=HANDLE|orig
        raise err(f"result={_short(val)!r}: allowed: orig or a handle (letters, digits, '_', '-', '.')")
    return val
