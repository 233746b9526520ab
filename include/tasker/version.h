/*
 * version.h - tasker's version and the database schema version it speaks.
 */
#ifndef TASKER_VERSION_H
#define TASKER_VERSION_H

#include "tasker/error.h"

/* Version of libtasker, "MAJOR.MINOR.PATCH". */
TK_API const char *tk_version(void);

#endif
