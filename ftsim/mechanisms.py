"""One mechanism object per way a consumer reaches ftrace: how it attaches, detaches and whether it is
really attached.  The subsystems own the rules; this table only names them (model.py looks a
consumer's mechanism up here instead of branching on it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import bpf, kprobes, livepatch, plainops
from .consumers import BPF, DIRECT, KLP, KPROBE, LIST, Consumer
from .state import Counters, Handle, Kernel


@dataclass(frozen=True)
class Mechanism:
    name: str
    entry: tuple[str, str]                     # the kernel entry points of attach and detach
    attach: Callable[[Kernel, Handle, Consumer, Counters], int]
    detach: Callable[[Kernel, Handle, Counters], int]
    attached: Callable[[Kernel, Handle], bool]


def _by_name(mod):
    return (lambda k, h, c, ctx: mod.attach(k, h.name, c, h.func, ctx),
            lambda k, h, ctx: mod.detach(k, h.name, h.func, ctx),
            mod.attached)


MECHANISMS: dict[str, Mechanism] = {
    KLP: Mechanism(KLP, ("klp_patch_func()", "klp_unpatch_func()"), *_by_name(livepatch)),
    KPROBE: Mechanism(KPROBE, ("register_kprobe()", "unregister_kprobe()"), *_by_name(kprobes)),
    BPF: Mechanism(BPF, ("bpf_trampoline_link_prog()", "bpf_trampoline_unlink_prog()"), *_by_name(bpf)),
    DIRECT: Mechanism(DIRECT, ("register_ftrace_direct()", "unregister_ftrace_direct()"),
                      lambda k, h, c, ctx: plainops.attach_direct(k, h, c, h.func, ctx),
                      lambda k, h, ctx: plainops.detach_direct(k, h, h.func, ctx), plainops.attached_direct),
    LIST: Mechanism(LIST, ("register_ftrace_function()", "unregister_ftrace_function()"),
                    lambda k, h, c, ctx: plainops.attach_list(k, h, c, h.func, ctx),
                    lambda k, h, ctx: plainops.detach_list(k, h, h.func, ctx), plainops.attached_list),
}

#: the owners' callbacks by ops kind, for state.decode()
OPS_FUNCS = {"bpf": bpf.ops_func}
