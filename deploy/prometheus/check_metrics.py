#!/usr/bin/env python3
"""Checks that the alerting rules and the Grafana dashboards use only metrics the binaries
export, with labels those metrics have; that every dashboard is well formed (valid JSON, a
unique uid, unique panel ids, a grid position per panel, known datasources) and that its
PromQL parses.

    python3 deploy/prometheus/check_metrics.py deploy/prometheus/alerts.yml \\
        deploy/grafana/dashboards/*.json

A metric is exported if a `counter!`, `gauge!` or `histogram!` call in the Rust sources of the
binaries' crates records it by a literal name (a histogram also as `<name>_bucket` with `le`,
`<name>_sum` and `<name>_count`); Prometheus adds `job` and `instance` to each, and `up` has
only those. Run by .ci/prometheus.sh; Python 3 standard library and promtool only.
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CRATES = ["aggregates", "command-api", "event-store", "nats", "projections", "query-api",
          "telemetry", "web", "cli"]
TARGET_LABELS = {"job", "instance"}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "offset", "bool", "inf", "nan", "atan2"}
# Datasource uids the dashboards may query (provisioned by deploy/compose/grafana); only
# Prometheus queries are PromQL.
DATASOURCES = {"prometheus", "loki"}

errors = []


def fail(where, message):
    if f"{where}: {message}" not in errors:
        errors.append(f"{where}: {message}")


# --- what the binaries record -----------------------------------------------------------------


def recorded_metrics():
    """name -> (kind, label names) for every metric recorded by a literal name."""
    metrics = {}
    call = re.compile(r"\b(counter|gauge|histogram)!\s*\(")
    for crate in CRATES:
        for path in sorted((ROOT / crate).rglob("*.rs")):
            if "tests" in path.relative_to(ROOT / crate).parts:
                continue
            text = path.read_text()
            for m in call.finditer(text):
                args = balanced(text, m.end() - 1)
                name = re.match(r'\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"', args)
                if not name:
                    continue
                labels = set(re.findall(r'"([a-zA-Z_][a-zA-Z0-9_]*)"\s*=>', args))
                kind, known = metrics.get(name.group(1), (m.group(1), set()))
                metrics[name.group(1)] = (kind, known | labels)
    return metrics


def balanced(text, open_at):
    """The text inside the parenthesis opening at `open_at` (string literals skipped)."""
    depth, i, in_str = 0, open_at, False
    while i < len(text):
        c = text[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[open_at + 1:i]
        i += 1
    return text[open_at + 1:]


def allowed_labels(metrics, name):
    """The label names a series of `name` can have, or None if no binary exports it."""
    if name == "up":
        return set(TARGET_LABELS)
    if name in metrics:
        return metrics[name][1] | TARGET_LABELS
    for suffix, extra in (("_bucket", {"le"}), ("_sum", set()), ("_count", set())):
        base = name[: -len(suffix)] if name.endswith(suffix) else None
        if base in metrics and metrics[base][0] == "histogram":
            return metrics[base][1] | TARGET_LABELS | extra
    return None


# --- PromQL -----------------------------------------------------------------------------------


def selectors(expr):
    """(metric name, label names in its matchers) for every vector selector in `expr`."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    s = re.sub(r"#[^\n]*", "", s)  # comments
    s = re.sub(r"\[[^\]]*\]", "", s)  # ranges and subqueries
    s = re.sub(r"\$\{?\w+(?::\w+)?\}?", "", s)  # Grafana variables outside strings
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    found = []
    token = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?|\{[^}]*\}")
    for m in token.finditer(s):
        name = m.group(1)
        if not name or name.lower() in KEYWORDS:
            continue
        if s[m.end():].lstrip().startswith("(") and not m.group(2):
            continue  # a function
        labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(2) or ""))
        found.append((name, labels))
    return found


def check_expr(metrics, where, expr):
    for name, labels in selectors(expr):
        allowed = allowed_labels(metrics, name)
        if allowed is None:
            fail(where, f"uses {name}, which no binary records")
        elif labels - allowed:
            fail(where, f"selects {name} by {', '.join(sorted(labels - allowed))}, which it "
                        f"does not have (it has {', '.join(sorted(allowed))})")


