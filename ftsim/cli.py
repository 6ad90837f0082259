"""ftsim: how ftrace arbitrates IPMODIFY ops (livepatch, kprobes with a post_handler, fail_function) and
DIRECT trampolines (BPF fentry/fexit/fmod_ret) on one kernel function, under five designs.

Each command lives beside the code it drives: a module listed in COMMANDS exposes
``add_command(subparsers)`` and sets ``func`` on its parser.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from .cliargs import policy_args, policy_from, policy_sets  # noqa: F401 (commands share them)
from .errors import FtsimError

COMMANDS = ["ftsim.cli", "ftsim.explore", "ftsim.sweep"]   # modules with add_command(); other modules append themselves here

DESCRIPTION = ("Model how ftrace arbitrates FTRACE_OPS_FL_IPMODIFY ops (livepatch, kprobes with a post_handler, "
               "fail_function) and FTRACE_OPS_FL_DIRECT trampolines (BPF fentry/fexit/fmod_ret) on one kernel "
               "function, under five designs: pre-6.0, rostedt, song, merged (Linux 6.0 and later, by kernel "
               "version) and naive.")
EPILOG = """examples:
  ftsim scenario data/scenarios/thread-merged.fts --policy merged
  ftsim scenario data/scenarios/bug-modify-path-bypass.fts --policy merged --kernel 6.1.192
  ftsim table --policy merged --consumers key
  ftsim explore --policy merged --kernel 6.1.192 --max-len 4
  ftsim explore --policy merged --functions 3 --max-len 5 --consumers livepatch kprobe-post fail-function bpf-fentry bpf-fexit

'ftsim COMMAND --help' explains each command. Exit status: 0 success, 1 a check failed (an
expectation of a scenario file, a broken invariant where a command checks one), 2 bad input.
Not on PATH? Run .venv/bin/ftsim, or 'source .venv/bin/activate' first."""

SCENARIO_EPILOG = """Each step of a file is run under the policy and printed with what its caller was told, the
function's record (count:flags, as /sys/kernel/tracing/enabled_functions shows it: R = SAVE_REGS,
I = IPMODIFY, D = DIRECT, M = modified, 6.4+), the ops_func callbacks (cb), -EAGAIN retries (retry)
and BPF trampoline images (regen) it took, and !Name for every invariant broken after it.  A file's
expectations (=> ...) may be written per design and kernel (=>[merged<6.18] ..., =>[merged:again_clears_func] ...): every file in
data/scenarios/ but the thread-*.fts files (each for its own design) carries expectations for
merged.
Format: data/scenarios/FORMAT.md.

examples:
  ftsim scenario data/scenarios/thread-song.fts --policy song
  ftsim scenario data/scenarios/bug-modify-path-bypass.fts --policy merged --kernel 6.1.192
  ftsim scenario data/scenarios/pairs-*.fts --policy merged --json > steps.jsonl

