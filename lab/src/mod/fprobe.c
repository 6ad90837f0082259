/* An fprobe on func: EXIT=0 an entry handler only, EXIT=1 an entry and an exit handler (which keeps the
 * last return value it saw).  Handlers take pt_regs up to 6.13 and ftrace_regs from 6.14. */
#include "common.h"
#include <linux/version.h>
#include <linux/fprobe.h>

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 14, 0)
#define REGS struct ftrace_regs
#define RETVAL(r) ftrace_regs_get_return_value(r)
#else
#define REGS struct pt_regs
#define RETVAL(r) regs_return_value(r)
#endif

static int entry(struct fprobe *fp, unsigned long ip, unsigned long ret_ip, REGS *regs, void *data)
{
	hits++;
	return 0;
}
#if EXIT
static void exit_h(struct fprobe *fp, unsigned long ip, unsigned long ret_ip, REGS *regs, void *data)
{
	lastret = (long)RETVAL(regs);
}
#endif
static struct fprobe fp = { .entry_handler = entry,
#if EXIT
	.exit_handler = exit_h,
#endif
};
static int __init fpr_init(void)
{
	int i, ret = -ENOENT;
	for (i = 0; ret < 0 && name(i); i++)
		ret = register_fprobe(&fp, name(i), NULL);
	return ret;
}
static void __exit fpr_exit(void) { unregister_fprobe(&fp); }
module_init(fpr_init);
module_exit(fpr_exit);
