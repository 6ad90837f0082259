/* livepatch of one lab target; LPVAL (1-4) tells the lab's livepatch modules apart (lab_lp_a .. lab_lp_d):
 * the new bodies print LIVEPATCH-<LPVAL> or return -1000-LPVAL. */
#include "common.h"
#include <linux/livepatch.h>
#include <linux/seq_file.h>
#include <linux/sched.h>

static int new_cmdline_proc_show(struct seq_file *m, void *v)
{
	hits++;
	seq_printf(m, "LIVEPATCH-%d\n", LPVAL);
	return 0;
}

static int new_security_task(struct task_struct *p)   /* security_task_getscheduler, _getioprio */
{
	hits++;
	return -1000 - LPVAL;
}

static long new_x64_sys(const struct pt_regs *regs)    /* __x64_sys_getppid, __x64_sys_getpid */
{
	hits++;
	return -1000 - LPVAL;
}

static struct klp_func funcs[2] = { {}, {} };
static struct klp_object objs[] = { { .funcs = funcs }, {} };
static struct klp_patch patch = { .mod = THIS_MODULE, .objs = objs };

static int __init lp_init(void)
{
	funcs[0].old_name = func;
	if (!strcmp(func, "cmdline_proc_show"))
		funcs[0].new_func = new_cmdline_proc_show;
	else if (!strcmp(func, "security_task_getscheduler") || !strcmp(func, "security_task_getioprio"))
		funcs[0].new_func = new_security_task;
	else if (!strcmp(func, "__x64_sys_getppid") || !strcmp(func, "__x64_sys_getpid"))
		funcs[0].new_func = new_x64_sys;
	else
		return -EINVAL;
	return klp_enable_patch(&patch);
}
static void __exit lp_exit(void) {}
module_init(lp_init);
module_exit(lp_exit);
MODULE_INFO(livepatch, "Y");
