#!/usr/bin/env bash
# What each part of the events table costs under 32 concurrent single-row inserters:
# a bare table vs. Mercato's events table with and without the NOTIFY trigger, without the
# correlation-id index, and with only the primary key. Scratch database, dropped at the end.
# Usage: bench/pgbench-tables.sh [seconds]   (needs pgbench and a built `mercato`)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-5}"
db="mercato_pgbench_$$"
url="postgres://postgres@127.0.0.1:5432"
psql_db() { psql -h 127.0.0.1 -U postgres -d "$db" -qAt "$@"; }
trap 'psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT

MERCATO_DATABASE_URL="$url/$db" cargo run -q --release --bin mercato -- migrate >/dev/null
psql_db <<'SQL'
CREATE TABLE bare (aggregate_type text, aggregate_id text, sequence bigint, event_type text,
                   event_version text, payload jsonb, metadata jsonb);
CREATE TABLE no_corr (LIKE events INCLUDING DEFAULTS INCLUDING IDENTITY);
ALTER TABLE no_corr DROP COLUMN correlation_id;
ALTER TABLE no_corr ADD PRIMARY KEY (aggregate_type, aggregate_id, sequence), ADD UNIQUE (event_id);
CREATE INDEX ON no_corr (tx_id, global_position);
CREATE INDEX ON no_corr USING brin (recorded_at);
CREATE TABLE pk_only (LIKE no_corr INCLUDING DEFAULTS INCLUDING IDENTITY);
ALTER TABLE pk_only ADD PRIMARY KEY (aggregate_type, aggregate_id, sequence);
SQL

script=$(mktemp)
for variant in bare events_with_notify events_without_notify no_corr pk_only; do
  table=$variant
  case $variant in
    events_with_notify) table=events; psql_db -c "ALTER TABLE events ENABLE TRIGGER events_notify" ;;
    events_without_notify) table=events; psql_db -c "ALTER TABLE events DISABLE TRIGGER events_notify" ;;
  esac
  cat > "$script" <<SQL
\set seq random(1, 1000000000)
INSERT INTO $table (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
VALUES ('Counter', :client_id::text || '-' || :seq::text, 1, 'Added', '1.0',
        '{"Added":{"by":1,"total":1}}', '{"actor":"bench","correlation_id":"0b8a3c0e-8a43-4a8e-9d51-8f7c3a9e2b11"}');
SQL
  tps=$(pgbench -h 127.0.0.1 -U postgres -n -c 32 -j 2 -T "$secs" -f "$script" "$db" 2>/dev/null \
        | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
  printf '%-24s %10.0f tps\n' "$variant" "$tps"
done
rm -f "$script"
