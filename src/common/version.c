/*
 * version.c - the library version string, set by CMake from project(VERSION).
 */
#include "tasker/version.h"

const char *tk_version(void)
{
    return TK_VERSION_STRING;
}
