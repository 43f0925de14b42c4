#!/usr/bin/env bash
# .ci/prometheus.sh - the alerting rules: valid (promtool check rules), firing when they
# should (promtool test rules), and on metrics the binaries export (every metric name a rule
# uses is recorded somewhere in the Rust sources).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v promtool >/dev/null || {
    echo "prometheus.sh: promtool is missing (deploy/local/stack.sh installs it)" >&2
    exit 1
}
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts.test.yml

missing=0
for metric in $(grep -oE '\b(projection|mercato)_[a-z_]+' deploy/prometheus/alerts.yml | sort -u); do
    if ! grep -rqE "(gauge|counter|histogram)!\(\s*\"$metric\"" --include='*.rs' \
        aggregates command-api event-store nats projections query-api telemetry web cli; then
        echo "prometheus.sh: alerts.yml uses $metric, which no binary records" >&2
        missing=1
    fi
done
exit "$missing"
