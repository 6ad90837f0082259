"""Kernel constants the model mirrors, as Enums that cite where they live in the kernel."""
from __future__ import annotations

import enum


class OpsFlag(enum.Flag):
    """`enum { FTRACE_OPS_FL_* }` in include/linux/ftrace.h (only the bits the model needs)."""
    NONE = 0
    SAVE_REGS = enum.auto()     # FTRACE_OPS_FL_SAVE_REGS: handler gets full pt_regs (record letter R)
    IPMODIFY = enum.auto()      # FTRACE_OPS_FL_IPMODIFY: handler may change regs->ip (letter I)
    DIRECT = enum.auto()        # FTRACE_OPS_FL_DIRECT: ops owns a direct trampoline (letter D)
    PERMANENT = enum.auto()     # FTRACE_OPS_FL_PERMANENT: livepatch, survives ftrace_enabled=0
    SAVE_ARGS = enum.auto()     # FTRACE_OPS_FL_SAVE_ARGS: ftrace_regs only (7.x fprobe entry ops; no letter)


class TrampFlag(enum.Flag):
    """`BPF_TRAMP_F_*` in include/linux/bpf.h, as bpf_trampoline_update() computes them."""
    NONE = 0
    RESTORE_REGS = enum.auto()    # fentry-only: return into the traced function
    CALL_ORIG = enum.auto()       # fexit or fmod_ret attached: the trampoline calls the body itself
    SKIP_FRAME = enum.auto()      # set together with CALL_ORIG
    SHARE_IPMODIFY = enum.auto()  # an IPMODIFY ops shares the function (set by ops_func)
    ORIG_STACK = enum.auto()      # call the address on the stack (follows regs->ip), not func+5


class OpsCmd(enum.Enum):
    """`enum ftrace_ops_cmd` in include/linux/ftrace.h (6.0+), the commands ftrace sends to ops_func."""
    ENABLE_SHARE_IPMODIFY_SELF = "FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_SELF"
    ENABLE_SHARE_IPMODIFY_PEER = "FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_PEER"
    DISABLE_SHARE_IPMODIFY_PEER = "FTRACE_OPS_CMD_DISABLE_SHARE_IPMODIFY_PEER"
    # Proposed by Rostedt (2022-07-13 22:55 EDT, 20220713225511.70d03fc6@gandalf), never merged:
    SHARE_WITH_IPMODIFY = "SHARE_WITH_IPMODIFY (proposed)"
    STOP_SHARE_WITH_IPMODIFY = "STOP_SHARE_WITH_IPMODIFY (proposed)"
    # Song Liu (2022-07-14 01:42 UTC, C2FCCC9B-5F7D-4BBF-8410-67EA79166909@fb.com): the owner declares
    # its flavor (#1 never shares, #2 calls the original body, #3 follows regs->ip); a query, no callback
    DECLARE_FLAVOR = "flavor #1/#2/#3 (declared by the owner, proposed)"


class Errno(enum.IntEnum):
    """Negative errno values as callers see them (include/uapi/asm-generic/errno-base.h, linux/errno.h)."""
    OK = 0
    ENOENT = -2
    EAGAIN = -11
    EBUSY = -16
    ENODEV = -19
    EINVAL = -22
    ERANGE = -34
    ENOTSUPP = -524

    @classmethod
    def parse(cls, text: str) -> int:
        """'0', '-EBUSY', '-16' -> int; raises KeyError/ValueError on anything else."""
        if text[1:].isascii() and text[1:].isdigit() and text[:1] == "-" or (text.isascii() and text.isdigit()):
            return int(text)
        if text.startswith("-") and text[1:] in cls.__members__:
            return int(cls[text[1:]])
        raise KeyError(text)

    @classmethod
    def name_of(cls, value: int | None) -> str:
        if value is None:
            return "-"
        try:
            return "0" if value == 0 else f"-{cls(value).name}"
        except ValueError:
            return str(value)


ERRNO_NAMES = tuple(f"-{e.name}" for e in Errno if e.value < 0)
