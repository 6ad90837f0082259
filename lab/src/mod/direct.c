/* A direct ops without ops_func (like samples/ftrace/ftrace-direct-multi.c): a trampoline that counts calls.
 * API: register_ftrace_direct_multi(ops, addr) up to 6.5; register_ftrace_direct(ops, addr) and
 * unregister_ftrace_direct(ops, addr, free_filters) from 6.6 (the _multi names were removed).
 * The trampoline starts with ENDBR (IBT kernels: objtool warns without it) and does the call depth
 * accounting of call-depth-tracking kernels, as the 6.6+ sample does. */
#include "common.h"
#include <linux/version.h>
#include <linux/ftrace.h>
#include <asm/asm-offsets.h>
#include <asm/linkage.h>
#include <asm/ibt.h>
#include <asm/nospec-branch.h>

#define S_(x) #x
#define S(x) S_(x)

void lab_direct_func(unsigned long ip);
void lab_direct_func(unsigned long ip) { hits++; }
extern void TRAMP(void *);

#ifndef CALL_DEPTH_ACCOUNT
#define CALL_DEPTH_ACCOUNT ""
#endif

asm (
"	.pushsection    .text, \"ax\", @progbits\n"
"	.type		" S(TRAMP) ", @function\n"
"	.globl		" S(TRAMP) "\n"
"   " S(TRAMP) ":"
	ASM_ENDBR
"	pushq %rbp\n"
"	movq %rsp, %rbp\n"
	CALL_DEPTH_ACCOUNT
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
"	.size		" S(TRAMP) ", .-" S(TRAMP) "\n"
"	.popsection\n"
);

static struct ftrace_ops direct;
static int __init direct_init(void)
{
	int i, ret = -EINVAL;
	for (i = 0; ret == -EINVAL && name(i); i++)
		ret = ftrace_set_filter(&direct, (unsigned char *)name(i), strlen(name(i)), 0);
	if (ret)
		return ret;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
	return register_ftrace_direct(&direct, (unsigned long)TRAMP);
#else
	return register_ftrace_direct_multi(&direct, (unsigned long)TRAMP);
#endif
}
static void __exit direct_exit(void)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
	unregister_ftrace_direct(&direct, (unsigned long)TRAMP, true);
#else
	unregister_ftrace_direct_multi(&direct, (unsigned long)TRAMP);
#endif
}
module_init(direct_init);
module_exit(direct_exit);
