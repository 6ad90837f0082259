#include "kp.c"
