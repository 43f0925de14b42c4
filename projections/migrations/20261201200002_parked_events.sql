-- Events a projection cannot apply (docs/adr/0012-poison-events.md): parked, with the error,
-- while the projection goes on with the events after them. A rebuild parks in its shadow's
-- copy of this table and takes the rows over at the switch.
CREATE TABLE read.projection_parked (
    projection      text        NOT NULL,
    event_id        uuid        NOT NULL,
    tx_id           xid8        NOT NULL,
    global_position bigint      NOT NULL,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL,
    event_type      text        NOT NULL,
    error           text        NOT NULL,
    parked_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, event_id)
);
