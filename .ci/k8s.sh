#!/usr/bin/env bash
# .ci/k8s.sh - the Kubernetes manifests (deploy/k8s) without a cluster (issue #13).
#
# 1. Renders the kustomization (`kubectl kustomize`; without kubectl, the listed files with
#    the namespace and image applied by this script) and validates every object, and the
#    example Secret, with kubernetes-validate (pinned, from PyPI, in .ci/.venv-k8s) against
#    the JSON schemas of Kubernetes $K8S_VERSION in strict mode (unknown fields fail).
# 2. Checks what a schema cannot know, against the binary and the other manifests:
#    - every MERCATO_* variable a manifest sets (container env, ConfigMap and Secret keys,
#      the example Secret's commented optional keys) is one that `mercato <sub> --help`
#      lists for the subcommand that reads it: the binary decides, not a list kept here;
#    - container args are real subcommands and flags (projection names: the registry in
#      projections/src/read_models, which --help does not list);
#    - every file of deploy/k8s is listed in kustomization.yaml (but the example Secret);
#    - references resolve: Secret and ConfigMap keys, Service/PDB/HPA/NetworkPolicy
#      selectors, named ports, the Ingress backend;
#    - each Mercato pod: the master data key from the Secret (a process without it makes a
#      key of its own), the restricted security context, probes, resources, listeners on
#      the pod address matching the container ports, the query API's replica id and index
#      directory, and NetworkPolicies that let it reach DNS, PostgreSQL and NATS and be
#      reached by the gateway and Prometheus (the storefront: DNS and the gateway, reached by
#      the ingress controller and Prometheus);
#    - deploy/k8s/nats/values.yaml runs enough JetStream servers for MERCATO_STREAM_REPLICAS,
#      on volumes, with a sync_interval the server reads as a duration.
#
# deploy/k8s/gateway.yaml (the gateway's own objects) may be missing while it is written;
# the check then says so and goes on without it.
#
# Settings (environment):
#   MERCATO_BIN   the mercato binary (default target/debug/mercato; it is not built here)
set -euo pipefail
cd "$(dirname "$0")/.."

KV_VERSION=1.37.0  # kubernetes-validate
K8S_VERSION=1.30.0 # the oldest Kubernetes the manifests are for (preStop `sleep` is 1.30+)
VENV=.ci/.venv-k8s
BIN=${MERCATO_BIN:-target/debug/mercato}
DIR=deploy/k8s

