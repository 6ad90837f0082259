#include "fprobe.c"
