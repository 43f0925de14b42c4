#!/usr/bin/env python3
"""Helpers for .ci/schemathesis.sh (standard library only).

  free-ports N                    print N free TCP ports on 127.0.0.1
  json-get KEY [KEY...]           read JSON on stdin, print the value at the path
  delete-streams URL NAME...      delete JetStream streams (missing ones are fine)
  summary ...                     read schemathesis NDJSON reports, group the failures,
                                  print a summary and write it as Markdown; exit 1 when
                                  a blocking check failed, a run errored or did not finish
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import re
import socket
import sys
import uuid


# --------------------------------------------------------------------------- small tools


def free_ports(n: int) -> None:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def json_get(keys: list[str]) -> None:
    value = json.load(sys.stdin)
    for key in keys:
        value = value[int(key)] if isinstance(value, list) else value[key]
    print(value if isinstance(value, str) else json.dumps(value))


def delete_streams(url: str, names: list[str]) -> int:
    """Deletes streams through the JetStream API ($JS.API.STREAM.DELETE.<name>)."""
    server = url.split(",")[0].strip()
    server = re.sub(r"^nats://", "", server)
    server = server.rsplit("@", 1)[-1]
    host, _, port = server.partition(":")
    sock = socket.create_connection((host or "127.0.0.1", int(port or 4222)), timeout=5)
    f = sock.makefile("rb")
    if not f.readline().startswith(b"INFO"):
        print("delete-streams: no INFO line from nats", file=sys.stderr)
        return 1
    inbox = f"_INBOX.st_{uuid.uuid4().hex}"
    sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":false}\r\n')
    sock.sendall(f"SUB {inbox} 1\r\n".encode())
    failed = 0
    for name in names:
        sock.sendall(f"PUB $JS.API.STREAM.DELETE.{name} {inbox} 0\r\n\r\n".encode())
        sock.sendall(b"PING\r\n")
        while True:
            line = f.readline()
            if not line:
                print("delete-streams: connection closed", file=sys.stderr)
                return 1
            if line.startswith(b"PING"):
                sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                print(f"delete-streams: {line.decode().strip()}", file=sys.stderr)
                return 1
            elif line.startswith(b"MSG"):
                size = int(line.split()[-1])
                payload = f.read(size + 2)[:size]
                answer = json.loads(payload or b"{}")
                err = answer.get("error")
                if answer.get("success"):
                    print(f"stream {name} deleted", file=sys.stderr)
                elif err and err.get("err_code") == 10059:  # stream not found
                    pass
                else:
                    print(f"delete-streams: {name}: {answer}", file=sys.stderr)
                    failed += 1
                break
    sock.close()
    return 1 if failed else 0


# --------------------------------------------------------------------------- summary

BLOCKING_DEFAULT = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)


QUIET_HEADERS = {"user-agent", "accept", "accept-encoding", "connection", "content-length"}


def decode(payload) -> str:
    if payload is None:
        return ""
    if isinstance(payload, dict):
        if "$base64" in payload:
            try:
                return base64.b64decode(payload["$base64"]).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001 - a report tool: show what we can
                return "<undecodable>"
        return json.dumps(payload, ensure_ascii=False)
    return str(payload)


def clip(text: str, n: int = 300) -> str:
    text = text.replace("\n", " ").strip()
    return text if len(text) <= n else text[: n - 3] + "..."


def problem_code(body: str) -> str:
    try:
        value = json.loads(body)
    except Exception:  # noqa: BLE001
        return ""
    if isinstance(value, dict) and isinstance(value.get("code"), str):
        return value["code"]
    return ""


def scenario_of(case: dict) -> str:
    meta = (case.get("value") or {}).get("meta") or {}
    data = (meta.get("phase") or {}).get("data") or {}
    text = data.get("description") or (meta.get("phase") or {}).get("name", "")
    if data.get("parameter"):
        text += f" ({data.get('parameter_location', '')} `{data['parameter']}`)"
    return text


def cause_of(check: str, message: str, case: dict) -> str:
    """The part of a failure that names its cause, without the generated values."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    if check == "status_code_conformance":
        return lines[0] if lines else ""
    if check == "positive_data_acceptance":
        return ""  # grouped by the answer; the generated cases are listed as samples
    if check == "response_schema_conformance":
        # "Response violates schema" + the validator's text; keep the schema keyword
        # and where it failed, not the value.
        keep = [ln for ln in lines if ln.startswith(("Schema at", "Schema path", "At", "Error"))]
        first = next((ln for ln in lines[1:] if not ln.startswith(("Value", "{", "[", '"'))), "")
        text = " | ".join(keep) or first
        return re.sub(r"'[^']{40,}'", "'...'", text)[:200]
    if check in ("negative_data_rejection", "positive_data_acceptance", "missing_required_header"):
        meta = (case.get("value") or {}).get("meta") or {}
        data = (meta.get("phase") or {}).get("data") or {}
        phase = (meta.get("phase") or {}).get("name", "")
        comp = meta.get("components") or {}
        negative = sorted(k for k, v in comp.items() if (v or {}).get("mode") == "negative")
        if data.get("description"):
            where = ""
            if data.get("parameter"):
                where = f" ({data.get('parameter_location', '')} `{data['parameter']}`"
                where += f" at {data['location']})" if data.get("location") else ")"
            return f"{data['description']}{where}"
        if negative:
            return f"{phase}: negative {', '.join(negative)}"
        return phase
    return " | ".join(lines[:2])[:200]


