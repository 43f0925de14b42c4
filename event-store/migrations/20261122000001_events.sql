-- The event log: postgres-es's `events` table, extended so that it is also the
-- outbox and a totally ordered, gap-safe global log (see docs/adr/0002).
CREATE TABLE events
(
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence >= 0),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    event_id        uuid        NOT NULL DEFAULT gen_random_uuid(),
    global_position bigint      NOT NULL GENERATED ALWAYS AS IDENTITY,
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    correlation_id  text GENERATED ALWAYS AS (metadata ->> 'correlation_id') STORED,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
    -- global_position needs no unique index: GENERATED ALWAYS cannot be overridden.
);

-- The log order every reader (relay, replay, export) uses.
CREATE INDEX events_log_order_idx ON events (tx_id, global_position);
-- recorded_at grows with insertion order, so a BRIN index serves time-range exports at a
-- fraction of a btree's write cost.
CREATE INDEX events_recorded_at_idx ON events USING brin (recorded_at);
CREATE INDEX events_correlation_id_idx ON events (correlation_id) WHERE correlation_id IS NOT NULL;

-- postgres-es snapshots (one row per aggregate instance).
CREATE TABLE snapshots
(
    aggregate_type   text        NOT NULL,
    aggregate_id     text        NOT NULL,
    last_sequence    bigint      NOT NULL CHECK (last_sequence >= 0),
    current_snapshot bigint      NOT NULL CHECK (current_snapshot >= 0),
    payload          jsonb       NOT NULL,
    taken_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- Wakes log tailers (the relay) as soon as a transaction that appended events commits.
-- One notification per statement; identical payloads within a transaction are folded by PostgreSQL.
-- PostgreSQL serialises the commits of notifying transactions, which halves write throughput
-- under many concurrent writers: a writer whose session sets `mercato.notify = off` skips it
-- (MERCATO_EVENTS_NOTIFY=off) and the relay finds its events by polling (docs/adr/0003).
CREATE FUNCTION mercato_notify_events() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    PERFORM pg_notify('mercato_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify
    AFTER INSERT ON events
    FOR EACH STATEMENT
    WHEN (coalesce(current_setting('mercato.notify', true), '') <> 'off')
EXECUTE FUNCTION mercato_notify_events();

-- Where each log tailer (relay, projection) has got to. Moves only after its work is durable.
CREATE TABLE log_checkpoints
(
    name            text        PRIMARY KEY,
    tx_id           xid8        NOT NULL,
    global_position bigint      NOT NULL,
    last_event_id   uuid,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
