/*
 * demo.h - `tasker dev --demo`: run every registered template once through the REST API and
 * print a table of the outcomes.
 */
#ifndef TK_CLI_DEMO_H
#define TK_CLI_DEMO_H

#include <stdio.h>

/* Run the templates registered on the server at base_url, one task each (context and
 * expected final state from the template's metadata.demo, else {"even_number": 6} and
 * complete), waiting for each to finish. Prints the table and how to try it with curl to
 * `out`. Returns the number of workflows that did not end as expected (-1 if the server
 * could not be asked for its templates). */
int tk_demo_run(const char *base_url, FILE *out);

#endif
