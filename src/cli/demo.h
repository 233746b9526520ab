/*
 * demo.h - `tasker dev --demo`: run each template of the dev worker once through the REST API
 * and print a table of the outcomes.
 */
#ifndef TK_CLI_DEMO_H
#define TK_CLI_DEMO_H

#include <stdio.h>

#include "template/template.h"

/* Run the templates of `served` (those the dev worker loaded) that are registered on the
 * server at base_url, one task each (context and expected final state from the template's
 * metadata.demo, else {"even_number": 6} and complete), waiting for each to finish; other
 * templates registered in the database are listed as skipped (no worker here runs them).
 * Prints the table and how to try it with curl to `out`. Returns the number of workflows that
 * did not end as expected, or -1 when `served` is empty or the server could not be asked for
 * its templates. */
int tk_demo_run(const char *base_url, const tk_template_set_t *served, FILE *out);

#endif
