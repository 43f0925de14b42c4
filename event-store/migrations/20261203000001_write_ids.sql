-- Write ids apart from correlation ids (docs/adr/0015-tracing.md).
--
-- A write's id (from the request's Idempotency-Key, or a process command's id) finds an
-- earlier attempt's events on an aggregate. It used to be stored as the correlation id; now
-- the correlation id ties a whole flow together (a checkout request and every command the
-- order process sends for it), so a write keeps its own id under `write_id`. Events written
-- before keep theirs in `correlation_id`, which the expression falls back to. An expression
-- index, so the log is not rewritten. Migrations run in a transaction, so the index is not
-- built CONCURRENTLY: on a large log, appends wait while it builds. To avoid that, create it
-- by hand with CREATE INDEX CONCURRENTLY (same name and definition) before upgrading; this
-- statement then finds it.
CREATE INDEX IF NOT EXISTS events_write_id_idx ON events ((coalesce(metadata ->> 'write_id', correlation_id)))
    WHERE coalesce(metadata ->> 'write_id', correlation_id) IS NOT NULL;
