#ifndef PGBRIDGE_CHIREDIS_SHIM_H
#define PGBRIDGE_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
