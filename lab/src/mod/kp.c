/* kprobe on func; POST=1 adds a post_handler (-> kprobe_ipmodify_ops on ftrace). */
#include "common.h"
#include <linux/kprobes.h>

static int pre(struct kprobe *p, struct pt_regs *regs) { hits++; return 0; }
#if POST
static int phits;
module_param(phits, int, 0644);
static void post(struct kprobe *p, struct pt_regs *regs, unsigned long flags) { phits++; }
#endif
static struct kprobe kp = { .pre_handler = pre,
#if POST
	.post_handler = post,
#endif
};
static int __init kp_init(void) { kp.symbol_name = func; return register_kprobe(&kp); }
static void __exit kp_exit(void) { unregister_kprobe(&kp); }
module_init(kp_init);
module_exit(kp_exit);
