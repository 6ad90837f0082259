"""`ftsim` on the command line.  Each command lives beside the code it drives: a module listed in
COMMANDS exposes `add_command(subparsers)` and sets `func` on its parser."""
from __future__ import annotations

import argparse
import importlib
import json
import sys

from .errors import FtsimError

COMMANDS = ["ftsim.cli", "ftsim.explore", "ftsim.sweep"]   # modules with add_command(); other modules append themselves here


def add_command(sub):
    from . import policy
    p = sub.add_parser("scenario", help="run scenario files (.fts) under a policy")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--policy", required=True, choices=policy.NAMES)
    p.add_argument("--kernel", help="kernel version for --policy merged (default: newest behaviour)")
    p.add_argument("--json", action="store_true", help="one JSON object per step")
    p.set_defaults(func=cmd_scenario)
    t = sub.add_parser("table", help="decision table: every ordered pair of consumers on one function")
    t.add_argument("--policy", required=True, choices=policy.NAMES)
    t.add_argument("--kernel")
    t.add_argument("--csv", action="store_true", help="the long table as CSV instead of the grid")
    t.set_defaults(func=cmd_table)


def _policy(args):
    from . import policy
    return policy.get(args.policy, kernel=args.kernel)


def cmd_scenario(args) -> int:
    from . import scenario
    pol = _policy(args)
    parsed = [scenario.parse_file(f) for f in args.files]      # all bad input before any work
    ok = True
    for sc in parsed:
        rows = scenario.run(sc, pol)
        if args.json:
            for d in rows:
                print(json.dumps({k: v for k, v in d.items() if k not in ("failures", "notes")}))
        else:
            print(f"== {sc.name} under {pol.label}")
            print(scenario.format_rows(rows, sc))
        for d in rows:
            if not d["expect_ok"]:
                ok = False
                print(f"{sc.name}:{d['line']}: expectation failed: {'; '.join(d['failures'])}", file=sys.stderr)
    return 0 if ok else 1


def cmd_table(args) -> int:
    from . import tables
    df = tables.df_decisions(_policy(args))
    if args.csv:
        print(df.to_csv(index=False), end="")
    else:
        print(tables.grid(df).to_string())
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ftsim", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_command(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except FtsimError as e:
        print(f"ftsim: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:          # `ftsim ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
