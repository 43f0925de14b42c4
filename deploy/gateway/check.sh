#!/usr/bin/env bash
# deploy/gateway/check.sh - the gateway's nginx configuration, without a cluster (issue #13).
#
# 1. The ConfigMap `gateway` in deploy/k8s/gateway.yaml holds deploy/gateway/nginx.conf
#    byte for byte, with upstreams.conf and listen.conf beside it, and the Deployment's
#    `checksum/config` annotation is the sha256 of the ConfigMap's data (so that a changed
#    config rolls the pods). `--fix` rewrites the ConfigMap's nginx.conf from the file and
#    the annotation from the ConfigMap, then checks again.
# 2. `nginx -t` accepts nginx.conf with the example include files, and with the
#    ConfigMap's (its Service names replaced with 127.0.0.1, as they resolve only in the
#    cluster).
# 3. smoke.py runs nginx.conf in front of stub APIs: routing by method, retries of reads
#    only, request ids, forwarded addresses, the docs of both APIs, rate limits, problems.
#
# Needs python3 and nginx (Debian: apt-get install nginx, with its service kept from
# starting). PyYAML comes from python3, or else from the virtualenv .ci/.venv-gateway.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYYAML_VERSION=6.0.2
VENV=.ci/.venv-gateway
CONF=deploy/gateway/nginx.conf
MANIFEST=deploy/k8s/gateway.yaml

log() { echo "gateway/check.sh: $*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

fix=false
case ${1:-} in
"") ;;
--fix) fix=true ;;
*) die "usage: $0 [--fix]" ;;
esac

command -v nginx >/dev/null || die "nginx is missing (Debian: apt-get install nginx)"
command -v python3 >/dev/null || die "python3 is missing"

PY=python3
if ! python3 -c 'import yaml' 2>/dev/null; then
    if [[ "$(cat "$VENV/.pyyaml-version" 2>/dev/null)" != "$PYYAML_VERSION" ]]; then
        rm -rf "$VENV"
        python3 -m venv "$VENV" || die "python3 -m venv $VENV failed (run deploy/local/stack.sh)"
        log "installing PyYAML==$PYYAML_VERSION into $VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "PyYAML==$PYYAML_VERSION" >&2 ||
            die "pip install PyYAML failed"
        echo "$PYYAML_VERSION" >"$VENV/.pyyaml-version"
    fi
    PY=$VENV/bin/python
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# ------------------------------------------------------------ 1. the ConfigMap's copy
"$PY" - "$CONF" "$MANIFEST" "$fix" "$WORK" <<'PY'
import hashlib, json, os, re, sys
import yaml

conf_path, manifest_path, fix, work = sys.argv[1], sys.argv[2], sys.argv[3] == "true", sys.argv[4]
conf = open(conf_path).read()


def checksum(data):
    """sha256 of the ConfigMap's data as compact JSON with sorted keys."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def load():
    docs = [d for d in yaml.safe_load_all(open(manifest_path)) if d]
    find = lambda kind: next((d for d in docs if d["kind"] == kind and d["metadata"]["name"] == "gateway"), None)
    return find("ConfigMap"), find("Deployment")


def rewrite():
    """Rewrites, as text (comments and layout stay), the block scalar `nginx.conf: |` of
    the ConfigMap and then the checksum annotation."""
    lines = open(manifest_path).read().split("\n")
    start = next(i for i, l in enumerate(lines) if re.fullmatch(r"  nginx\.conf: \|", l))
    end = start + 1
    while end < len(lines) and (lines[end] == "" or lines[end].startswith("    ")):
        end += 1
    while lines[end - 1] == "":  # blank lines after the block belong to what follows
        end -= 1
    body = [("    " + l) if l else "" for l in conf.rstrip("\n").split("\n")]
    lines[start + 1:end] = body
    open(manifest_path, "w").write("\n".join(lines))
    configmap, _ = load()
    text = re.sub(r'(checksum/config: )"[0-9a-f]*"', rf'\g<1>"{checksum(configmap["data"])}"',
                  open(manifest_path).read(), count=1)
    open(manifest_path, "w").write(text)


if fix:
    rewrite()

errors = []
configmap, deployment = load()
if configmap is None or deployment is None:
    sys.exit(f"{manifest_path}: no ConfigMap and Deployment named gateway")
data = configmap.get("data", {})
for key in ("nginx.conf", "upstreams.conf", "listen.conf"):
    if key not in data:
        errors.append(f"the ConfigMap has no {key}")
if not conf.endswith("\n") or conf.endswith("\n\n"):
    errors.append(f"{conf_path} must end in exactly one newline, as the ConfigMap's block scalar does")
elif data.get("nginx.conf") != conf:
    errors.append(f"the ConfigMap's nginx.conf differs from {conf_path} (run deploy/gateway/check.sh --fix)")
annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
if annotations.get("checksum/config") != checksum(data):
    errors.append("the Deployment's checksum/config is not the ConfigMap's (run deploy/gateway/check.sh --fix)")
if errors:
    sys.exit("\n".join(f"{manifest_path}: {e}" for e in errors))

# The ConfigMap's include files, for nginx -t.
os.makedirs(os.path.join(work, "k8s"))
for key in ("upstreams.conf", "listen.conf"):
    text = data[key]
    if key == "upstreams.conf":
        text = re.sub(r"[a-z0-9.-]+\.svc\.cluster\.local", "127.0.0.1", text)
    open(os.path.join(work, "k8s", key), "w").write(text)
PY
log "the ConfigMap holds $CONF and its checksum is current"

# ------------------------------------------------------------------ 2. nginx -t
mkdir -p "$WORK/example"
cp deploy/gateway/upstreams.example.conf "$WORK/example/upstreams.conf"
cp deploy/gateway/listen.example.conf "$WORK/example/listen.conf"
for env in example k8s; do
    cp "$CONF" "$WORK/$env/nginx.conf"
    mkdir -p "$WORK/$env/prefix"
    nginx -t -q -p "$WORK/$env/prefix/" -e stderr -c "$WORK/$env/nginx.conf" ||
        die "nginx -t failed on $CONF with the $env include files"
done
log "nginx -t accepts $CONF with the example and the Kubernetes include files"

# ------------------------------------------------------------------ 3. behaviour
python3 deploy/gateway/smoke.py "$CONF" >&2 || die "the smoke test failed"
