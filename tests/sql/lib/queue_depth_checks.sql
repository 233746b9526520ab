-- queue_depth_checks.sql - the checks of queue_depth.sql, run by it in three sessions. Each
-- is its own transaction, followed by a VACUUM, so that the messages a check deleted are gone
-- from the indexes before the next one walks them.

SELECT test.check_depth('claim_steps, one queue', 'worker_qd_queue',
    $q$SELECT * FROM tasker.claim_steps('{worker_qd_queue}', '{h}', 1, 'w1', 30)$q$);
VACUUM tasker_mq.messages;
SELECT test.check_depth('claim_steps, two queues', 'worker_qd_queue',
    $q$SELECT * FROM tasker.claim_steps('{worker_qd2_queue, worker_qd_queue}', NULL, 1, 'w1', 30)$q$);
VACUUM tasker_mq.messages;
SELECT test.check_depth('claim_steps, behind another queue', 'worker_qd_queue',
    $q$SELECT * FROM tasker.claim_steps('{worker_qd_queue}', '{h}', 1, 'w1', 30)$q$,
    '{}', 'plain_qd');
VACUUM tasker_mq.messages;
SELECT test.check_depth('tasker_mq.read', 'plain_qd',
    $q$SELECT * FROM tasker_mq.read('plain_qd', 30, 1)$q$);
VACUUM tasker_mq.messages;
SELECT test.check_depth('tasker_mq.pop', 'plain_qd',
    $q$SELECT * FROM tasker_mq.pop('plain_qd', 1)$q$);
VACUUM tasker_mq.messages;
-- the orchestrator's pass: messages that ask for a task's evaluation (a kind other than
-- step_result), all about one real task
SELECT test.check_depth('process_step_results', 'orchestration_step_results',
    $q$SELECT * FROM tasker.process_step_results(1, ROW(0, 2.0, 60.0, 0.0)::tasker.backoff_policy)$q$,
    jsonb_build_object('task_uuid', test.make_shape('linear'), 'kind', 'evaluate'));
VACUUM tasker_mq.messages;
