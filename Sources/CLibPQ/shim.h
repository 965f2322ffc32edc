#ifndef PGBRIDGE_CLIBPQ_SHIM_H
#define PGBRIDGE_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
