#include "lp.c"
