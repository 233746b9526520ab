-- retry.sql - retry eligibility and backoff in get_step_readiness_status, at the boundaries:
-- max_attempts 0, 1 and 3; retryable = false (Tasker bug 5); backoff not yet elapsed, just
-- elapsed, not recorded; reset_for_retry through transition_step_state_atomic (Tasker bug 25).
\ir lib/fixtures.sql

-- Eligibility table: (max_attempts, retryable, attempts) -> retry_eligible. A step is
-- eligible for its first attempt whatever its budget, and for a later one only if it is
-- retryable and has attempts left (max_attempts counts every execution, the first included).
-- ready_for_execution follows eligibility for a pending step and for a waiting_for_retry step
-- without backoff.
DO $$
DECLARE
    t uuid := test.make_task('{solo}');
    s uuid;
    c record;
    r record;
    st text;
BEGIN
    s := test.step(t, 'solo');
    FOR c IN SELECT * FROM (VALUES
            (0, true, 0, true), (0, true, 1, false), (0, true, 2, false),
            (1, true, 0, true), (1, true, 1, false), (1, true, 2, false),
            (3, true, 0, true), (3, true, 1, true), (3, true, 2, true), (3, true, 3, false),
            (3, true, 4, false),
            (3, false, 0, true), (3, false, 1, false), (3, false, 2, false),
            (1, false, 0, true), (0, false, 0, true), (0, false, 1, false))
            AS v(max_attempts, retryable, attempts, eligible) LOOP
        FOREACH st IN ARRAY ARRAY['pending', 'waiting_for_retry'] LOOP
            PERFORM test.set_step_state(s, st);
            PERFORM test.set_retry(s, c.attempts, c.max_attempts, c.retryable,
                                   CASE WHEN c.attempts > 0 THEN now() - interval '1 hour' END);
            SELECT * INTO STRICT r FROM get_step_readiness_status(t);
            PERFORM test.eq(r.retry_eligible, c.eligible,
                format('retry_eligible, %s, max_attempts %s, retryable %s, attempts %s',
                       st, c.max_attempts, c.retryable, c.attempts));
            PERFORM test.eq(r.ready_for_execution, c.eligible,
                format('ready_for_execution, %s, max_attempts %s, retryable %s, attempts %s',
                       st, c.max_attempts, c.retryable, c.attempts));
            PERFORM test.eq((r.attempts, r.max_attempts)::text,
                            format('(%s,%s)', c.attempts, c.max_attempts), 'attempts columns');
        END LOOP;
    END LOOP;
END
$$;

