#ifndef PGBRIDGE_CMALLOC_SHIM_H
#define PGBRIDGE_CMALLOC_SHIM_H
// glibc's allocator tuning (mallopt and its M_* parameters), not exported by Swift's Glibc module.
#include <malloc.h>
#endif
