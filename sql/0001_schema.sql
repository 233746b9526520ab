-- 0001_schema.sql - tasker's tables: template registry, tasks, steps, edges, history, DLQ.
--
-- Names follow Tasker's schema so its docs and queries stay familiar, with these departures:
-- * The current state is a column (tasks.state, workflow_steps.state) with the time it was
--   entered; task_transitions / workflow_step_transitions are an append-only audit.
--   Tasker's most_recent/sort_key bookkeeping, in_process/processed flags and tasks.complete
--   are derivable from the state and are not stored.
-- * Every timestamp is timestamptz and comes from the database clock.
-- * A step's lease (lease_owner, lease_expires_at) records which worker runs it and until
--   when; an expired lease means the worker died and the step may run elsewhere.
-- * Deleting a task deletes its steps, edges and history (ON DELETE CASCADE).
-- * named_tasks_named_steps is not kept: its defaults live in named_tasks.configuration.

-- UUIDv7 for PostgreSQL 15, which has no uuidv7(): a random v4 UUID whose first 48 bits are
-- replaced by the Unix time in milliseconds and whose version nibble becomes 7. VOLATILE on
-- purpose: it must never be folded into a constant.
CREATE FUNCTION tasker.uuid_generate_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

CREATE TYPE tasker.dlq_reason AS ENUM (
    'staleness_timeout', 'max_retries_exceeded', 'dependency_cycle_detected',
    'worker_unavailable', 'manual_dlq');
CREATE TYPE tasker.dlq_resolution_status AS ENUM (
    'pending', 'manually_resolved', 'permanently_failed', 'cancelled');
CREATE TYPE tasker.identity_strategy AS ENUM ('strict', 'caller_provided', 'always_unique');

-- A namespace is the routing key of worker queues (worker_<namespace>_queue), hence the
-- 29-character limit: queue names stay within 47 characters with every suffix.
CREATE TABLE tasker.task_namespaces (
    task_namespace_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
    name varchar(64) NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,28}$'),
    description varchar(255),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A registered template version; configuration holds the whole template as JSON.
CREATE TABLE tasker.named_tasks (
    named_task_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
    task_namespace_uuid uuid NOT NULL REFERENCES tasker.task_namespaces,
    name varchar(255) NOT NULL,
    version varchar(50) NOT NULL DEFAULT '0.1.0',
    description varchar(255),
    configuration jsonb NOT NULL DEFAULT '{}',
    identity_strategy tasker.identity_strategy NOT NULL DEFAULT 'strict',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_namespace_uuid, name, version)
);

-- Step "types" by name, shared by all templates (as in Tasker).
CREATE TABLE tasker.named_steps (
    named_step_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
    name varchar(255) NOT NULL UNIQUE,
    description varchar(255),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tasker.tasks (
    task_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
    named_task_uuid uuid NOT NULL REFERENCES tasker.named_tasks,
    state varchar(32) NOT NULL DEFAULT 'pending' CHECK (state IN (
        'pending', 'initializing', 'enqueuing_steps', 'steps_in_process', 'evaluating_results',
        'waiting_for_dependencies', 'waiting_for_retry', 'blocked_by_failures',
        'complete', 'error', 'cancelled', 'resolved_manually')),
    state_entered_at timestamptz NOT NULL DEFAULT now(),
    requested_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,                       -- set on entering a terminal state
    initiator varchar(255),
    source_system varchar(255),
    reason varchar(500),
    tags jsonb NOT NULL DEFAULT '[]',
    context jsonb NOT NULL DEFAULT '{}',
    identity_hash varchar(128) NOT NULL UNIQUE,
    priority integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100 AND 100),
    correlation_id uuid NOT NULL,
    parent_correlation_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_named_task_idx ON tasker.tasks (named_task_uuid);
CREATE INDEX tasks_correlation_idx ON tasker.tasks (correlation_id);
-- Non-terminal tasks by how long they have been in their state (sweeper, staleness).
CREATE INDEX tasks_active_idx ON tasker.tasks (state_entered_at)
    WHERE state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually');

CREATE TABLE tasker.workflow_steps (
    workflow_step_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
    task_uuid uuid NOT NULL REFERENCES tasker.tasks ON DELETE CASCADE,
    named_step_uuid uuid NOT NULL REFERENCES tasker.named_steps,
    state varchar(40) NOT NULL DEFAULT 'pending' CHECK (state IN (
        'pending', 'enqueued', 'in_progress', 'enqueued_for_orchestration',
        'enqueued_as_error_for_orchestration', 'waiting_for_retry',
        'complete', 'error', 'cancelled', 'resolved_manually')),
    state_entered_at timestamptz NOT NULL DEFAULT now(),
    retryable boolean NOT NULL DEFAULT true,        -- template retry.retryable
    max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 0), -- total, incl. the first
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),         -- +1 at each claim
    last_attempted_at timestamptz,                  -- last claim
    last_failure_at timestamptz,                    -- last failed attempt
    backoff_request_seconds integer CHECK (backoff_request_seconds >= 0), -- wait after last failure
    lease_owner varchar(255),                       -- worker running the step (in_progress)
    lease_expires_at timestamptz,                   -- the claim lapses after this
    processed_at timestamptz,                       -- set on complete/cancelled/resolved_manually
    inputs jsonb NOT NULL DEFAULT '{}',             -- handler.initialization of the template step
    results jsonb,                                  -- the handler's StepExecutionResult
    checkpoint jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_uuid, named_step_uuid)
);
-- Steps the sweeper may have to act on: queued, running (lease), waiting out a backoff.
CREATE INDEX workflow_steps_active_idx ON tasker.workflow_steps (state, state_entered_at)
    WHERE state IN ('enqueued', 'in_progress', 'waiting_for_retry',
                    'enqueued_for_orchestration', 'enqueued_as_error_for_orchestration');

