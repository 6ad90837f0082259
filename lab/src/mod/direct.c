/* direct ops without ops_func (like samples/ftrace/ftrace-direct-multi.c of 6.1):
 * register_ftrace_direct_multi() with a trampoline that counts calls. */
#include "common.h"
#include <linux/ftrace.h>
#include <asm/asm-offsets.h>
#include <asm/linkage.h>

void lab_direct_func(unsigned long ip);
void lab_direct_func(unsigned long ip) { hits++; }
extern void lab_direct_tramp(void *);

asm (
"	.pushsection    .text, \"ax\", @progbits\n"
"	.type		lab_direct_tramp, @function\n"
"	.globl		lab_direct_tramp\n"
"   lab_direct_tramp:"
"	pushq %rbp\n"
"	movq %rsp, %rbp\n"
"	pushq %rdi\n"
"	pushq %rsi\n"
"	pushq %rdx\n"
"	pushq %rcx\n"
"	pushq %r8\n"
"	pushq %r9\n"
"	movq 8(%rbp), %rdi\n"
"	call lab_direct_func\n"
"	popq %r9\n"
"	popq %r8\n"
"	popq %rcx\n"
"	popq %rdx\n"
"	popq %rsi\n"
"	popq %rdi\n"
"	leave\n"
	ASM_RET
"	.size		lab_direct_tramp, .-lab_direct_tramp\n"
"	.popsection\n"
);

static struct ftrace_ops direct;
static int __init direct_init(void)
{
	int ret = ftrace_set_filter(&direct, func, strlen(func), 0);
	if (ret)
		return ret;
	return register_ftrace_direct_multi(&direct, (unsigned long)lab_direct_tramp);
}
static void __exit direct_exit(void) { unregister_ftrace_direct_multi(&direct, (unsigned long)lab_direct_tramp); }
module_init(direct_init);
module_exit(direct_exit);
