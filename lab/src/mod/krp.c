/* kretprobe on func: counts returns and keeps the last return value it saw. */
#include "common.h"
#include <linux/kprobes.h>

static int ret_handler(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	hits++;
	lastret = (long)regs_return_value(regs);
	return 0;
}
static struct kretprobe krp = { .handler = ret_handler, .maxactive = 8 };
static int __init krp_init(void) { krp.kp.symbol_name = func; return register_kretprobe(&krp); }
static void __exit krp_exit(void) { unregister_kretprobe(&krp); }
module_init(krp_init);
module_exit(krp_exit);