exit status: 0 every expectation holds, 1 one failed (each is printed on stderr), 2 bad input."""

TABLE_EPILOG = """examples:
  ftsim table --policy merged --consumers key
  ftsim table --policy merged --kernel 6.12.117 --value body_ran --consumers livepatch,bpf-fentry,bpf-fexit
  ftsim table --policy pre-6.0 --csv > pre-6.0.csv"""


def table_legend(value: str = "result") -> str:
    """What the cells of ``ftsim table`` mean (printed under the grid)."""
    common = ("  a trailing !   an invariant broke in that pair (which one: --csv, column violations);\n"
              "                 0! = the contender was told 0, yet an invariant broke\n"
              "  rows: the incumbent (attached first); columns: the contender (attached second), both on one\n"
              "  fresh function every consumer may attach to, followed by one call of that function")
    cells = {
        "result": "  cells: what the contender's attach was told: 0, -EBUSY (refused), -EAGAIN (try again),\n"
                  "         -EINVAL (not allowed on that function)",
        "body_ran": "  cells: which body the call ran: orig (the original function), new (the livepatched one),\n"
                    "         none (skipped: an error injector or fmod_ret forced the return value)",
        "result_from": "  cells: whose effect decided the value the caller got (a consumer, or orig)",
        "record": "  cells: the record after both attaches, count:flags (R SAVE_REGS, I IPMODIFY, D DIRECT, M modified)",
        "violations": "  cells: the invariants broken (comma separated)",
    }
    return "legend:\n" + cells.get(value, f"  cells: the value of {value}") + "\n" + common


def add_command(sub):
    from . import consumers
    from .designs import KEY_CONSUMERS, VALUES
    p = sub.add_parser("scenario", help="run scenario files (.fts) under a policy",
                       description="Run scenario files (attach/detach/call steps, data/scenarios/FORMAT.md)\n"
                                   "under one design and check the expectations they carry.",
                       epilog=SCENARIO_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE", help="scenario files (.fts); several are run in order")
    policy_args(p)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per step instead of the table (keys: data/scenarios/FORMAT.md)")
    p.set_defaults(func=cmd_scenario)
    t = sub.add_parser("table", help="decision table: every ordered pair of consumers on one function",
                       description="Attach every consumer (the incumbent), then every consumer (the contender),\n"
                                   "on one fresh function, call it once, and print the grid of one value for all\n"
                                   "ordered pairs, with a legend.",
                       epilog=TABLE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    policy_args(t)
    t.add_argument("--value", choices=VALUES, default="result",
                   help="what the cells show (default: result, what the contender was told)")
    t.add_argument("--consumers", metavar="LIST",
                   help=f"only these consumers, comma separated, or 'key' for the {len(KEY_CONSUMERS)} that take part in the "
                        f"conflict (default: all {len(consumers.NAMES)}; that grid is over 200 columns wide)")
    t.add_argument("--csv", action="store_true",
                   help="the long table as CSV (one row per pair, every column) instead of the grid")
    t.set_defaults(func=cmd_table)


def _policy(args):
    return policy_from(args)


def cmd_scenario(args) -> int:
    from . import scenario
    sets = policy_sets(args)
    parsed = [scenario.parse_file(f) for f in args.files]      # all bad input before any work
    pols = [sc.policy(args.policy, args.kernel, sets) for sc in parsed]
    from . import consumers
    from .errors import FtsimError
    for sc, pol in zip(parsed, pols):                          # a consumer that design lacks: before any work
        for st in sc.steps:
            if st.op == "attach":
                try:
                    consumers.check_available(st.consumer, pol)
                except FtsimError as e:
                    raise FtsimError(f"{sc.name}:{st.line}: {e}") from None
    ok = True
    for sc, pol in zip(parsed, pols):
        run_info = {"policy": pol.label, "kernel": pol.kernel, "overrides": pol.changed()}
        if not args.json:
            print(f"== {sc.name} under {pol.label}")
        failed = []                                  # rows stream: memory stays that of the parsed steps
        for st, d in zip(sc.steps, scenario.iter_run(sc, pol)):
            if args.json:
                print(json.dumps({**run_info, **{k: v for k, v in d.items() if k not in ("failures", "notes")}}))
            else:
                print(scenario.format_row(d, st.text))
            if not d["expect_ok"]:
                failed.append(f"{sc.name}:{d['line']}: expectation failed: {'; '.join(d['failures'])}")
        for line in failed:
            ok = False
            print(line, file=sys.stderr)
    if not ok:
        print(f"ftsim: expectations failed under {pol.label}; a file's expectations hold for the designs it "
              "was written for (thread-*.fts: their own design; the other files in data/scenarios/: merged)",
              file=sys.stderr)
    return 0 if ok else 1


def _consumers(text):
    from . import consumers
    from .designs import KEY_CONSUMERS
    from .errors import bad
    if not text:
        return None
    if text == "key":
        return KEY_CONSUMERS
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if n not in consumers.NAMES:
            raise bad("--consumers", n, ("key",) + consumers.NAMES)
    return tuple(names)


def cmd_table(args) -> int:
    from . import tables
    only = _consumers(args.consumers)
    df = tables.df_decisions(_policy(args), names=only)
    if args.csv:
        print(df.to_csv(index=False), end="")
    else:
        g = tables.grid(df, args.value)
        if only:
            g = g.loc[list(only), list(only)]
        print(g.to_string())
        print()
        print(table_legend(args.value))
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line and exit 2, like every other bad input (subparsers inherit it)."""

    def error(self, message):
        cmd = self.prog.partition(" ")[2]
        self.exit(2, f"ftsim: error: {cmd + ': ' if cmd else ''}{one_line(message)} (see {self.prog} --help)\n")


def one_line(text: str) -> str:
    """``text`` with every character that is not printable (newlines, U+2028, control characters)
    escaped: an error stays one line on any terminal."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


def main(argv=None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:        # while the commands are imported or the arguments parsed
        print("ftsim: interrupted", file=sys.stderr)
        return 130


def _main(argv) -> int:
    import textwrap
    parser = _Parser(prog="ftsim", description=textwrap.fill(DESCRIPTION, 100), epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_command(sub)
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
        sys.stdout.flush()           # a full disk or a closed pipe shows here, not at exit
        return rc
    except FtsimError as e:
        print(f"ftsim: error: {one_line(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:          # `ftsim ... | head`
        _quiet_stdout()
        return 0
    except KeyboardInterrupt:
        print(f"ftsim: {args.command} interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"ftsim: error: {args.command}: out of memory (fewer workloads, events or a smaller --chunk)",
              file=sys.stderr)
        return 2
    except OSError as e:             # the environment, not the input: a full disk, a closed stdout, ...
        where = f" ({e.filename})" if e.filename else ""
        print(f"ftsim: error: {one_line(f'{e.strerror or e}{where}')}", file=sys.stderr)
        _quiet_stdout()
        return 2


def _quiet_stdout():
    """Nothing more to write to a broken stdout (else Python's flush at exit complains)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