def summary(args) -> int:
    blocking = {c.strip() for c in args.blocking.split(",") if c.strip()}
    groups: dict[tuple, dict] = {}
    per_run = {}
    errors = []
    run_problems = []
    total_cases = collections.Counter()
    for spec in args.run:
        label, path, rc, seconds = spec.split("|", 3)
        counts = collections.Counter()
        cases_seen = set()
        finished = False
        if not os.path.exists(path):
            run_problems.append(f"{label}: no report ({path})")
            per_run[label] = (counts, 0, rc, seconds)
            continue
        with open(path, encoding="utf-8") as fh:
            for raw in fh:
                try:
                    event = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                kind, body = next(iter(event.items()))
                if kind == "EngineFinished":
                    finished = True
                if kind in ("NonFatalError", "FatalError"):
                    info = body.get("info") or body.get("value") or body
                    text = info.get("message") if isinstance(info, dict) else None
                    errors.append(f"{label}: {kind}: {clip(text or json.dumps(info), 400)}")
                    continue
                if kind != "ScenarioFinished":
                    continue
                rec = body.get("recorder") or {}
                cases = rec.get("cases") or {}
                inter = rec.get("interactions") or {}
                for case_id, checks in (rec.get("checks") or {}).items():
                    cases_seen.add(case_id)
                    for check in checks:
                        if check.get("status") != "failure":
                            continue
                        name = check.get("name", "?")
                        failure = ((check.get("failure_info") or {}).get("failure")) or {}
                        operation = failure.get("operation") or rec.get("label", "?")
                        message = failure.get("message", "")
                        case = cases.get(case_id) or {}
                        ix = inter.get(case_id) or {}
                        response = ix.get("response") or {}
                        request = ix.get("request") or {}
                        status = response.get("status_code", "-")
                        ctype = ",".join((response.get("headers") or {}).get("content-type", []))
                        rbody = decode(response.get("content"))
                        code = problem_code(rbody)
                        cause = cause_of(name, message, case)
                        key = (name, operation, failure.get("code", ""), failure.get("title", ""),
                               status, code, cause)
                        counts[name] += 1
                        g = groups.get(key)
                        if g is None:
                            g = groups[key] = {
                                "cases": 0, "runs": set(), "message": message,
                                "request": f"{request.get('method', '')} {request.get('uri', '')}",
                                "request_body": clip(decode(request.get("body")), 240),
                                "request_headers": {
                                    k: ",".join(v) if isinstance(v, list) else str(v)
                                    for k, v in (request.get("headers") or {}).items()
                                    if k.lower() not in QUIET_HEADERS
                                },
                                "content_type": ctype, "response_body": clip(rbody, 300),
                                "phase": ((case.get("value") or {}).get("meta") or {}).get("phase", {}).get("name", ""),
                            }
                        g["cases"] += 1
                        g["runs"].add(label)
                        g.setdefault("samples", collections.Counter())[scenario_of(case)] += 1
        if not finished:
            run_problems.append(f"{label}: the run did not finish (exit {rc}; time-out or crash)")
        elif rc not in ("0", "1"):
            run_problems.append(f"{label}: schemathesis exited {rc}")
        total_cases[label] = len(cases_seen)
        per_run[label] = (counts, len(cases_seen), rc, seconds)

    by_check = collections.defaultdict(list)
    for key, g in groups.items():
        by_check[key[0]].append((key, g))
    blocking_groups = sum(len(v) for k, v in by_check.items() if k in blocking)

    out = []
    out.append("# Schemathesis conformance summary\n")
    out.append("| run | test cases | failed checks | exit | seconds |")
    out.append("|---|---:|---|---:|---:|")
    for label, (counts, ncases, rc, seconds) in per_run.items():
        failed = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        out.append(f"| {label} | {ncases} | {failed} | {rc} | {seconds} |")
    out.append("")
    for problem in run_problems + errors:
        out.append(f"- **error**: {problem}")
    if run_problems or errors:
        out.append("")
    order = sorted(by_check, key=lambda c: (c not in blocking, c))

    def causes(check):
        """(status, problem code, cause) -> [(operation, group)], the same cause on many routes."""
        merged = collections.defaultdict(list)
        for key, g in by_check[check]:
            _, operation, code, title, status, pcode, cause = key
            merged[(f"{code} {title}", str(status), pcode, cause)].append((operation, g))
        return sorted(merged.items(), key=lambda kv: (-len(kv[1]), kv[0]))

    for check in order:
        tag = "BLOCKING" if check in blocking else "reported"
        ncases = sum(g["cases"] for _, g in by_check[check])
        out.append(f"## {check} ({tag}): {len(by_check[check])} distinct (operation, answer, cause), "
                   f"{ncases} failing test cases\n")
        for (title, status, pcode, cause), ops in causes(check):
            ncases = sum(g["cases"] for _, g in ops)
            runs = sorted(set().union(*(g["runs"] for _, g in ops)))
            out.append(f"### {title}: answered {status}{' `' + pcode + '`' if pcode else ''}"
                       f" ({len(ops)} operations, {ncases} test cases; {', '.join(runs)})\n")
            if cause:
                out.append(f"- cause: {cause}")
            out.append(f"- operations: {', '.join('`' + op + '`' for op, _ in sorted(ops, key=lambda x: x[0]))}")
            op, g = ops[0]
            headers = " ".join(f"-H '{k}: {clip(v, 80)}'" for k, v in g["request_headers"].items())
            out.append(f"- example ({op}, {g['phase']} phase): `{clip(g['request'], 200)}`"
                       + (f" `{headers}`" if headers else "")
                       + (f" body `{g['request_body']}`" if g["request_body"] else ""))
            out.append(f"  - response {status} ({g['content_type'] or 'no content-type'}): `{g['response_body']}`")
            msg = clip(g["message"], 400)
            if msg:
                out.append(f"  - schemathesis: {msg}")
            samples = collections.Counter()
            for _, og in ops:
                samples.update(og.get("samples") or {})
            if samples and check != "content_type_conformance":
                top = ", ".join(f"{clip(k, 90)} x{v}" for k, v in samples.most_common(5))
                out.append(f"  - generated as: {top}")
            out.append("")
    text = "\n".join(out) + "\n"
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write(text)

    # console: one line per distinct failure
    print("schemathesis summary")
    for label, (counts, ncases, rc, seconds) in per_run.items():
        failed = ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "no failures"
        print(f"  {label}: {ncases} test cases in {seconds}s, exit {rc}: {failed}")
    for check in order:
        tag = "BLOCKING" if check in blocking else "reported"
        print(f"{check} ({tag}): {len(by_check[check])} distinct")
        for (title, status, pcode, cause), ops in causes(check):
            names = sorted({op for op, _ in ops})
            shown = ", ".join(names[:4]) + (f" +{len(names) - 4} more" if len(names) > 4 else "")
            print(f"  {status} {pcode or '-'}: {clip(cause, 110)} [{shown}]")
    for problem in run_problems + errors:
        print(f"error: {problem}")
    if args.markdown:
        print(f"details: {args.markdown}")
    failed = blocking_groups > 0 or bool(run_problems) or bool(errors)
    if failed:
        print(f"FAILED: {blocking_groups} distinct blocking failures"
              f"{', ' + str(len(run_problems) + len(errors)) + ' run errors' if run_problems or errors else ''}")
    else:
        print("OK: no blocking failures")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("free-ports")
    p.add_argument("n", type=int)
    p = sub.add_parser("json-get")
    p.add_argument("keys", nargs="+")
    p = sub.add_parser("delete-streams")
    p.add_argument("url")
    p.add_argument("names", nargs="+")
    p = sub.add_parser("summary")
    p.add_argument("--run", action="append", default=[], help="LABEL|NDJSON|EXIT|SECONDS")
    p.add_argument("--blocking", default=BLOCKING_DEFAULT)
    p.add_argument("--markdown")
    args = parser.parse_args()
    if args.cmd == "free-ports":
        free_ports(args.n)
        return 0
    if args.cmd == "json-get":
        json_get(args.keys)
        return 0
    if args.cmd == "delete-streams":
        return delete_streams(args.url, args.names)
    return summary(args)


if __name__ == "__main__":
    sys.exit(main())
