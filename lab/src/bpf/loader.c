/* lab loader: bpfl OBJ PROG FUNC PIN TAG -> loads only PROG of OBJ against FUNC, attaches, pins the link.
 * Prints "BPFL <ret>" where ret is 0 or a negative errno, and exits with 0 only on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>

static int quiet(enum libbpf_print_level l, const char *fmt, va_list ap)
{
	if (l == LIBBPF_DEBUG) return 0;
	return vfprintf(stderr, fmt, ap);
}

int main(int argc, char **argv)
{
	if (argc != 6) { fprintf(stderr, "usage: bpfl OBJ PROG FUNC PIN TAG\n"); return 2; }
	libbpf_set_print(quiet);
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	int err = libbpf_get_error(obj);
	if (err) { printf("BPFL %d open\n", err); return 1; }
	struct bpf_program *p, *want = NULL;
	bpf_object__for_each_program(p, obj) {
		if (!strcmp(bpf_program__name(p), argv[2])) want = p;
		else bpf_program__set_autoload(p, false);
	}
	if (!want) { printf("BPFL %d noprog\n", -ENOENT); return 1; }
	if (bpf_program__type(want) == BPF_PROG_TYPE_TRACING) {
		err = bpf_program__set_attach_target(want, 0, argv[3]);
		if (err) { printf("BPFL %d target\n", err); return 1; }
	}
	struct bpf_map *m;
	bpf_object__for_each_map(m, obj) {
		const char *n = bpf_map__name(m);
		size_t sz = 0;
		if (strlen(n) >= 5 && !strcmp(n + strlen(n) - 5, ".data")) {
			int *v = bpf_map__initial_value(m, &sz);
			if (v && sz >= sizeof(int)) *v = atoi(argv[5]);
		}
	}
	err = bpf_object__load(obj);
	if (err) { printf("BPFL %d load\n", err); return 1; }
	struct bpf_link *l;
	if (bpf_program__type(want) == BPF_PROG_TYPE_KPROBE)
		l = bpf_program__attach_kprobe(want, false, argv[3]);
	else
		l = bpf_program__attach(want);
	err = libbpf_get_error(l);
	if (err) { printf("BPFL %d attach\n", err); return 1; }
	err = bpf_link__pin(l, argv[4]);
	if (err) { printf("BPFL %d pin\n", err); return 1; }
	printf("BPFL 0\n");
	return 0;
}
