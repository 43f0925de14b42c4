#!/usr/bin/env bash
# mercato-probe [PORT [PATH]]: exits 0 when GET http://127.0.0.1:PORT/PATH answers 200.
# PORT defaults to the admin listener's (MERCATO_ADMIN_ADDR), PATH to /healthz; the APIs
# also answer /readyz on their own port (200 once PostgreSQL and NATS answer).
# The runtime image has no curl or wget: bash's /dev/tcp is enough for one local request.
# The caller bounds the time (HEALTHCHECK --timeout, a probe's timeoutSeconds).
set -euo pipefail

admin=${MERCATO_ADMIN_ADDR:-127.0.0.1:9090}
port=${1:-${admin##*:}}
path=${2:-/healthz}

exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$path" >&3
read -r _ status _ <&3
[[ $status == 200 ]]
