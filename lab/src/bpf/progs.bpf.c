/* ftsim kernel lab BPF programs.  The target is set by the loader (bpf_program__set_attach_target);
 * every program prints "FTSLAB <tag> <kind> <value>" with bpf_printk so the guest can tell who fired. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";
volatile int tag = -1;   /* .data: set by the loader */

SEC("fentry")
int BPF_PROG(fentry_p) { bpf_printk("FTSLAB %d fentry 0", tag); return 0; }

SEC("fexit")
int BPF_PROG(fexit_cmdline, struct seq_file *m, void *v, int ret) { bpf_printk("FTSLAB %d fexit %d", tag, ret); return 0; }

SEC("fexit")
int BPF_PROG(fexit_sched, struct task_struct *p, int ret) { bpf_printk("FTSLAB %d fexit %d", tag, ret); return 0; }

SEC("fmod_ret")
int BPF_PROG(fmodret_err) { bpf_printk("FTSLAB %d fmodret -4001", tag); return -4001; }

SEC("fmod_ret")
int BPF_PROG(fmodret_pass) { bpf_printk("FTSLAB %d fmodret 0", tag); return 0; }

SEC("kprobe")
int override_p(struct pt_regs *ctx) { bpf_printk("FTSLAB %d override -4002", tag); bpf_override_return(ctx, -4002); return 0; }