-- Backoff of a waiting_for_retry step: next_retry_at = last_failure_at + backoff; ready only
-- once that time has come (now() is the transaction's start, fixed within this block).
DO $$
DECLARE
    t uuid := test.make_task('{solo:waiting_for_retry}');
    s uuid;
    r record;
    failed_at timestamptz := now() - interval '10 seconds';
BEGIN
    s := test.step(t, 'solo');

    PERFORM test.set_retry(s, 1, 3, true, failed_at, 60);
    SELECT * INTO STRICT r FROM get_step_readiness_status(t);
    PERFORM test.eq(r.retry_eligible, true, 'backoff 60: eligible');
    PERFORM test.eq(r.dependencies_satisfied, true, 'backoff 60: dependencies');
    PERFORM test.eq(r.ready_for_execution, false, 'backoff 60 s, failed 10 s ago: not ready');
    PERFORM test.eq(r.last_failure_at, failed_at, 'backoff 60: last_failure_at');
    PERFORM test.eq(r.next_retry_at, failed_at + interval '60 seconds', 'backoff 60: next_retry_at');
    PERFORM test.eq(r.backoff_request_seconds, 60, 'backoff 60: backoff_request_seconds');

    PERFORM test.set_retry(s, 1, 3, true, failed_at, 11);
    SELECT * INTO STRICT r FROM get_step_readiness_status(t);
    PERFORM test.eq(r.ready_for_execution, false, 'backoff 11 s, failed 10 s ago: not ready');

    PERFORM test.set_retry(s, 1, 3, true, failed_at, 10);
    SELECT * INTO STRICT r FROM get_step_readiness_status(t);
    PERFORM test.eq(r.next_retry_at, now(), 'backoff 10 s, failed 10 s ago: next_retry_at = now');
    PERFORM test.eq(r.ready_for_execution, true, 'backoff 10 s, failed 10 s ago: ready (boundary)');

    PERFORM test.set_retry(s, 1, 3, true, failed_at, 5);
    SELECT * INTO STRICT r FROM get_step_readiness_status(t);
    PERFORM test.eq(r.ready_for_execution, true, 'backoff 5 s, failed 10 s ago: ready');
    PERFORM test.eq(r.next_retry_at, failed_at + interval '5 seconds', 'backoff 5: next_retry_at');

    PERFORM test.set_retry(s, 1, 3, true, failed_at, NULL);
    SELECT * INTO STRICT r FROM get_step_readiness_status(t);
    PERFORM test.eq(r.ready_for_execution, true, 'no backoff recorded: ready');
    PERFORM test.eq(r.next_retry_at, NULL::timestamptz, 'no backoff recorded: next_retry_at');

    -- Elapsed backoff does not help a step without attempts left.
    PERFORM test.set_retry(s, 3, 3, true, failed_at, 5);
    SELECT * INTO STRICT r FROM get_step_readiness_status(t);
    PERFORM test.eq(r.retry_eligible, false, 'exhausted: not eligible');
    PERFORM test.eq(r.ready_for_execution, false, 'exhausted, backoff elapsed: not ready');

    -- A step whose parent is not complete waits for it even with its backoff elapsed.
    t := test.make_task('{p:in_progress,c:waiting_for_retry}', '{p>c}');
    PERFORM test.set_retry(test.step(t, 'c'), 1, 3, true, failed_at, 5);
    SELECT * INTO STRICT r FROM get_step_readiness_status(t) WHERE name = 'c';
    PERFORM test.eq(r.ready_for_execution, false, 'backoff elapsed, parent running: not ready');
END
$$;

-- The backoff also keeps the task's other readiness views consistent: a waiting step in
-- backoff is not counted as ready, one past it is.
DO $$
DECLARE
    t uuid := test.make_task('{x:waiting_for_retry,y:waiting_for_retry}');
BEGIN
    PERFORM test.set_retry(test.step(t, 'x'), 2, 3, true, now() - interval '10 seconds', 60);
    PERFORM test.set_retry(test.step(t, 'y'), 2, 3, true, now() - interval '10 seconds', 5);
    PERFORM test.eq(test.ready_names(t), 'y', 'only the step past its backoff is ready');
END
$$;

-- reset_for_retry (error -> pending) gives the step a fresh budget: attempts 0, backoff
-- cleared, so a step that had used up its attempts is ready again (Tasker bug 25).
DO $$
DECLARE
    t uuid := test.make_task('{p:complete,s:error}', '{p>s}');
    s uuid;
    r record;
    n integer;
BEGIN
    s := test.step(t, 's');
    PERFORM test.set_retry(s, 3, 3, true, now() - interval '10 seconds', 60);
    SELECT * INTO STRICT r FROM get_step_readiness_status(t) WHERE name = 's';
    PERFORM test.eq(r.ready_for_execution, false, 'before reset: not ready');
    PERFORM test.eq(r.retry_eligible, false, 'before reset: not eligible');

    PERFORM test.eq(transition_step_state_atomic(s, 'error', 'pending', '{"by":"operator"}'), true,
                    'reset_for_retry moves the step');
    SELECT * INTO STRICT r FROM get_step_readiness_status(t) WHERE name = 's';
    PERFORM test.eq(r.current_state, 'pending', 'after reset: pending');
    PERFORM test.eq(r.attempts, 0, 'after reset: attempts zeroed');
    PERFORM test.eq(r.backoff_request_seconds, NULL::integer, 'after reset: backoff cleared');
    PERFORM test.eq(r.next_retry_at, NULL::timestamptz, 'after reset: no next_retry_at');
    PERFORM test.eq(r.retry_eligible, true, 'after reset: eligible');
    PERFORM test.eq(r.ready_for_execution, true, 'after reset: ready');
    SELECT count(*) INTO n FROM workflow_step_transitions
    WHERE workflow_step_uuid = s AND from_state = 'error' AND to_state = 'pending'
      AND event = 'reset_for_retry';
    PERFORM test.eq(n, 1, 'after reset: one reset_for_retry history row');

    -- Not retryable: reset still gives it its first attempt back.
    t := test.make_task('{s:error}');
    s := test.step(t, 's');
    PERFORM test.set_retry(s, 1, 3, false, now() - interval '10 seconds', NULL);
    PERFORM test.eq(test.ready_names(t), '', 'non-retryable in error: not ready');
    PERFORM test.eq(transition_step_state_atomic(s, 'error', 'pending'), true, 'reset 2');
    PERFORM test.eq(test.ready_names(t), 's', 'non-retryable after reset: ready');

    -- waiting_for_retry -> pending (retry) is not a reset: the budget is kept.
    t := test.make_task('{s:waiting_for_retry}');
    s := test.step(t, 's');
    PERFORM test.set_retry(s, 2, 3, true, now() - interval '10 seconds', 5);
    PERFORM test.eq(transition_step_state_atomic(s, 'waiting_for_retry', 'pending'), true, 'retry');
    SELECT * INTO STRICT r FROM get_step_readiness_status(t);
    PERFORM test.eq(r.attempts, 2, 'retry keeps attempts');
    PERFORM test.eq(r.backoff_request_seconds, 5, 'retry keeps the backoff');
END
$$;
