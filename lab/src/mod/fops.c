/* plain ftrace_ops observer (no flags): passive list ops. */
#include "common.h"
#include <linux/ftrace.h>

static void notrace cb(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	hits++;
}
static struct ftrace_ops ops = { .func = cb };
static int __init fops_init(void)
{
	int i, ret = -EINVAL;
	for (i = 0; ret == -EINVAL && name(i); i++)
		ret = ftrace_set_filter(&ops, (unsigned char *)name(i), strlen(name(i)), 0);
	if (ret)
		return ret;
	return register_ftrace_function(&ops);
}
static void __exit fops_exit(void) { unregister_ftrace_function(&ops); }
module_init(fops_init);
module_exit(fops_exit);
