/*
 * sql_dataset.h - the dataset of `tasker bench sql` (see sql_dataset.c for its contents).
 */
#ifndef TK_BENCH_SQL_DATASET_H
#define TK_BENCH_SQL_DATASET_H

#include "bench/bench.h"

/* Make sure database tasker_bench_sql_<tasks> holds a finished dataset of `tasks` tasks for
 * this build's schema: reuse it (*reused = true) or (re)create and generate it (*seconds =
 * how long that took). *url_out gets the database's URL (caller frees). TK_OK or an error
 * with the reason in err. */
int tk_bench_sql_dataset(tk_bench_t *b, int tasks, char **url_out, bool *reused, double *seconds,
                         tk_error_t *err);

#endif