-- DAG edges: from_step_uuid is the parent (dependency), to_step_uuid the child.
CREATE TABLE tasker.workflow_step_edges (
    workflow_step_edge_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
    from_step_uuid uuid NOT NULL REFERENCES tasker.workflow_steps ON DELETE CASCADE,
    to_step_uuid uuid NOT NULL REFERENCES tasker.workflow_steps ON DELETE CASCADE,
    name varchar(64) NOT NULL DEFAULT 'provides',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (from_step_uuid <> to_step_uuid),
    UNIQUE (from_step_uuid, to_step_uuid)
);
CREATE INDEX workflow_step_edges_to_idx ON tasker.workflow_step_edges (to_step_uuid);

CREATE TABLE tasker.task_transitions (
    task_transition_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
    task_uuid uuid NOT NULL REFERENCES tasker.tasks ON DELETE CASCADE,
    from_state varchar(32),                         -- NULL for the creation row
    to_state varchar(32) NOT NULL,
    event varchar(64) NOT NULL,
    processor_uuid uuid,                            -- audit only
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX task_transitions_task_idx ON tasker.task_transitions (task_uuid, created_at);

CREATE TABLE tasker.workflow_step_transitions (
    workflow_step_transition_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
    workflow_step_uuid uuid NOT NULL REFERENCES tasker.workflow_steps ON DELETE CASCADE,
    from_state varchar(40),
    to_state varchar(40) NOT NULL,
    event varchar(64) NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX workflow_step_transitions_step_idx
    ON tasker.workflow_step_transitions (workflow_step_uuid, created_at);

-- Dead-letter queue: an investigation record; never moves or deletes the task.
CREATE TABLE tasker.tasks_dlq (
    dlq_entry_uuid uuid PRIMARY KEY DEFAULT tasker.uuid_generate_v7(),
    task_uuid uuid NOT NULL REFERENCES tasker.tasks ON DELETE CASCADE,
    original_state varchar(50) NOT NULL,
    dlq_reason tasker.dlq_reason NOT NULL,
    dlq_timestamp timestamptz NOT NULL DEFAULT now(),
    resolution_status tasker.dlq_resolution_status NOT NULL DEFAULT 'pending',
    resolution_timestamp timestamptz,
    resolution_notes text,
    resolved_by varchar(255),
    task_snapshot jsonb NOT NULL,
    metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- One open investigation per task; resolved entries stay as history.
CREATE UNIQUE INDEX tasks_dlq_pending_idx ON tasker.tasks_dlq (task_uuid)
    WHERE resolution_status = 'pending';
CREATE INDEX tasks_dlq_status_idx ON tasker.tasks_dlq (resolution_status, dlq_timestamp);
