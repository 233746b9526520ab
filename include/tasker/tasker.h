/*
 * tasker.h - umbrella header of libtasker, the tasker workflow engine's C API.
 *
 * Anything not declared under include/tasker/ is not API. Sub-headers:
 *   error.h    error codes and the tk_error_t detail record
 *   state.h    task and step state machines (states, events, legal transitions)
 *   version.h  library version
 */
#ifndef TASKER_H
#define TASKER_H

#include "tasker/error.h"
#include "tasker/state.h"
#include "tasker/version.h"

#endif
