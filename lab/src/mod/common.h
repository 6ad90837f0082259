/* ftsim kernel lab: shared bits of the lab modules.  func=: the target function */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/atomic.h>
#include <linux/string.h>
static char *func = "cmdline_proc_show";
module_param(func, charp, 0444);
static int hits;
module_param(hits, int, 0644);
static long lastret = 0x7fffffff;
module_param(lastret, long, 0644);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ftsim kernel lab consumer");

/* SYSCALL_DEFINE0 makes __x64_sys_X an alias of __do_sys_X (and __ia32_sys_X): an ftrace record is named
 * by one of them, and a filter by name (ftrace_set_filter, register_fprobe) matches that one only.  The
 * lab's modules try the names in turn: name(0) is func, name(1) and name(2) the aliases, NULL after. */
static __maybe_unused char lab_alias[128];
static __maybe_unused const char *name(int i)
{
	if (i == 0)
		return func;
	if (i > 2 || strncmp(func, "__x64_sys_", 10))
		return NULL;
	snprintf(lab_alias, sizeof(lab_alias), "%s%s", i == 1 ? "__do_sys_" : "__ia32_sys_", func + 10);
	return lab_alias;
}
