/* trig NR: makes the raw syscall NR(0) and prints the raw return value (rax). */
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv)
{
	long nr = argc > 1 ? atol(argv[1]) : 39, ret;
	asm volatile ("syscall" : "=a"(ret) : "0"(nr), "D"(0L) : "rcx", "r11", "memory");
	printf("%ld\n", ret);
	return 0;
}
