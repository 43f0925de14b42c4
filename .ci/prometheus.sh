#!/usr/bin/env bash
# .ci/prometheus.sh - the alerting rules and the Grafana dashboards: the rules valid
# (promtool check rules) and firing when they should (promtool test rules); the dashboards
# what deploy/grafana/generate.py writes, valid JSON with a unique uid and unique panel ids,
# their PromQL parsing; and every metric a rule or a dashboard uses recorded by the binaries
# (a counter!/gauge!/histogram! call in the Rust sources), with the labels it selects by.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v promtool >/dev/null || {
    echo "prometheus.sh: promtool is missing (deploy/local/stack.sh installs it)" >&2
    exit 1
}
command -v python3 >/dev/null || {
    echo "prometheus.sh: python3 is missing" >&2
    exit 1
}
promtool check rules deploy/prometheus/alerts.yml
python3 deploy/grafana/generate.py --check
python3 deploy/prometheus/check_metrics.py deploy/prometheus/alerts.yml \
    deploy/grafana/dashboards/*.json
promtool test rules deploy/prometheus/alerts.test.yml
