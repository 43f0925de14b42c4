#!/usr/bin/env bash
# .ci/schemathesis.sh - API conformance: schemathesis against both APIs of a real
# `mercato serve` (issue #12).
#
# Starts the binary $MERCATO_BIN (default target/debug/mercato; it is not built here) on a
# fresh PostgreSQL database, its own JetStream streams and subject prefix and free ports,
# seeds a small shop through the command API (`mercato seed`), logs in as the admin and as
# a seeded customer, and runs schemathesis (pinned, from PyPI, in the virtualenv .ci/.venv)
# with `--checks all` against the query API and the command API, once with each token
# (reads first, so that the writes of the fuzzer do not change what the reads see).
#
# Exit status: non-zero when any of the blocking checks failed (not_a_server_error, so any
# 5xx, status_code_conformance, content_type_conformance, response_headers_conformance,
# response_schema_conformance), when a run errored or did not finish, or when the setup
# failed. Every other check of `--checks all` (negative_data_rejection,
# positive_data_acceptance, missing_required_header, ignored_auth, ...) is reported only.
#
# Output: a grouped summary on stdout; in $MERCATO_ST_OUT (default target/schemathesis):
# summary.md (every distinct failure with an example), one NDJSON report and console log
# per run, serve.log. Everything it made (server, database, streams, index) is removed on
# exit.
#
# Settings (environment):
#   MERCATO_BIN                  the mercato binary (default target/debug/mercato)
#   MERCATO_ST_MAX_EXAMPLES      test cases per operation (default 50)
#   MERCATO_ST_WORKERS           schemathesis workers (default 1: with more, CPython 3.11 can fail
#                                with "AST constructor recursion depth mismatch" in its threads)
#   MERCATO_ST_SEED              hypothesis seed (default 1; "random" for a new one each run)
#   MERCATO_ST_RUN_TIMEOUT       seconds one schemathesis run may take (default 240)
#   MERCATO_ST_OUT               report directory (default target/schemathesis)
#   MERCATO_TEST_DATABASE_URL    PostgreSQL server, maintenance database
#                                (default postgres://postgres@127.0.0.1:5432/postgres)
#   MERCATO_TEST_NATS_URL        NATS (default nats://127.0.0.1:4222)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ST_VERSION=4.32.5
VENV=$ROOT/.ci/.venv
HELPER=$ROOT/.ci/schemathesis_helper.py
BIN=${MERCATO_BIN:-target/debug/mercato}
MAX_EXAMPLES=${MERCATO_ST_MAX_EXAMPLES:-50}
WORKERS=${MERCATO_ST_WORKERS:-1}
SEED=${MERCATO_ST_SEED:-1}
RUN_TIMEOUT=${MERCATO_ST_RUN_TIMEOUT:-240}
OUT=${MERCATO_ST_OUT:-target/schemathesis}
PG_SERVER=${MERCATO_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
NATS_URL=${MERCATO_TEST_NATS_URL:-nats://127.0.0.1:4222}

log() { printf 'schemathesis.sh: %s\n' "$*" >&2; }
die() {
    printf 'schemathesis.sh: ERROR: %s\n' "$*" >&2
    exit 1
}

STARTED=$SECONDS
[[ $BIN == /* ]] || BIN=$ROOT/$BIN
[[ -x $BIN ]] || die "no mercato binary at $BIN (build it, or set MERCATO_BIN)"
command -v curl >/dev/null || die "curl is missing"
command -v psql >/dev/null || die "psql is missing (deploy/local/stack.sh installs PostgreSQL)"
command -v python3 >/dev/null || die "python3 is missing"
[[ $OUT == /* ]] || OUT=$ROOT/$OUT
rm -rf "$OUT"
mkdir -p "$OUT"

# ---------------------------------------------------------------------------- virtualenv
source .ci/venv.sh
pinned_venv "$VENV" "schemathesis==$ST_VERSION"
ST=$VENV/bin/st
"$ST" --version >/dev/null || die "$ST does not run"

# ---------------------------------------------------------------------------- the server
ID=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])')
DB=mercato_st_$ID
STREAM=ST_$ID
case $PG_SERVER in
*://*/*) DB_URL=${PG_SERVER%/*}/$DB ;;
*) DB_URL=${PG_SERVER%/}/$DB ;;
esac
read -r CMD_PORT QRY_PORT ADMIN_PORT SHOP_PORT < <(python3 "$HELPER" free-ports 4)
WORK=$(mktemp -d /tmp/mercato-st.XXXXXX)
ADMIN_EMAIL=admin-$ID@mercato.invalid
ADMIN_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
SERVER_PID=""
ST_PID=""

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$?
    set +e
    if [[ -n $ST_PID ]]; then
        kill -TERM "$ST_PID" 2>/dev/null
        wait "$ST_PID" 2>/dev/null
    fi
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID"
        for _ in $(seq 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null
    fi
    psql -X -q -w "$PG_SERVER" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 ||
        log "could not drop database $DB"
    python3 "$HELPER" delete-streams "$NATS_URL" "$STREAM" "${STREAM}_DLQ" 2>/dev/null ||
        log "could not delete streams $STREAM, ${STREAM}_DLQ"
    rm -rf "$WORK"
    log "cleaned up (database $DB, streams $STREAM*); $((SECONDS - STARTED))s in all"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export MERCATO_DATABASE_URL=$DB_URL
export MERCATO_DATABASE_MAX_CONNECTIONS=8
export MERCATO_NATS_URL=$NATS_URL
export MERCATO_STREAM=$STREAM
export MERCATO_SUBJECT_PREFIX=st$ID
export MERCATO_COMMAND_API_ADDR=127.0.0.1:$CMD_PORT
export MERCATO_QUERY_API_ADDR=127.0.0.1:$QRY_PORT
export MERCATO_ADMIN_ADDR=127.0.0.1:$ADMIN_PORT
export MERCATO_STOREFRONT_ADDR=127.0.0.1:$SHOP_PORT
export MERCATO_INDEX_DIR=$WORK/index
export MERCATO_REPLICA_ID=st-$ID
export MERCATO_RELAY_NAME=relay
export MERCATO_ADMIN_EMAIL=$ADMIN_EMAIL
export MERCATO_ADMIN_PASSWORD=$ADMIN_PASSWORD
MERCATO_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export MERCATO_JWT_SECRET
export MERCATO_SHUTDOWN_GRACE_SECS=10
# Binaries with personal-data encryption (ADR 0013) make their master key file on first
# serve; keep it in the scratch directory (older binaries ignore the variable).
export MERCATO_DATA_KEY_FILE=$WORK/data-key
export RUST_LOG=${RUST_LOG:-info}
CMD=http://127.0.0.1:$CMD_PORT
QRY=http://127.0.0.1:$QRY_PORT

log "starting $BIN serve (database $DB, stream $STREAM, ports $CMD_PORT/$QRY_PORT/$ADMIN_PORT)"
# From the scratch directory: relative default paths (data/...) land there, not in the tree.
(cd "$WORK" && exec "$BIN" serve) >"$OUT/serve.log" 2>&1 &
SERVER_PID=$!
deadline=$((SECONDS + 90))
until curl -sf "$CMD/readyz" >/dev/null 2>&1 && curl -sf "$QRY/readyz" >/dev/null 2>&1; do
    kill -0 "$SERVER_PID" 2>/dev/null || die "mercato serve exited; see $OUT/serve.log: $(tail -c 1500 "$OUT/serve.log")"
    ((SECONDS < deadline)) || die "mercato serve not ready within 90s; see $OUT/serve.log"
    sleep 0.3
done
log "ready after $((SECONDS - STARTED))s (since the script started)"

# ---------------------------------------------------------------------------- data, tokens
# A small shop: 6 published products with stock, one customer (demo0@example.com /
# demo-password-0) with 3 orders. It logs in as the admin once and registers and logs in
# the customer once.
(cd "$WORK" && exec "$BIN" seed --products 6 --customers 1 --orders 3 --api-url "$CMD") >"$OUT/seed.log" 2>&1 ||
    die "mercato seed failed: $(tail -c 1500 "$OUT/seed.log")"

post_json() { # URL BODY [TOKEN] -> body on stdout; fails on a non-2xx answer
    local auth=()
    [[ -n ${3:-} ]] && auth=(-H "Authorization: Bearer $3")
    curl -sS -f -X POST "$1" -H 'Content-Type: application/json' "${auth[@]}" -d "$2"
}
login() { # EMAIL PASSWORD -> the token answer
    post_json "$CMD/v1/auth/token" "$(python3 -c 'import json,sys; print(json.dumps({"email": sys.argv[1], "password": sys.argv[2]}))' "$1" "$2")"
}
ADMIN_ANSWER=$(login "$ADMIN_EMAIL" "$ADMIN_PASSWORD") || die "admin login failed"
ADMIN_TOKEN=$(python3 "$HELPER" json-get access_token <<<"$ADMIN_ANSWER")
CUSTOMER_ANSWER=$(login demo0@example.com demo-password-0) || die "customer login failed"
CUSTOMER_TOKEN=$(python3 "$HELPER" json-get access_token <<<"$CUSTOMER_ANSWER")
CUSTOMER_ID=$(python3 "$HELPER" json-get customer_id <<<"$CUSTOMER_ANSWER")

# An open cart with an item (the seeded carts are checked out).
CART_ID=$(post_json "$CMD/v1/carts" '{"currency":"EUR"}' "$CUSTOMER_TOKEN" | python3 "$HELPER" json-get id) ||
    die "cannot create a cart"
post_json "$CMD/v1/carts/$CART_ID/items" '{"sku":"SKU-000001","quantity":1}' "$CUSTOMER_TOKEN" >/dev/null ||
    die "cannot add an item to the cart"

# The seeded orders, once the read models have them.
ORDER_IDS=""
deadline=$((SECONDS + 30))
while :; do
    ORDER_IDS=$(curl -sf "$QRY/v1/orders?limit=10" -H "Authorization: Bearer $CUSTOMER_TOKEN" |
        python3 -c 'import json,sys; print(" ".join(o["id"] for o in json.load(sys.stdin)["items"]))' 2>/dev/null) || ORDER_IDS=""
    [[ $(wc -w <<<"$ORDER_IDS") -ge 3 ]] && break
    ((SECONDS < deadline)) || die "the seeded orders did not reach the query API within 30s"
    sleep 0.5
done
log "seeded: SKU-000001..6, customer $CUSTOMER_ID, cart $CART_ID, orders $ORDER_IDS"

# Path parameters take an existing id or SKU half of the time, so that tests get past 404
# and the 200 answers of every read are checked against their schemas too. The reports
# hide credentials but show the generated Idempotency-Key and cart/order token values.
CONFIG=$OUT/schemathesis.toml
{
    echo '[output.sanitization]'
    echo 'keys-to-sanitize = ["authorization", "access_token", "password", "cookie", "set-cookie"]'
    echo 'sensitive-markers = ["authorization", "password", "secret", "access_token"]'
    echo '[dictionaries.skus]'
    echo 'values = ["SKU-000001", "SKU-000002", "SKU-000003", "SKU-000004", "SKU-000005", "SKU-000006"]'
    echo '[dictionaries.ids]'
    printf 'values = ["%s", "%s"' "$CUSTOMER_ID" "$CART_ID"
    for id in $ORDER_IDS; do printf ', "%s"' "$id"; done
    echo ']'
    echo '[parameters]'
    echo '"path.sku" = { dictionary = "skus", probability = 0.5 }'
    echo '"path.id" = { dictionary = "ids", probability = 0.5 }'
} >"$CONFIG"

# ---------------------------------------------------------------------------- schemathesis
SEED_ARGS=()
[[ $SEED == random ]] || SEED_ARGS=(--seed "$SEED")
RUNS=()
run_st() { # API URL ROLE TOKEN [MORE ST ARGS...]
    local label=$1/$3 name=$1-$3 rc=0 t0=$SECONDS extra=("${@:5}")
    local args=(run "$2/openapi.json"
        --checks all
        --max-examples "$MAX_EXAMPLES" --workers "$WORKERS" "${SEED_ARGS[@]}"
        --continue-on-failure --generation-database none
        --request-timeout 10 --no-color
        --report "ndjson,junit" --report-dir "$OUT"
        --report-ndjson-path "$OUT/$name.ndjson" --report-junit-path "$OUT/$name.junit.xml"
        "${extra[@]}")
    log "st --config-file $CONFIG ${args[*]} -H 'Authorization: Bearer <$3 token>'"
    # In the background so that a signal to this script is handled at once (cleanup stops it).
    timeout --kill-after=10 "$RUN_TIMEOUT" "$ST" --config-file "$CONFIG" "${args[@]}" \
        -H "Authorization: Bearer $4" >"$OUT/$name.txt" 2>&1 &
    ST_PID=$!
    wait "$ST_PID" || rc=$?
    ST_PID=""
    log "$label: exit $rc in $((SECONDS - t0))s ($(grep -E '^=+ .* in [0-9.]+s =+$' "$OUT/$name.txt" | tr -d '=' | xargs))"
    RUNS+=(--run "$label|$OUT/$name.ndjson|$rc|$((SECONDS - t0))")
    kill -0 "$SERVER_PID" 2>/dev/null || die "mercato serve died during $label; see $OUT/serve.log"
}

cd "$WORK" # schemathesis writes nothing into the work tree
run_st query "$QRY" admin "$ADMIN_TOKEN"
run_st query "$QRY" customer "$CUSTOMER_TOKEN"
# The customer does not forget itself halfway through its run; the admin's run, the last
# one, forgets customers.
run_st command "$CMD" customer "$CUSTOMER_TOKEN" --exclude-operation-id forget
run_st command "$CMD" admin "$ADMIN_TOKEN"
cd "$ROOT"

if grep -q '"level":"ERROR"' "$OUT/serve.log"; then
    log "the server logged errors (see $OUT/serve.log):"
    grep -m 5 '"level":"ERROR"' "$OUT/serve.log" >&2 || true
fi

rc=0
python3 "$HELPER" summary "${RUNS[@]}" --markdown "$OUT/summary.md" || rc=$?
log "schemathesis $ST_VERSION, $MAX_EXAMPLES examples per operation, seed $SEED; reports in $OUT"
exit "$rc"
