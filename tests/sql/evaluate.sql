-- evaluate.sql - evaluate_task, the decision after every step result: the task's next state
-- from its steps (complete, blocked_by_failures, error, steps_in_process, waiting_for_retry,
-- waiting_for_dependencies) and which ready steps it queues, for every kind of step a task
-- can hold: parents complete, resolved_manually, unfinished, failed or cancelled; a backoff
-- over or still running; attempts left or used up. Each case starts in steps_in_process.
\ir lib/fixtures.sql

DO $$
DECLARE
    x record;
    t uuid;
    got text;
    queued text;
BEGIN
    PERFORM tasker_mq."create"('worker_test_ns_queue');
    FOR x IN SELECT * FROM (VALUES
            ('all complete', '{a:complete,b:complete}', '{a>b}', NULL, 'complete', ''),
            ('a child ready', '{a:complete,b}', '{a>b}', NULL, 'steps_in_process', 'b'),
            ('parent running', '{a:in_progress,b}', '{a>b}', NULL, 'steps_in_process', ''),
            ('failed, one running', '{a:error,b:in_progress}', '{}', NULL, 'blocked_by_failures', ''),
            ('failed, nothing running', '{a:error,b}', '{a>b}', NULL, 'error', ''),
            ('backoff running', '{a:waiting_for_retry}', '{}', 600, 'waiting_for_retry', ''),
            ('backoff over', '{a:waiting_for_retry}', '{}', 5, 'steps_in_process', 'a'),
            ('resolved parent', '{a:resolved_manually,b,c}', '{a>b,b>c}', NULL, 'steps_in_process', 'b'),
            ('cancelled parent', '{a:cancelled,b}', '{a>b}', NULL, 'waiting_for_dependencies', ''),
            ('diamond fan-out', '{a:complete,b,c,d}', '{a>b,a>c,b>d,c>d}', NULL, 'steps_in_process', 'b,c'),
            ('attempts used up', '{a:waiting_for_retry}', '{}', -1, 'waiting_for_retry', ''))
            AS v(name, steps, edges, backoff, target, queued) LOOP
        t := test.make_task(x.steps::text[], x.edges::text[], p_created_at => now() - interval '1 hour',
                            p_state => 'steps_in_process');
        IF x.backoff IS NOT NULL THEN
            PERFORM test.set_retry(test.step(t, 'a'), CASE WHEN x.backoff < 0 THEN 3 ELSE 1 END, 3,
                                   true, now() - interval '1 minute', abs(x.backoff));
        END IF;
        got := tasker.evaluate_task(t);
        PERFORM test.eq(got, x.target, x.name || ': next state');
        PERFORM test.eq((SELECT state FROM tasker.tasks WHERE task_uuid = t)::text, x.target,
                        x.name || ': task moved');
        SELECT coalesce(string_agg(n.name, ',' ORDER BY n.name), '') INTO queued
        FROM tasker.workflow_steps ws JOIN tasker.named_steps n USING (named_step_uuid)
        WHERE ws.task_uuid = t AND ws.state = 'enqueued';
        PERFORM test.eq(queued, x.queued, x.name || ': steps queued');
        PERFORM test.eq((SELECT count(*) FROM tasker_mq.messages
                         WHERE message->>'task_uuid' = t::text)::integer,
                        coalesce(cardinality(string_to_array(nullif(x.queued, ''), ',')), 0),
                        x.name || ': one message per queued step');
    END LOOP;
END
$$;
