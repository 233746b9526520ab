-- 0004_queues.sql - a pgmq-compatible message queue in plain SQL, schema tasker_mq.
--
-- Functions mirror pgmq's (create, send, send_batch, read, delete, archive, set_vt, metrics,
-- metrics_all, purge_queue, drop_queue, pop) with the same arguments and result columns, so
-- code written for pgmq reads naturally. The pgmq extension is not packaged for Debian and is
-- not required.
--
-- Departure from pgmq: all queues share one table (tasker_mq.messages) keyed by queue_name,
-- instead of a table per queue. Every function is then static SQL, where per-queue tables would
-- need dynamic SQL (parsed and planned on every call) on the hot path.
--
-- The per-message functions (send, send_batch, read, pop, delete, archive, set_vt) are plpgsql,
-- which keeps their plans for the session. PostgreSQL 15 cannot inline a LANGUAGE sql function
-- that modifies data, and plans its body again on every call: measured with pgbench on an empty
-- queue, read() took 0.127 ms per call as LANGUAGE sql and 0.043 ms as plpgsql (the bare
-- statement: 0.037 ms).
--
-- Wake-ups: send and send_batch call pg_notify on channel "pgmq_message_ready.<namespace>"
-- (Tasker's channel names; the namespace is derived from the queue name by queue_namespace)
-- with a small JSON payload {event_type, queue_name, namespace, msg_id | msg_ids,
-- message_count, delay_seconds} (msg_ids only for batches of at most 100 messages: NOTIFY
-- payloads must stay under 8000 bytes). Notifications are delivered at commit, so a consumer
-- never wakes before the message is visible to it; the payload never carries the message,
-- consumers always read it through read() so its visibility timeout is respected.

CREATE SCHEMA tasker_mq;

CREATE TABLE tasker_mq.queues (
    queue_name varchar(48) PRIMARY KEY CHECK (queue_name ~ '^[A-Za-z0-9_]{1,47}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tasker_mq.messages (
    msg_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue_name varchar(48) NOT NULL REFERENCES tasker_mq.queues ON DELETE CASCADE,
    read_ct integer NOT NULL DEFAULT 0,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    vt timestamptz NOT NULL,
    message jsonb,
    headers jsonb
);
-- Reads walk a queue in msg_id order and skip invisible rows.
CREATE INDEX messages_queue_idx ON tasker_mq.messages (queue_name, msg_id);

CREATE TABLE tasker_mq.archive (
    msg_id bigint PRIMARY KEY,
    queue_name varchar(48) NOT NULL,
    read_ct integer NOT NULL,
    enqueued_at timestamptz NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now(),
    vt timestamptz NOT NULL,
    message jsonb,
    headers jsonb
);
CREATE INDEX archive_queue_idx ON tasker_mq.archive (queue_name, archived_at);

-- The row type read(), set_vt() and pop() return (pgmq's message_record).
CREATE TYPE tasker_mq.message_record AS (
    msg_id bigint,
    read_ct integer,
    enqueued_at timestamptz,
    vt timestamptz,
    message jsonb,
    headers jsonb
);

CREATE TYPE tasker_mq.metrics_result AS (
    queue_name text,
    queue_length bigint,
    newest_msg_age_sec integer,
    oldest_msg_age_sec integer,
    total_messages bigint,
    scrape_time timestamptz
);

-- Namespace of a queue for notifications (Tasker's rule): orchestration* -> orchestration;
-- worker_<ns>_queue -> <ns>; <ns>_queue -> <ns>; anything else -> default.
CREATE FUNCTION tasker_mq.queue_namespace(p_queue_name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p_queue_name ~ '^orchestration' THEN 'orchestration'
        WHEN p_queue_name ~ '^worker_.+_queue$' THEN substring(p_queue_name FROM '^worker_(.+)_queue$')
        WHEN p_queue_name ~ '^[A-Za-z][A-Za-z0-9_]*_queue$' THEN substring(p_queue_name FROM '^(.+)_queue$')
        ELSE 'default' END
$$;

-- Channel on which sends to the queue are announced.
CREATE FUNCTION tasker_mq.queue_channel(p_queue_name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'pgmq_message_ready.' || tasker_mq.queue_namespace(p_queue_name)
$$;

-- Create a queue; a no-op if it exists.
CREATE FUNCTION tasker_mq."create"(queue_name text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO tasker_mq.queues (queue_name) VALUES (queue_name) ON CONFLICT DO NOTHING
$$;

-- Drop a queue with its messages and archive. True if it existed.
CREATE FUNCTION tasker_mq.drop_queue(queue_name text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasker_mq.archive a WHERE a.queue_name = drop_queue.queue_name;
    DELETE FROM tasker_mq.queues q WHERE q.queue_name = drop_queue.queue_name;
    RETURN FOUND;
END
$$;

-- Send one message, visible after `delay` seconds. Returns its msg_id. Sending to a queue that
-- does not exist fails (foreign key violation, SQLSTATE 23503).
CREATE FUNCTION tasker_mq.send(queue_name text, msg jsonb, delay integer DEFAULT 0)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO tasker_mq.messages (queue_name, vt, message)
    VALUES (send.queue_name, clock_timestamp() + make_interval(secs => greatest(delay, 0)), msg)
    RETURNING messages.msg_id INTO v_id;
    PERFORM pg_notify(tasker_mq.queue_channel(send.queue_name),
                      json_build_object('event_type', 'message_ready',
                                        'queue_name', send.queue_name,
                                        'namespace', tasker_mq.queue_namespace(send.queue_name),
                                        'msg_id', v_id,
                                        'delay_seconds', greatest(delay, 0))::text);
    RETURN NEXT v_id;
END
$$;

-- Send several messages; one notification for the batch. Returns their msg_ids in order.
-- The payload lists the ids only for batches of up to 100 messages: pg_notify rejects payloads
-- of 8000 bytes or more, which would make a large batch fail as a whole.
CREATE FUNCTION tasker_mq.send_batch(queue_name text, msgs jsonb[], delay integer DEFAULT 0)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
BEGIN
    WITH inserted AS (
        INSERT INTO tasker_mq.messages (queue_name, vt, message)
        SELECT send_batch.queue_name, clock_timestamp() + make_interval(secs => greatest(delay, 0)), m.msg
        FROM unnest(msgs) WITH ORDINALITY AS m(msg, ord)
        ORDER BY m.ord
        RETURNING messages.msg_id)
    SELECT array_agg(i.msg_id ORDER BY i.msg_id) INTO v_ids FROM inserted i;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    PERFORM pg_notify(tasker_mq.queue_channel(send_batch.queue_name),
                      json_strip_nulls(json_build_object(
                          'event_type', 'batch_ready',
                          'queue_name', send_batch.queue_name,
                          'namespace', tasker_mq.queue_namespace(send_batch.queue_name),
                          'msg_ids', CASE WHEN cardinality(v_ids) <= 100 THEN v_ids END,
                          'message_count', cardinality(v_ids),
                          'delay_seconds', greatest(delay, 0)))::text);
    RETURN QUERY SELECT unnest(v_ids);
END
$$;

-- Read up to qty visible messages in msg_id order, hiding them for vt seconds: read_ct + 1 and
-- vt = now + vt. Rows locked by a concurrent reader are skipped, so two readers never get the
-- same message while it is hidden.
CREATE FUNCTION tasker_mq.read(queue_name text, vt integer, qty integer)
RETURNS SETOF tasker_mq.message_record LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT m.msg_id
        FROM tasker_mq.messages m
        WHERE m.queue_name = read.queue_name AND m.vt <= clock_timestamp()
        ORDER BY m.msg_id
        LIMIT greatest(read.qty, 0)
        FOR UPDATE SKIP LOCKED
    )
    UPDATE tasker_mq.messages m
    SET vt = clock_timestamp() + make_interval(secs => read.vt), read_ct = m.read_ct + 1
    FROM picked
    WHERE m.msg_id = picked.msg_id
    RETURNING m.msg_id, m.read_ct, m.enqueued_at, m.vt, m.message, m.headers;
END
$$;

-- Read and delete up to qty visible messages at once.
CREATE FUNCTION tasker_mq.pop(queue_name text, qty integer DEFAULT 1)
RETURNS SETOF tasker_mq.message_record LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT m.msg_id
        FROM tasker_mq.messages m
        WHERE m.queue_name = pop.queue_name AND m.vt <= clock_timestamp()
        ORDER BY m.msg_id
        LIMIT greatest(pop.qty, 0)
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM tasker_mq.messages m
    USING picked
    WHERE m.msg_id = picked.msg_id
    RETURNING m.msg_id, m.read_ct, m.enqueued_at, m.vt, m.message, m.headers;
END
$$;

-- Delete a message (acknowledge without keeping it). True if it existed.
CREATE FUNCTION tasker_mq.delete(queue_name text, msg_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasker_mq.messages m
    WHERE m.queue_name = delete.queue_name AND m.msg_id = delete.msg_id;
    RETURN FOUND;
END
$$;

CREATE FUNCTION tasker_mq.delete(queue_name text, msg_ids bigint[]) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    DELETE FROM tasker_mq.messages m
    WHERE m.queue_name = delete.queue_name AND m.msg_id = ANY (delete.msg_ids)
    RETURNING m.msg_id;
END
$$;

-- Move a message to the archive (acknowledge and keep it). True if it existed.
CREATE FUNCTION tasker_mq.archive(queue_name text, msg_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    WITH moved AS (
        DELETE FROM tasker_mq.messages m
        WHERE m.queue_name = archive.queue_name AND m.msg_id = archive.msg_id
        RETURNING m.*)
    INSERT INTO tasker_mq.archive AS a
        (msg_id, queue_name, read_ct, enqueued_at, vt, message, headers)
    SELECT mv.msg_id, mv.queue_name, mv.read_ct, mv.enqueued_at, mv.vt, mv.message, mv.headers
    FROM moved mv;
    RETURN FOUND;
END
$$;

CREATE FUNCTION tasker_mq.archive(queue_name text, msg_ids bigint[]) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH moved AS (
        DELETE FROM tasker_mq.messages m
        WHERE m.queue_name = archive.queue_name AND m.msg_id = ANY (archive.msg_ids)
        RETURNING m.*)
    INSERT INTO tasker_mq.archive AS a
        (msg_id, queue_name, read_ct, enqueued_at, vt, message, headers)
    SELECT mv.msg_id, mv.queue_name, mv.read_ct, mv.enqueued_at, mv.vt, mv.message, mv.headers
    FROM moved mv
    RETURNING a.msg_id;
END
$$;

-- Make a message visible again after vt seconds (0: now). Returns the updated message.
CREATE FUNCTION tasker_mq.set_vt(queue_name text, msg_id bigint, vt integer)
RETURNS SETOF tasker_mq.message_record LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    UPDATE tasker_mq.messages m
    SET vt = clock_timestamp() + make_interval(secs => set_vt.vt)
    WHERE m.queue_name = set_vt.queue_name AND m.msg_id = set_vt.msg_id
    RETURNING m.msg_id, m.read_ct, m.enqueued_at, m.vt, m.message, m.headers;
END
$$;

-- Delete every message of a queue (not the archive). Returns how many.
CREATE FUNCTION tasker_mq.purge_queue(queue_name text) RETURNS bigint
LANGUAGE sql AS $$
    WITH d AS (DELETE FROM tasker_mq.messages m WHERE m.queue_name = purge_queue.queue_name RETURNING 1)
    SELECT count(*) FROM d
$$;

-- Depth and ages of a queue. total_messages counts messages ever sent that are still kept
-- (waiting or archived).
CREATE FUNCTION tasker_mq.metrics(queue_name text) RETURNS tasker_mq.metrics_result
LANGUAGE sql STABLE AS $$
    SELECT metrics.queue_name,
           m.queue_length,
           extract(epoch FROM now() - m.newest)::integer,
           extract(epoch FROM now() - m.oldest)::integer,
           m.queue_length + (SELECT count(*) FROM tasker_mq.archive a
                             WHERE a.queue_name = metrics.queue_name),
           now()
    FROM (SELECT count(*) AS queue_length, max(enqueued_at) AS newest, min(enqueued_at) AS oldest
          FROM tasker_mq.messages x WHERE x.queue_name = metrics.queue_name) m
$$;

-- Metrics of every queue, by name. LATERAL calls metrics() once per queue; the shorter
-- (tasker_mq.metrics(q.queue_name)).* would call it once per output column (six times).
CREATE FUNCTION tasker_mq.metrics_all() RETURNS SETOF tasker_mq.metrics_result
LANGUAGE sql STABLE AS $$
    SELECT m.* FROM tasker_mq.queues q CROSS JOIN LATERAL tasker_mq.metrics(q.queue_name) m
    ORDER BY q.queue_name
$$;

CREATE FUNCTION tasker_mq.list_queues() RETURNS TABLE (queue_name text, created_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT q.queue_name, q.created_at FROM tasker_mq.queues q ORDER BY q.queue_name
$$;
