#include "direct.c"
