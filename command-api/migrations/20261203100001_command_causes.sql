-- What caused each command the order process sends (docs/adr/0015-tracing.md): the event
-- that decided it (its events' causation_id), the flow it belongs to (their correlation_id:
-- the request that started the checkout) and the trace to continue. Null for commands queued
-- before this migration.
ALTER TABLE command.checkout_commands
    ADD COLUMN causation_id   uuid,
    ADD COLUMN correlation_id uuid,
    ADD COLUMN traceparent    text;
