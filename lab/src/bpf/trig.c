/* trig NR [A1 [A2]]: makes the raw syscall NR(A1, A2) (missing arguments are 0) and prints the raw return
 * value (rax): sched_getscheduler(0) is 145, ioprio_get(IOPRIO_WHO_PROCESS, 0) 252, getppid 110, getpid 39. */
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv)
{
	long nr = argc > 1 ? atol(argv[1]) : 39, a1 = argc > 2 ? atol(argv[2]) : 0, a2 = argc > 3 ? atol(argv[3]) : 0, ret;
	asm volatile ("syscall" : "=a"(ret) : "0"(nr), "D"(a1), "S"(a2) : "rcx", "r11", "memory");
	printf("%ld\n", ret);
	return 0;
}