log() { echo "k8s.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

source .ci/venv.sh
pinned_venv "$VENV" "kubernetes-validate==$KV_VERSION"

# A binary being rebuilt is missing for a moment.
for _ in $(seq 30); do
    [[ -x $BIN ]] && break
    sleep 2
done
[[ -x $BIN ]] || die "$BIN is missing (cargo build --bin mercato, or set MERCATO_BIN)"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# -------------------------------------------------------------- what the binary accepts
# Long help, with no MERCATO_* variable of this shell shown in it.
help() { env $(env | grep -o '^MERCATO_[A-Z0-9_]*' | sed 's/^/-u /') "$BIN" "$@" --help; }
mkdir "$WORK/help"
help >"$WORK/help/_" || die "$BIN --help failed"
subcommands=$(awk '/^Commands:/ { on = 1; next } on && /^[^ ]/ { on = 0 } on && NF { print $1 }' \
    "$WORK/help/_" | grep -vx help)
[[ -n $subcommands ]] || die "$BIN --help lists no subcommands"
for sub in $subcommands; do
    help "$sub" >"$WORK/help/$sub" || die "$BIN $sub --help failed"
done

# ---------------------------------------------------------------------------- rendering
mkdir "$WORK/k8s"
cp "$DIR"/*.yaml "$WORK/k8s/"
if [[ ! -f $DIR/gateway.yaml ]]; then
    log "note: $DIR/gateway.yaml is not there yet: checking without the gateway's objects"
    sed -i '/^ *- *gateway\.yaml *$/d' "$WORK/k8s/kustomization.yaml"
fi
if command -v kubectl >/dev/null; then
    log "rendering with kubectl kustomize ($(kubectl version --client 2>/dev/null | grep -i kustomize || echo 'kustomize version unknown'))"
    kubectl kustomize "$WORK/k8s" >"$WORK/rendered.yaml" || die "kubectl kustomize $DIR failed"
    renderer=kustomize
else
    log "note: kubectl is missing: the listed files are checked with the namespace and image applied here"
    renderer=files
fi

# ------------------------------------------------------------------- the checks (Python)
"$VENV/bin/python" - "$WORK" "$DIR" "$renderer" "$K8S_VERSION" "$BIN" <<'PY'
import glob, os, re, sys
import yaml
import kubernetes_validate

work, base, renderer, k8s_version, binary = sys.argv[1:6]
errors, notes = [], []


def fail(where, what):
    errors.append(f"{where}: {what}")


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


# ----------------------------------------------------------------- the binary's surface
helps = {}
for path in glob.glob(os.path.join(work, "help", "*")):
    helps[os.path.basename(path)] = open(path).read()
helps.pop("_")  # the top-level help: subcommands were read from it above
accepted = {sub: set(re.findall(r"\[env: (MERCATO_[A-Z0-9_]+)", text)) for sub, text in helps.items()}
accepted_any = set().union(*accepted.values())
flags = {sub: set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text)) for sub, text in helps.items()}
projection_names = {"all"}
for path in glob.glob("projections/src/read_models/*.rs"):
    projection_names |= set(re.findall(r'fn name\(&self\) -> &\'static str \{\s*"([a-z_]+)"', open(path).read()))

# ----------------------------------------------------------------------- the kustomization
kustomization = yaml.safe_load(open(os.path.join(base, "kustomization.yaml")))
listed = kustomization.get("resources", [])
namespace = kustomization.get("namespace")
files = sorted(os.path.relpath(p, base) for p in glob.glob(os.path.join(base, "*.yaml")))
for f in files:
    if f not in listed and f not in ("kustomization.yaml", "secret.example.yaml"):
        fail(f"{base}/kustomization.yaml", f"{f} is not listed in resources")
    if f == "secret.example.yaml" and f in listed:
        fail(f"{base}/kustomization.yaml", "lists secret.example.yaml: an apply would overwrite the real Secret")
for f in listed:
    if f not in files and f != "gateway.yaml":
        fail(f"{base}/kustomization.yaml", f"lists {f}, which does not exist")
gateway_present = os.path.exists(os.path.join(base, "gateway.yaml"))

if renderer == "kustomize":
    docs = load_all(os.path.join(work, "rendered.yaml"))
else:
    images = {i["name"]: i for i in kustomization.get("images", [])}
    docs = []
    for f in listed:
        if os.path.exists(os.path.join(base, f)):
            docs += load_all(os.path.join(base, f))
    for d in docs:
        if d["kind"] != "Namespace" and namespace:
            d["metadata"].setdefault("namespace", namespace)
        spec = d.get("spec", {})
        pod = (spec.get("jobTemplate", {}).get("spec", spec)).get("template", {}).get("spec", {})
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            i = images.get(c["image"].split(":")[0])
            if i:
                c["image"] = f'{i.get("newName", i["name"])}:{i["newTag"]}'
with open(os.path.join(work, "objects.yaml"), "w") as f:
    yaml.safe_dump_all(docs, f, sort_keys=False)

# -------------------------------------------------------------------------- the schemas
secret_path = os.path.join(base, "secret.example.yaml")
for path, shown in ((os.path.join(work, "objects.yaml"), base), (secret_path, secret_path)):
    for d in load_all(path):
        where = f'{shown}: {d.get("kind")}/{d.get("metadata", {}).get("name")}'
        try:
            kubernetes_validate.validate(d, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as e:
            fail(where, f"invalid against Kubernetes {k8s_version}: {e.message} (at {'.'.join(map(str, e.path))})")
        except Exception as e:  # noqa: BLE001 (an unknown kind or version is a failure too)
            fail(where, f"cannot be validated against Kubernetes {k8s_version}: {e}")

# ---------------------------------------------------------------------------- the objects
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in by_kind.get("ConfigMap", [])}
secret = load_all(secret_path)[0]
secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
secret_name = secret["metadata"]["name"]
commented = set(re.findall(r"^\s*#\s*(MERCATO_[A-Z0-9_]+):", open(secret_path).read(), re.M))
service_accounts = {d["metadata"]["name"]: d for d in by_kind.get("ServiceAccount", [])}

for name, data in configmaps.items():
    for key in data:
        if key.startswith("MERCATO_") and key not in accepted_any:
            fail(f"ConfigMap/{name}", f"{key} is not a setting of the binary (no `mercato <sub> --help` lists it)")
for key in sorted(secret_keys | commented):
    if key.startswith("MERCATO_") and key not in accepted_any:
        fail(secret_path, f"{key} is not a setting of the binary (no `mercato <sub> --help` lists it)")

# Pod templates, with where they come from.
pods = []
for kind in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
    for d in by_kind.get(kind, []):
        pods.append((f'{kind}/{d["metadata"]["name"]}', d, d["spec"]["template"]))


def selects(selector, labels):
    if selector is None:
        return False
    for k, v in selector.get("matchLabels", {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions", []):
        has, value = e["key"] in labels, labels.get(e["key"])
        op = e["operator"]
        if (op == "In" and value not in e["values"]) or (op == "NotIn" and has and value in e["values"]) \
                or (op == "Exists" and not has) or (op == "DoesNotExist" and has):
            return False
    return True


def selected(selector):
    return [p for p in pods if selects(selector, p[2]["metadata"].get("labels", {}))]


def is_mercato(c):
    return c["image"].split(":")[0].split("/")[-1] == "mercato"


def ports_of(policy_rules):
    out = set()
    for rule in policy_rules or []:
        for p in rule.get("ports", []) or [{"port": "*"}]:
            out.add(p.get("port", "*"))
    return out


policies = by_kind.get("NetworkPolicy", [])
gateway_labels = {"app.kubernetes.io/name": "mercato", "app.kubernetes.io/component": "gateway"}

for where, owner, template in pods:
    spec, labels = template["spec"], template["metadata"].get("labels", {})
    long_running = owner["kind"] != "Job"
    # The namespace enforces the restricted Pod Security Standard: the API server would
    # refuse any pod here (the gateway's too) that misses one of these.
    psc = spec.get("securityContext", {})
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False or "ALL" not in sc.get("capabilities", {}).get("drop", []) \
                or not sc.get("runAsNonRoot", psc.get("runAsNonRoot")) \
                or sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type") not in ("RuntimeDefault", "Localhost"):
            fail(f"{where} container {c['name']}", "breaks the namespace's restricted Pod Security Standard "
                 "(runAsNonRoot, allowPrivilegeEscalation false, capabilities drop ALL, seccompProfile RuntimeDefault)")
    sa = service_accounts.get(spec.get("serviceAccountName", "default"), {})
    if spec.get("automountServiceAccountToken", sa.get("automountServiceAccountToken")) is not False:
        fail(where, "mounts a service account token; nothing in this namespace talks to the Kubernetes API")
    for c in spec.get("containers", []):
        if not is_mercato(c):
            continue
        cw = f"{where} container {c['name']}"
        # The image's user (10001) owns nothing but the volumes: the root filesystem stays read-only.
        if "runAsUser" not in psc or c.get("securityContext", {}).get("readOnlyRootFilesystem") is not True:
            fail(cw, "must set runAsUser and readOnlyRootFilesystem true")
        args = c.get("args", [])
        sub = args[0] if args else None
        if sub not in helps:
            fail(cw, f"args {args}: {sub!r} is not a subcommand of `mercato` ({' '.join(sorted(helps))})")
            continue
        # Flags are checked against the help; a word after a flag is its value.
        for i, arg in enumerate(args[1:], 1):
            if not arg.startswith("-"):
                continue
            flag, _, value = arg.partition("=")
            if flag not in flags[sub]:
                fail(cw, f"`mercato {sub}` has no flag {flag} (`mercato {sub} --help`)")
            if flag == "--projection":
                value = value or (args[i + 1] if i + 1 < len(args) else "")
                if value not in projection_names:
                    fail(cw, f"--projection {value}: not a projection ({', '.join(sorted(projection_names))})")
        # The environment in effect: envFrom first, env over it.
        effective, from_secret = {}, {}
        for source in c.get("envFrom", []):
            if "configMapRef" in source:
                cm = source["configMapRef"]["name"]
                if cm not in configmaps:
                    fail(cw, f"envFrom ConfigMap {cm} does not exist")
                effective.update(configmaps.get(cm, {}))
            if "secretRef" in source:
                fail(cw, "envFrom a Secret: name the keys each process needs instead")
        for e in c.get("env", []):
            ref = e.get("valueFrom", {})
            if "secretKeyRef" in ref:
                r = ref["secretKeyRef"]
                if r["name"] != secret_name or (r["key"] not in secret_keys and not r.get("optional")):
                    fail(cw, f"{e['name']} refers to Secret {r['name']} key {r['key']}, which {secret_path} lacks")
                from_secret[e["name"]] = r
                effective[e["name"]] = "<secret>"
            elif "configMapKeyRef" in ref:
                r = ref["configMapKeyRef"]
                if r["key"] not in configmaps.get(r["name"], {}) and not r.get("optional"):
                    fail(cw, f"{e['name']} refers to ConfigMap {r['name']} key {r['key']}, which does not exist")
                effective[e["name"]] = configmaps.get(r["name"], {}).get(r["key"])
            elif "fieldRef" in ref:
                effective[e["name"]] = f"<{ref['fieldRef']['fieldPath']}>"
            else:
                effective[e["name"]] = e.get("value", "")
        for var in effective:
            if var.startswith("MERCATO_") and var not in accepted[sub]:
                fail(cw, f"{var} is not a setting of `mercato {sub}` (`mercato {sub} --help`)")
        # The storefront is a client of the APIs: no database, no data key, no NATS.
        needed = [] if sub == "storefront" else ["MERCATO_DATABASE_URL", "MERCATO_DATA_KEY"]
        if sub in ("command-api", "query-api"):
            needed.append("MERCATO_JWT_SECRET")
        for var in needed:
            r = from_secret.get(var)
            if not r or r.get("optional"):
                fail(cw, f"{var} must come from the Secret, not optional: without it the process "
                         + ("makes a master data key of its own" if var == "MERCATO_DATA_KEY" else "cannot work as a fleet"))
        # Listeners: on the pod address, on the ports the container declares.
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        listeners = {"MERCATO_ADMIN_ADDR": "admin"} if long_running else {}
        if sub == "command-api":
            listeners["MERCATO_COMMAND_API_ADDR"] = "http"
        if sub == "query-api":
            listeners["MERCATO_QUERY_API_ADDR"] = "http"
        if sub == "storefront":
            listeners["MERCATO_STOREFRONT_ADDR"] = "http"
        for var, port_name in listeners.items():
            addr = effective.get(var, "")
            host, _, port = addr.rpartition(":")
            if host.strip("[]") in ("", "127.0.0.1", "::1", "localhost"):
                fail(cw, f"{var}={addr!r}: probes and Services need the pod address (0.0.0.0)")
            elif str(ports.get(port_name)) != port:
                fail(cw, f"{var}={addr} but the container port named {port_name} is {ports.get(port_name)}")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            p = c.get(probe)
            if long_running and not p:
                fail(cw, f"no {probe}")
            port = (p or {}).get("httpGet", {}).get("port")
            if isinstance(port, str) and port not in ports:
                fail(cw, f"{probe} uses port {port}, which the container does not name")
        if long_running and c.get("readinessProbe", {}).get("httpGet", {}).get("path") != (
                "/readyz" if sub in ("command-api", "query-api") else "/healthz"):
            fail(cw, "readiness: the APIs answer /readyz, the other parts /healthz on the admin port")
        res = c.get("resources", {})
        for k in ("cpu", "memory"):
            if k not in res.get("requests", {}):
                fail(cw, f"no {k} request")
        if "memory" not in res.get("limits", {}):
            fail(cw, "no memory limit")
        if sub == "query-api":
            if effective.get("MERCATO_REPLICA_ID") != "<metadata.name>":
                fail(cw, "MERCATO_REPLICA_ID must be the pod name (downward API): it names the replica's consumer")
            index = effective.get("MERCATO_INDEX_DIR", "")
            mounts = [m["mountPath"].rstrip("/") for m in c.get("volumeMounts", [])]
            if not any(index.startswith(m + "/") for m in mounts):
                fail(cw, f"MERCATO_INDEX_DIR={index!r} must be inside (not at) a volume mount {mounts}")
    if not any(is_mercato(c) for c in spec.get("containers", [])):
        continue
    # What the NetworkPolicies selecting this pod let it do.
    mine = [p for p in policies if selects(p["spec"]["podSelector"], labels) or p["spec"]["podSelector"] == {}]
    egress = set().union(*[ports_of(p["spec"].get("egress")) for p in mine]) if mine else {"*"}
    storefront = any(is_mercato(c) and c.get("args", [None])[0] == "storefront" for c in spec["containers"])
    # The storefront reaches DNS and the gateway's pods; every other process PostgreSQL,
    # and the long-running ones NATS.
    needs = {53, 8000} if storefront else {53, 5432} | ({4222} if long_running else set())
    for port in sorted(needs - egress):
        if "*" not in egress:
            fail(where, f"no NetworkPolicy lets it reach port {port} ({ {53: 'DNS', 5432: 'PostgreSQL', 4222: 'NATS', 8000: 'the gateway'}[port]})")
    if long_running:
        ingress = set()
        from_gateway = set()
        for p in mine:
            for rule in p["spec"].get("ingress", []) or []:
                rule_ports = {q.get("port") for q in rule.get("ports", [])}
                ingress |= rule_ports
                if any("podSelector" in f and selects(f["podSelector"], gateway_labels) and "namespaceSelector" not in f
                       for f in rule.get("from", [])):
                    from_gateway |= rule_ports
        if 9090 not in ingress:
            fail(where, "no NetworkPolicy lets Prometheus reach the admin port 9090")
        c = next(c for c in spec["containers"] if is_mercato(c))
        http = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}.get("http")
        if storefront:
            # Shoppers come through the ingress controller, from its namespace.
            from_ingress = {q.get("port") for p in mine for rule in p["spec"].get("ingress", []) or []
                            if any("namespaceSelector" in f for f in rule.get("from", []))
                            for q in rule.get("ports", [])}
            if http and http not in from_ingress:
                fail(where, f"no NetworkPolicy lets the ingress controller reach port {http}")
        elif http and http not in from_gateway:
            fail(where, f"no NetworkPolicy lets the gateway reach port {http}")

# Selectors and references between objects.
services = {d["metadata"]["name"]: d for d in by_kind.get("Service", [])}
for name, svc in services.items():
    matched = selected({"matchLabels": svc["spec"]["selector"]}) if svc["spec"].get("selector") else []
    if not matched:
        fail(f"Service/{name}", "its selector matches no pod template")
    for port in svc["spec"]["ports"]:
        target = port.get("targetPort")
        if isinstance(target, str) and not any(
                target in {p.get("name") for c in m[2]["spec"]["containers"] for p in c.get("ports", [])} for m in matched):
            fail(f"Service/{name}", f"targetPort {target} is not a port the selected containers name")
for pdb in by_kind.get("PodDisruptionBudget", []):
    if not selected(pdb["spec"]["selector"]):
        fail(f'PodDisruptionBudget/{pdb["metadata"]["name"]}', "its selector matches no pod template")
for hpa in by_kind.get("HorizontalPodAutoscaler", []):
    ref = hpa["spec"]["scaleTargetRef"]
    target = [p for p in pods if p[0] == f'{ref["kind"]}/{ref["name"]}']
    if not target:
        fail(f'HorizontalPodAutoscaler/{hpa["metadata"]["name"]}', f'scales {ref["kind"]}/{ref["name"]}, which does not exist')
    elif "replicas" in target[0][1]["spec"]:
        fail(target[0][0], "sets replicas although an HPA owns them: every apply would reset the HPA")
for p in policies:
    sel = p["spec"]["podSelector"]
    if sel != {} and not selected(sel):
        fail(f'NetworkPolicy/{p["metadata"]["name"]}', "its podSelector matches no pod template")
for ing in by_kind.get("Ingress", []):
    for rule in ing["spec"].get("rules", []):
        for path in rule.get("http", {}).get("paths", []):
            svc = path["backend"]["service"]
            if svc["name"] not in services:
                if svc["name"] == "gateway" and not gateway_present:
                    notes.append(f'Ingress/{ing["metadata"]["name"]} -> Service/gateway: not checked (gateway.yaml is missing)')
                    continue
                fail(f'Ingress/{ing["metadata"]["name"]}', f'backend Service {svc["name"]} does not exist')
                continue
            names = {q.get("name") for q in services[svc["name"]]["spec"]["ports"]}
            numbers = {q.get("port") for q in services[svc["name"]]["spec"]["ports"]}
            if svc["port"].get("name", "-") not in names and svc["port"].get("number", "-") not in numbers:
                fail(f'Ingress/{ing["metadata"]["name"]}', f'Service {svc["name"]} has no port {svc["port"]}')

# NATS: enough JetStream servers for the stream replicas Mercato asks for.
nats_path = os.path.join(base, "nats", "values.yaml")
nats = yaml.safe_load(open(nats_path))
config = nats.get("config", {})
stream_replicas = int(next((cm["MERCATO_STREAM_REPLICAS"] for cm in configmaps.values() if "MERCATO_STREAM_REPLICAS" in cm), 1))
servers = config.get("cluster", {}).get("replicas", 1) if config.get("cluster", {}).get("enabled") else 1
if stream_replicas > servers:
    fail(nats_path, f"MERCATO_STREAM_REPLICAS={stream_replicas} needs as many JetStream servers; the chart runs {servers}")
js = config.get("jetstream", {})
if not js.get("enabled") or not js.get("fileStore", {}).get("pvc", {}).get("enabled", True):
    fail(nats_path, "JetStream with a file store on a volume is required (Mercato's streams are file-backed)")
sync = str(js.get("merge", {}).get("sync_interval", js.get("merge", {}).get("sync", "")))
if sync.startswith("<<"):
    fail(nats_path, f"sync_interval {sync!r}: unquoted, the server reads `2m` as 2,000,000 seconds; write a plain string")

for n in notes:
    print(f"k8s.sh: note: {n}", file=sys.stderr)
if errors:
    for e in errors:
        print(f"k8s.sh: FAIL {e}", file=sys.stderr)
    sys.exit(1)
print(f"k8s.sh: ok: {len(docs)} objects ({renderer}) and the example Secret are valid against Kubernetes "
      f"{k8s_version} (kubernetes-validate {kubernetes_validate.__version__}, strict), and their settings, "
      f"args, references, pods and NetworkPolicies agree with {binary} and each other")
PY