def promql_parses(exprs):
    """Has promtool parse (where, expr) pairs, Grafana variables replaced by sample values."""
    rules = []
    for i, (_where, expr) in enumerate(exprs):
        e = re.sub(r"\$__rate_interval|\$__interval|\$__range", "5m", expr)
        e = re.sub(r"\$\{?\w+(?::\w+)?\}?", "x", e)
        rules.append(f"      - record: dashboard_expr_{i}\n        expr: {json.dumps(e)}\n")
    if not rules:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
        f.write("groups:\n  - name: dashboards\n    rules:\n" + "".join(rules))
        f.flush()
        done = subprocess.run(["promtool", "check", "rules", f.name],
                              capture_output=True, text=True)
    if done.returncode != 0:
        bad = sorted({int(n) for n in re.findall(r"group \"dashboards\", rule (\d+)",
                                                 done.stdout + done.stderr)})
        for n in bad:
            where, expr = exprs[n - 1]
            fail(where, f"PromQL does not parse: {expr}")
        if not bad:
            fail("dashboards", "promtool cannot parse an expression:\n"
                 + done.stdout + done.stderr)


# --- files ------------------------------------------------------------------------------------


def rule_exprs(path):
    """(line, expr) of every `expr:` in a rules file (plain, quoted or block scalars)."""
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)(?:- )?expr:\s*(.*)$", lines[i])
        i += 1
        if not m:
            continue
        start, indent, value = i, len(m.group(1)), m.group(2).strip()
        body = [] if value[:1] in ("|", ">") else [value]
        while i < len(lines) and (not lines[i].strip()
                                  or len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i].strip())
            i += 1
        expr = "\n".join(body).strip()
        if expr[:1] in ("'", '"') and expr[-1:] == expr[:1]:
            expr = expr[1:-1]
        out.append((start, expr))
    return out


def check_rules(metrics, path):
    exprs = rule_exprs(path)
    if not exprs:
        fail(path, "has no expr")
    for line, expr in exprs:
        check_expr(metrics, f"{path}:{line}", expr)
    return len(exprs)


def walk_panels(panels):
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def check_dashboard(metrics, path, uids, exprs):
    try:
        dashboard = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        fail(path, f"is not valid JSON: {e}")
        return 0
    uid = dashboard.get("uid")
    if not isinstance(uid, str) or not re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid):
        fail(path, f"needs a uid of 1 to 40 letters, digits, - or _ (has {uid!r})")
    elif uid in uids:
        fail(path, f"has the uid {uid} of {uids[uid]}")
    else:
        uids[uid] = path.name
    if not dashboard.get("title"):
        fail(path, "has no title")
    ids = set()
    panels = list(walk_panels(dashboard.get("panels", [])))
    for panel in panels:
        where = f"{path} panel {panel.get('id')} ({panel.get('title', '')!r})"
        pid = panel.get("id")
        if not isinstance(pid, int) or pid in ids:
            fail(where, "needs an id unique in its dashboard")
        ids.add(pid)
        if not {"h", "w", "x", "y"} <= set(panel.get("gridPos", {})):
            fail(where, "has no gridPos")
        refs = [t.get("refId") for t in panel.get("targets", [])]
        if len(refs) != len(set(refs)):
            fail(where, "has two targets with one refId")
        for t in panel.get("targets", []):
            source = t.get("datasource") or panel.get("datasource") or {}
            if source.get("uid") not in DATASOURCES:
                fail(where, f"queries the datasource {source.get('uid')!r}, not one of "
                            f"{', '.join(sorted(DATASOURCES))}")
                continue
            if not t.get("expr"):
                fail(where, f"target {t.get('refId')} has no expr")
                continue
            if source["uid"] != "prometheus":
                continue
            check_expr(metrics, where, t["expr"])
            exprs.append((where, t["expr"]))
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if var.get("type") != "query" or not query:
            continue
        where = f"{path} variable {var.get('name')}"
        m = re.fullmatch(r"\s*label_values\((?:(.*),)?\s*\w+\s*\)\s*", query)
        if m and m.group(1):
            check_expr(metrics, where, m.group(1))
        elif not m:
            check_expr(metrics, where, query)
            exprs.append((where, query))
    return len(panels)


def main(paths):
    metrics = recorded_metrics()
    if not metrics:
        sys.exit("check_metrics.py: found no metric in the Rust sources")
    uids, exprs, rules, panels, dashboards = {}, [], 0, 0, 0
    for arg in paths:
        path = Path(arg)
        if path.suffix == ".json":
            panels += check_dashboard(metrics, path, uids, exprs)
            dashboards += 1
        else:
            rules += check_rules(metrics, path)
    promql_parses(exprs)
    if errors:
        for e in errors:
            print(f"check_metrics.py: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"metrics: {rules} rule expressions, {dashboards} dashboards ({panels} panels, "
          f"{len(exprs)} queries) use only the {len(metrics)} metrics the binaries record")


if __name__ == "__main__":
    main(sys.argv[1:])
