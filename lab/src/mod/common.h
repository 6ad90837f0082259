/* ftsim kernel lab: shared bits of the lab modules.  func=: the target function */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/atomic.h>
static char *func = "cmdline_proc_show";
module_param(func, charp, 0444);
static int hits;
module_param(hits, int, 0644);
static long lastret = 0x7fffffff;
module_param(lastret, long, 0644);
MODULE_LICENSE("GPL");
