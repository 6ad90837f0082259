"""Shared machinery of the fuzzers (tests/test_fuzz_*.py) and of the campaign (`make fuzz`).

Every fuzzed case ends in one of four outcomes:
  * ``ok``: a result;
  * ``error``: a one-line ``FtsimError`` (the CLI: exit 2 and one line ``ftsim: error: ...``);
  * ``traceback``: any other exception, or an error message of more than one line;
  * ``hang``: no answer within ``TIMEOUT`` seconds (SIGALRM in this process, a timeout in a subprocess).
The fuzzers record every case in a ``Tally`` and assert at the end that nothing but ``ok`` and ``error``
happened, listing the inputs that did (a campaign keeps going after a failure, so it can count them).

The number of examples: ``FTSIM_FUZZ_EXAMPLES`` (per fuzzer; default: a few hundred, bounded in time
for ``make test``).  ``FTSIM_FUZZ_REPORT=FILE`` appends one JSON line per fuzzer with its counts.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import time
import traceback
from collections import Counter

from hypothesis import HealthCheck, Phase, settings

from ftsim.errors import FtsimError

TIMEOUT = float(os.environ.get("FTSIM_FUZZ_TIMEOUT", "20"))


def examples(default: int) -> int:
    """Examples per fuzzer: ``FTSIM_FUZZ_EXAMPLES`` when set (the campaign), else ``default``."""
    return max(1, int(os.environ.get("FTSIM_FUZZ_EXAMPLES", default)))


def fuzz_settings(default: int):
    """Hypothesis settings of a fuzzer: generation only (the tally collects failures instead of
    shrinking them), no example database, no deadline (``guard`` enforces TIMEOUT).  In ``make test``
    (no FTSIM_FUZZ_EXAMPLES) the examples are derandomized: the share assertions (most near-valid texts
    run model steps) hold or fail the same way on every machine; a campaign draws fresh examples."""
    return settings(max_examples=examples(default), deadline=None, database=None,
                    derandomize="FTSIM_FUZZ_EXAMPLES" not in os.environ,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck))


class Hang(BaseException):
    """Raised by the alarm in a case that ran longer than TIMEOUT (a BaseException: no `except
    Exception` in the code under test swallows it)."""


@contextlib.contextmanager
def alarm(seconds: float):
    def fire(signum, frame):
        raise Hang()
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Tally:
    """Outcome counts of one fuzzer, and the first failing inputs."""

    def __init__(self, name: str):
        self.name, self.counts, self.failures, self.extra = name, Counter(), [], Counter()
        self.started = time.time()

    def guard(self, case, fn, *args, **kwargs):
        """Run ``fn``; classify and count the outcome; returns (outcome, result or exception)."""
        try:
            with alarm(TIMEOUT):
                result = fn(*args, **kwargs)
        except Hang:
            return self.add("hang", case, f"no answer in {TIMEOUT:.0f} s"), None
        except FtsimError as e:
            if "\n" in str(e) or not str(e):
                return self.add("traceback", case, f"FtsimError of {str(e).count(chr(10)) + 1} lines: {e!s:.300}"), e
            return self.add("error", case), e
        except Exception as e:           # noqa: BLE001 - what the fuzzer is looking for
            last = traceback.format_exception_only(type(e), e)[-1].strip()
            return self.add("traceback", case, last), e
        return self.add("ok", case), result

    def add(self, outcome: str, case, why: str = "") -> str:
        self.counts[outcome] += 1
        if outcome in ("traceback", "hang") and len(self.failures) < 20:
            self.failures.append((outcome, case, why))
        return outcome

    @property
    def cases(self) -> int:
        return sum(self.counts.values())

    def report(self) -> dict:
        d = {"fuzzer": self.name, "cases": self.cases, **{k: self.counts[k] for k in ("ok", "error", "traceback", "hang")},
             "seconds": round(time.time() - self.started, 1), **dict(self.extra)}
        path = os.environ.get("FTSIM_FUZZ_REPORT")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({**d, "failures": [list(map(str, x)) for x in self.failures]}) + "\n")
        return d

    def check(self):
        """Fail the test when any case raised a traceback or hung (listing the first ones)."""
        d = self.report()
        bad = "\n".join(f"  {o}: {c!r}\n    -> {w}" for o, c, w in self.failures)
        assert not (self.counts["traceback"] or self.counts["hang"]), f"{d}\n{bad}"
        return d


def one_line_exit_2(rc, err: str) -> str | None:
    """None when (rc, stderr) is a proper CLI answer, else what is wrong with it."""
    if rc not in (0, 1, 2):
        return f"exit {rc}"
    if rc == 2:
        lines = [l for l in err.splitlines() if l.strip()]
        if len(lines) != 1 or not lines[0].startswith("ftsim: error: "):
            return f"exit 2 with stderr {err[-400:]!r}"
    elif "Traceback" in err:
        return f"exit {rc} with a traceback: {err[-400:]!r}"
    return None


def run_cli(argv: list[str]):
    """``ftsim.cli.main(argv)`` in this process: (exit status, stdout, stderr)."""
    from ftsim import cli
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(argv)
        except SystemExit as e:         # argparse: --help (0) and usage errors (2)
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return rc, out.getvalue(), err.getvalue()


def summarize(path: str) -> str:
    """The table of a campaign's report (one JSON line per fuzzer): `make fuzz` prints it."""
    rows = [json.loads(l) for l in open(path) if l.strip()]
    cols = ("cases", "ok", "error", "traceback", "hang", "seconds")
    out = [f"{'fuzzer':<22}" + "".join(f"{c:>11}" for c in cols)]
    for r in rows:
        out.append(f"{r['fuzzer']:<22}" + "".join(f"{r[c]:>11,}" if isinstance(r[c], int) else f"{r[c]:>11}"
                                                  for c in cols))
    tot = {c: sum(r[c] for r in rows) for c in cols}
    out.append(f"{'total':<22}" + "".join(f"{round(tot[c], 1):>11,}" for c in cols))
    for r in rows:
        for f in r.get("failures", [])[:5]:
            out.append(f"  {r['fuzzer']}: {f[0]}: {f[1][:200]} -> {f[2][:200]}")
    return "\n".join(out)


if __name__ == "__main__":
    import sys
    print(summarize(sys.argv[1]))
    sys.exit(1 if any(json.loads(l)["traceback"] or json.loads(l)["hang"] for l in open(sys.argv[1]) if l.strip())
             else 0)
