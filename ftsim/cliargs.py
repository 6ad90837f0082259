"""The command-line arguments every command that runs the model shares: --policy, --kernel, --set."""
from __future__ import annotations


def policy_args(p, required: bool = True):
    """--policy, --kernel and --set, shared by every command that runs the model."""
    from . import policy
    p.add_argument("--policy", required=required, choices=policy.NAMES, metavar="DESIGN",
                   help=f"the design to run under: {', '.join(policy.NAMES)}")
    p.add_argument("--kernel", metavar="VERSION",
                   help="with --policy merged, the kernel modelled: 6.1.192, 6.12, 7.3-rc7, a uname -r string "
                                    "(6.12.117+deb13-amd64) or a Debian ABI name (6.1.0-56-amd64); "
                                    f"default {policy.NEWEST_KERNEL}")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="sets",
                   help="override a policy field (repeatable; booleans true/false/yes/no), e.g. a patched "
                        "kernel: --set modify_path_checked=true")


def policy_sets(args) -> dict:
    from . import policy
    return dict(policy.parse_set(x) for x in args.sets)


def policy_from(args):
    from . import policy
    return policy.get(args.policy, kernel=args.kernel, **policy_sets(args))
