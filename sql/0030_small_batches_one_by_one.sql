-- 0030_small_batches_one_by_one.sql - batches of one or two tasks are created one by one.
--
-- create_tasks_at_once (0029) runs a fixed set of statements whatever the batch's size, which
-- costs more than create_task_row for a single task. Inside the server (linear tasks, 300
-- batches of each size, each rolled back, two runs, p50 in us):
--
--   tasks in the batch    1           2            3            4
--   one by one            656 / 961   1024 / 1109  1533 / 1573  2165 / 2020
--   at once               882 / 1345  1078 / 1156  1383 / 1435  1823 / 1718
--
-- So a batch of fewer than three requests goes straight to create_tasks_one_by_one; larger
-- ones are created at once, falling back to one by one on an error as before. The answers and
-- errors are the same either way (tests/sql/create_batch.sql).

CREATE OR REPLACE FUNCTION tasker.create_tasks(p_requests jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF jsonb_typeof(p_requests) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'create_tasks expects a JSON array of task requests'
            USING ERRCODE = '22023';
    END IF;
    IF jsonb_array_length(p_requests) >= 3 THEN
        BEGIN
            RETURN tasker.create_tasks_at_once(p_requests);
        EXCEPTION WHEN OTHERS THEN
            NULL; -- rolled back: the one-by-one creation below fails on the same item, names it
        END;
    END IF;
    RETURN tasker.create_tasks_one_by_one(p_requests);
END
$$;
