-- queues.sql - the tasker_mq SQL layer (sql/0004_queues.sql) checked through SQL:
-- queue_namespace / queue_channel (Tasker's naming rule), the queue name CHECK, send to a
-- missing queue and the queue row a send leaves unlocked (sql/0020), the notification
-- payloads (including a batch too big to list its ids), metrics / metrics_all / list_queues,
-- and drop_queue. The C client has its own test (tests/integration/test_mq.c).

-- Namespaces and channels.
DO $$
BEGIN
    ASSERT tasker_mq.queue_namespace('orchestration_step_results') = 'orchestration';
    ASSERT tasker_mq.queue_namespace('orchestration') = 'orchestration';
    ASSERT tasker_mq.queue_namespace('worker_payments_queue') = 'payments';
    ASSERT tasker_mq.queue_namespace('worker_order_fulfillment_queue') = 'order_fulfillment';
    ASSERT tasker_mq.queue_namespace('payments_queue') = 'payments';
    ASSERT tasker_mq.queue_namespace('payments_domain_events') = 'default';
    ASSERT tasker_mq.queue_namespace('_queue') = 'default';
    ASSERT tasker_mq.queue_namespace('anything') = 'default';
    ASSERT tasker_mq.queue_channel('worker_payments_queue') = 'pgmq_message_ready.payments';
    ASSERT tasker_mq.queue_channel('orchestration_step_results')
           = 'pgmq_message_ready.orchestration';
    ASSERT tasker_mq.queue_channel('payments_domain_events') = 'pgmq_message_ready.default';
END
$$;

-- Queue names: [A-Za-z0-9_]{1,47}, enforced by a CHECK; create is idempotent.
DO $$
DECLARE
    bad text;
    n integer;
BEGIN
    FOREACH bad IN ARRAY ARRAY['bad-name', '', 'has space', 'semi;colon', 'caf' || chr(233),
                               repeat('q', 48)] LOOP
        BEGIN
            PERFORM tasker_mq."create"(bad);
            RAISE EXCEPTION 'queue name "%" was accepted', bad;
        EXCEPTION WHEN check_violation THEN
            NULL;
        END;
    END LOOP;
    PERFORM tasker_mq."create"(repeat('q', 47));
    PERFORM tasker_mq."create"('worker_sqltest_queue');
    PERFORM tasker_mq."create"('worker_sqltest_queue');
    SELECT count(*) INTO n FROM tasker_mq.queues WHERE queue_name = 'worker_sqltest_queue';
    ASSERT n = 1, 'create is idempotent';
END
$$;

-- Each queue keeps its namespace (0040), as queue_namespace names it.
DO $$
BEGIN
    PERFORM tasker_mq."create"(q) FROM unnest(ARRAY['worker_ns_check_queue', 'orchestration_x',
                                                   'plain_queue', 'odd_name']) q;
    ASSERT (SELECT array_agg(namespace ORDER BY queue_name) FROM tasker_mq.queues
            WHERE queue_name IN ('worker_ns_check_queue', 'orchestration_x', 'plain_queue',
                                 'odd_name'))
           = ARRAY['default', 'orchestration', 'plain', 'ns_check'],
        (SELECT array_agg(namespace ORDER BY queue_name)::text FROM tasker_mq.queues);
    ASSERT NOT EXISTS (SELECT 1 FROM tasker_mq.queues
                       WHERE namespace IS DISTINCT FROM tasker_mq.queue_namespace(queue_name));
END
$$;

-- Sending to a missing queue raises foreign_key_violation (SQLSTATE 23503, which the C
-- client maps to TK_ENOTFOUND) and leaves no message behind, one message or a batch.
DO $$
BEGIN
    BEGIN
        PERFORM tasker_mq.send('no_such_queue', '{}');
        RAISE EXCEPTION 'send to a missing queue succeeded';
    EXCEPTION WHEN foreign_key_violation THEN
        ASSERT SQLERRM = 'queue "no_such_queue" does not exist', SQLERRM;
    END;
    BEGIN
        PERFORM tasker_mq.send_batch('no_such_queue', ARRAY['{}'::jsonb, '{}'::jsonb]);
        RAISE EXCEPTION 'send_batch to a missing queue succeeded';
    EXCEPTION WHEN foreign_key_violation THEN
        NULL;
    END;
    ASSERT NOT EXISTS (SELECT 1 FROM tasker_mq.messages WHERE queue_name = 'no_such_queue'),
        'no message left for a missing queue';
END
$$;

-- A send does not lock its queue's row (sql/0020: no foreign-key check): the row's xmax
-- stays 0 after sends in this transaction, which a KEY SHARE lock would have set.
DO $$
BEGIN
    PERFORM tasker_mq."create"('mq_nolock');
    PERFORM tasker_mq.send('mq_nolock', '{}');
    PERFORM tasker_mq.send_batch('mq_nolock', ARRAY['{}'::jsonb, '{}'::jsonb]);
    ASSERT (SELECT xmax::text FROM tasker_mq.queues WHERE queue_name = 'mq_nolock') = '0',
        'a send locked its queue row';
    PERFORM tasker_mq.drop_queue('mq_nolock');
END
$$;

-- Notification payloads: one per send, one per batch; a big batch omits the id list (a
-- payload of 8000 bytes or more would make pg_notify fail and the whole batch with it).
-- pg_notification_queue_usage cannot see the payloads, so this checks that the sends succeed
-- and return what they inserted; the C test checks the payloads as received.
DO $$
DECLARE
    ids bigint[];
    n integer;
BEGIN
    SELECT array_agg(id) INTO ids
    FROM tasker_mq.send_batch('worker_sqltest_queue',
                              ARRAY(SELECT jsonb_build_object('i', g)
                                    FROM generate_series(1, 3000) g)) AS id;
    ASSERT cardinality(ids) = 3000, 'big batch sent';
    SELECT count(*) INTO n
    FROM tasker_mq.messages m
    WHERE m.msg_id = ANY (ids) AND (m.message->>'i')::int = array_position(ids, m.msg_id);
    ASSERT n = 3000, 'batch ids returned in message order';
    ASSERT tasker_mq.purge_queue('worker_sqltest_queue') = 3000, 'purge counts';
END
$$;

-- metrics, metrics_all and list_queues.
DO $$
DECLARE
    m record;
    id bigint;
    n integer;
BEGIN
    PERFORM tasker_mq."create"('mq_a');
    PERFORM tasker_mq."create"('mq_b');
    PERFORM tasker_mq.send('mq_a', '{"x": 1}');
    PERFORM tasker_mq.send('mq_a', '{"x": 2}', 60);
    id := tasker_mq.send('mq_a', '{"x": 3}');
    ASSERT tasker_mq.archive('mq_a', id), 'archived';

    SELECT * INTO STRICT m FROM tasker_mq.metrics('mq_a');
    ASSERT m.queue_name = 'mq_a';
    ASSERT m.queue_length = 2, format('queue_length %s', m.queue_length);
    ASSERT m.total_messages = 3, format('total_messages %s', m.total_messages);
    ASSERT m.oldest_msg_age_sec >= 0 AND m.newest_msg_age_sec >= 0;
    ASSERT m.scrape_time = now();

    SELECT * INTO STRICT m FROM tasker_mq.metrics('mq_b');
    ASSERT m.queue_length = 0 AND m.total_messages = 0;
    ASSERT m.oldest_msg_age_sec IS NULL AND m.newest_msg_age_sec IS NULL, 'empty queue: no ages';

    -- metrics_all: one row per queue, by name, equal to metrics() of each.
    SELECT count(*) INTO n FROM tasker_mq.metrics_all();
    ASSERT n = (SELECT count(*) FROM tasker_mq.queues), 'one metrics row per queue';
    ASSERT (SELECT array_agg(queue_name) FROM tasker_mq.metrics_all())
           = (SELECT array_agg(queue_name::text ORDER BY queue_name) FROM tasker_mq.queues),
           'metrics_all ordered by name';
    SELECT count(*) INTO n
    FROM tasker_mq.metrics_all() a
    JOIN tasker_mq.queues q ON q.queue_name = a.queue_name
    CROSS JOIN LATERAL tasker_mq.metrics(q.queue_name) one
    WHERE (a.queue_length, a.total_messages) IS NOT DISTINCT FROM
          (one.queue_length, one.total_messages);
    ASSERT n = (SELECT count(*) FROM tasker_mq.queues), 'metrics_all agrees with metrics';
    SELECT * INTO STRICT m FROM tasker_mq.metrics_all() WHERE queue_name = 'mq_a';
    ASSERT m.queue_length = 2 AND m.total_messages = 3;

    -- list_queues: every queue once, by name, with its creation time.
    ASSERT (SELECT array_agg(queue_name) FROM tasker_mq.list_queues())
           = (SELECT array_agg(queue_name::text ORDER BY queue_name) FROM tasker_mq.queues),
           'list_queues ordered by name';
    ASSERT (SELECT created_at FROM tasker_mq.list_queues() WHERE queue_name = 'mq_b') = now();

    -- drop_queue removes the queue, its messages and its archive.
    ASSERT tasker_mq.drop_queue('mq_a'), 'dropped';
    ASSERT NOT tasker_mq.drop_queue('mq_a'), 'dropping twice';
    ASSERT NOT EXISTS (SELECT FROM tasker_mq.messages WHERE queue_name = 'mq_a');
    ASSERT NOT EXISTS (SELECT FROM tasker_mq.archive WHERE queue_name = 'mq_a');
    ASSERT NOT EXISTS (SELECT FROM tasker_mq.list_queues() WHERE queue_name = 'mq_a');
    ASSERT NOT EXISTS (SELECT FROM tasker_mq.metrics_all() WHERE queue_name = 'mq_a');
END
$$;

-- read / pop / delete / archive / set_vt semantics in SQL (plpgsql bodies).
DO $$
DECLARE
    r record;
    id1 bigint;
    id2 bigint;
    n integer;
BEGIN
    PERFORM tasker_mq."create"('mq_ops');
    id1 := tasker_mq.send('mq_ops', '{"o": 1}');
    id2 := tasker_mq.send('mq_ops', '{"o": 2}');
    SELECT count(*) INTO n FROM tasker_mq.read('mq_ops', 60, 10);
    ASSERT n = 2, 'read both';
    SELECT count(*) INTO n FROM tasker_mq.read('mq_ops', 60, 10);
    ASSERT n = 0, 'hidden';
    SELECT * INTO STRICT r FROM tasker_mq.set_vt('mq_ops', id1, 0);
    ASSERT r.msg_id = id1 AND r.read_ct = 1;
    SELECT * INTO STRICT r FROM tasker_mq.read('mq_ops', 60, 10);
    ASSERT r.msg_id = id1 AND r.read_ct = 2, 'visible again after set_vt 0';
    ASSERT (SELECT count(*) FROM tasker_mq.read('mq_ops', 60, 0)) = 0, 'qty 0';
    ASSERT tasker_mq.delete('mq_ops', id1) AND NOT tasker_mq.delete('mq_ops', id1);
    ASSERT NOT tasker_mq.archive('other_queue', id2), 'archive checks the queue';
    ASSERT (SELECT array_agg(x) FROM tasker_mq.archive('mq_ops', ARRAY[id2, id1]) AS x) = ARRAY[id2];
    ASSERT (SELECT read_ct FROM tasker_mq.archive WHERE msg_id = id2) = 1;
    id1 := tasker_mq.send('mq_ops', '{"o": 3}');
    id2 := tasker_mq.send('mq_ops', '{"o": 4}', 60);
    SELECT * INTO STRICT r FROM tasker_mq.pop('mq_ops', 5);
    ASSERT r.msg_id = id1 AND r.read_ct = 0, 'pop takes the visible one';
    ASSERT (SELECT array_agg(x) FROM tasker_mq.delete('mq_ops', ARRAY[id1, id2]) AS x) = ARRAY[id2];
    ASSERT NOT EXISTS (SELECT FROM tasker_mq.messages WHERE queue_name = 'mq_ops');
END
$$;
