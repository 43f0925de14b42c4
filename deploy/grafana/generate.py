#!/usr/bin/env python3
"""Mercato's Grafana dashboards, written as deploy/grafana/dashboards/*.json.

    python3 deploy/grafana/generate.py          # (re)write the JSON files
    python3 deploy/grafana/generate.py --check  # fail if a committed file is not what this writes

Edit the dashboards here, not in the JSON (.ci/prometheus.sh runs --check, then checks every
metric the JSON uses against the ones the binaries record). Panels query the datasources
provisioned with uid `prometheus` and `loki` (deploy/compose/grafana/datasources); the log
panels select Mercato's lines by the `part` and `level` labels deploy/compose/logs.alloy sets.
Python 3 standard library only.
"""

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
PROM = {"type": "prometheus", "uid": "prometheus"}
LOKI = {"type": "loki", "uid": "loki"}

# Metrics the dashboards want that the binaries do not record yet. A panel that uses
# one is left out; when the metric is recorded, delete it from this set and regenerate.
NOT_YET_EXPORTED: set[str] = set()

RATE = "[$__rate_interval]"
# The relay's lag gauges are set only while a relay leads, and a relay that steps down keeps
# its last values: read them from the instance that leads now.
LEADER = "and on (job, instance) (mercato_relay_leader == 1)"
CHECKOUT_ROUTE = 'route="/v1/carts/{id}/checkout"'
HTTP = 'job=~"$job", route=~"$route"'


# --- panels -----------------------------------------------------------------------------------


def target(expr, legend="", ref="A", instant=False, fmt=None):
    t = {
        "datasource": PROM,
        "editorMode": "code",
        "expr": expr,
        "instant": instant,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "refId": ref,
    }
    if fmt:
        t["format"] = fmt
    return t


def targets(*queries, instant=False, fmt=None):
    """(expr, legend) pairs as targets A, B, C..."""
    return [
        target(expr, legend, chr(ord("A") + i), instant=instant, fmt=fmt)
        for i, (expr, legend) in enumerate(queries)
    ]


def steps(*pairs):
    """Threshold steps: a base colour, then (value, colour) pairs."""
    base, *rest = pairs
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}]
        + [{"color": c, "value": v} for v, c in rest],
    }


def color_override(name_regex, color):
    return {
        "matcher": {"id": "byRegexp", "options": name_regex},
        "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}],
    }


def right_axis_override(name_regex, unit):
    return {
        "matcher": {"id": "byRegexp", "options": name_regex},
        "properties": [
            {"id": "unit", "value": unit},
            {"id": "custom.axisPlacement", "value": "right"},
        ],
    }


def timeseries(title, description, queries, unit, *, legend="bottom", bars=False,
               threshold=None, overrides=(), decimals=None, stack=False):
    """A time series panel. `legend`: "bottom" (a list) or "table" (a table on the right
    with mean, max and last, for many series). `threshold`: draw a red line at this value."""
    custom = {
        "axisSoftMin": 0,
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
        "thresholdsStyle": {"mode": "line" if threshold is not None else "off"},
    }
    defaults = {
        "color": {"mode": "palette-classic"},
        "custom": custom,
        "unit": unit,
        "thresholds": steps("green", (threshold, "red")) if threshold is not None
        else steps("green"),
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if legend == "table":
        legend_opts = {"calcs": ["mean", "max", "lastNotNull"], "displayMode": "table",
                       "placement": "right", "showLegend": True, "sortBy": "Max",
                       "sortDesc": True}
    else:
        legend_opts = {"calcs": [], "displayMode": "list", "placement": "bottom",
                       "showLegend": True}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": PROM,
        "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
        "options": {"legend": legend_opts, "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": targets(*queries),
    }


def stat(title, description, expr, unit, thresholds, *, legend="", mappings=(),
         decimals=None, graph=True):
    defaults = {
        "color": {"mode": "thresholds"},
        "mappings": list(mappings),
        "thresholds": thresholds,
        "unit": unit,
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": PROM,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "colorMode": "background",
            "graphMode": "area" if graph else "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "value_and_name" if legend else "value",
        },
        "targets": [target(expr, legend)],
    }


def value_map(*entries):
    """Value mappings: (value, text, colour)."""
    return [{
        "type": "value",
        "options": {str(v): {"text": text, "color": color, "index": i}
                    for i, (v, text, color) in enumerate(entries)},
    }]


def state_timeline(title, description, expr, legend, mappings):
    return {
        "type": "state-timeline",
        "title": title,
        "description": description,
        "datasource": PROM,
        "fieldConfig": {
            "defaults": {
                "color": {"mode": "thresholds"},
                "custom": {"fillOpacity": 80, "lineWidth": 0},
                "mappings": list(mappings),
                "thresholds": steps("blue"),
            },
            "overrides": [],
        },
        "options": {
            "alignValue": "left",
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
            "mergeValues": True,
            "rowHeight": 0.8,
            "showValue": "auto",
            "tooltip": {"mode": "single", "sort": "none"},
        },
        "targets": [target(expr, legend)],
    }


def table(title, description, columns, by):
    """One row per value of label `by`; `columns`: (header, expr, unit, thresholds)."""
    renames, overrides = {}, []
    for i, (header, _expr, unit, thresholds) in enumerate(columns):
        field = f"Value #{chr(ord('A') + i)}"
        renames[field] = header
        props = [{"id": "unit", "value": unit}]
        if thresholds:
            props += [
                {"id": "thresholds", "value": thresholds},
                {"id": "custom.cellOptions", "value": {"type": "color-background"}},
            ]
        overrides.append({"matcher": {"id": "byName", "options": field}, "properties": props})
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": PROM,
        "fieldConfig": {
            "defaults": {"custom": {"align": "auto", "cellOptions": {"type": "auto"}},
                         "thresholds": steps("green")},
            "overrides": overrides,
        },
        "options": {"cellHeight": "sm", "showHeader": True,
                    "sortBy": [{"desc": False, "displayName": by}]},
        "targets": targets(*[(expr, "") for _h, expr, _u, _t in columns],
                           instant=True, fmt="table"),
        "transformations": [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True},
                                           "renameByName": renames}},
        ],
    }


def log_rate(title, description, expr, legend):
    """Log lines per second by a LogQL metric query, as bars."""
    panel = timeseries(title, description, [], "none", bars=True, stack=True,
                       overrides=[color_override(".*ERROR", "red"),
                                  color_override(".*WARN", "orange")])
    panel["datasource"] = LOKI
    panel["targets"] = [{"datasource": LOKI, "editorMode": "code", "expr": expr,
                         "legendFormat": legend, "queryType": "range", "refId": "A"}]
    return panel


def logs(title, description, expr):
    return {
        "type": "logs",
        "title": title,
        "description": description,
        "datasource": LOKI,
        "options": {"dedupStrategy": "none", "enableLogDetails": True, "prettifyLogMessage": False,
                    "showCommonLabels": False, "showLabels": False, "showTime": True,
                    "sortOrder": "Descending", "wrapLogMessage": True},
        "targets": [{"datasource": LOKI, "editorMode": "code", "expr": expr,
                     "queryType": "range", "refId": "A"}],
    }


def uses_pending_metric(panel):
    exprs = " ".join(t["expr"] for t in panel.get("targets", []))
    return any(m in exprs for m in NOT_YET_EXPORTED)


# --- layout -----------------------------------------------------------------------------------


class Dashboard:
    def __init__(self, uid, title, description, variables):
        self.uid, self.title, self.description = uid, title, description
        self.variables = variables
        self.panels = []
        self.x = self.y = self.line_height = 0

    def row(self, title):
        self._newline()
        self.panels.append({"type": "row", "title": title, "collapsed": False, "panels": [],
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}})
        self.y += 1

    def add(self, panel, w=12, h=8):
        if uses_pending_metric(panel):
            return
        if self.x + w > 24:
            self._newline()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.line_height = max(self.line_height, h)

    def _newline(self):
        if self.x:
            self.y += self.line_height
        self.x = self.line_height = 0

    def json(self):
        for i, panel in enumerate(self.panels, start=1):
            panel["id"] = i
        return {
            "annotations": {"list": [{
                "builtIn": 1,
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True,
                "hide": True,
                "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts",
                "type": "dashboard",
            }]},
            "description": self.description,
            "editable": True,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "id": None,
            "links": [{"asDropdown": False, "icon": "external link", "includeVars": False,
                       "keepTime": True, "tags": ["mercato"], "targetBlank": False,
                       "title": "Mercato", "type": "dashboards"}],
            "panels": self.panels,
            "refresh": "30s",
            "schemaVersion": 39,
            "tags": ["mercato"],
            "templating": {"list": self.variables},
            "time": {"from": "now-3h", "to": "now"},
            "timepicker": {},
            "timezone": "",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
            "weekStart": "",
        }


def variable(name, label, query):
    """A multi-value query variable, `All` by default (matching every value, even new ones)."""
    return {
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": PROM,
        "definition": query,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }


# --- shared panels ----------------------------------------------------------------------------


def relay_leader_stat():
    return stat(
        "Relay leader",
        "How many relays hold the leader lock (mercato_relay_leader). Exactly one publishes "
        "the events table to JetStream; the others stand by. None: nothing is published "
        "(alert MercatoNoRelayLeader).",
        "sum(mercato_relay_leader) or vector(0)", "none",
        steps("red", (1, "green"), (2, "orange")),
        mappings=value_map((0, "none", "red"), (1, "1 leader", "green")), graph=False)


def relay_lag_stat():
    return stat(
        "Relay lag",
        "Age of the oldest committed event the leading relay has not had acknowledged by "
        "JetStream (mercato_relay_lag_seconds). Every worker and read model is at least this "
        "far behind. Alert MercatoRelayLagging above 30 s for 5 minutes.",
        f"max(mercato_relay_lag_seconds {LEADER})", "s",
        steps("green", (5, "orange"), (30, "red")))


def held_back_panel():
    return timeseries(
        "Log held back by open transactions",
        "Committed events the relay may not publish yet because an older transaction is "
        "still open (the log is published in commit order: ADR 0002), and the age of the "
        "oldest open transaction in the PostgreSQL cluster. Both come from the leading relay. "
        "A long-open transaction (a stuck session, `idle in transaction`, a prepared "
        "transaction) stops the whole pipeline: alert MercatoLogHeldBack.",
        [(f"max(mercato_log_held_back_events {LEADER})", "events held back"),
         (f"max(mercato_log_oldest_open_transaction_seconds {LEADER})",
          "oldest open transaction")],
        "short", overrides=[right_axis_override("oldest open transaction", "s")])


# --- dashboards -------------------------------------------------------------------------------


def overview():
    d = Dashboard(
        "mercato-overview", "Mercato / Overview",
        "Requests, errors and latency of the command and query APIs, checkout and the order "
        "process, the event store; the event pipeline at a glance.",
        [variable("job", "API", "label_values(http_requests_total, job)"),
         variable("route", "Route", 'label_values(http_requests_total{job=~"$job"}, route)')])

    d.row("At a glance")
    d.add(stat("Requests", "HTTP requests per second, every API and route (job filter applies).",
               f'sum(rate(http_requests_total{{job=~"$job"}}{RATE}))', "reqps",
               steps("blue")), w=4, h=4)
    d.add(stat("Server errors (5xx)",
               "Share of responses with a 5xx status. Alert MercatoHighServerErrorRate above "
               "5% for 5 minutes.",
               f'(sum(rate(http_requests_total{{job=~"$job", status=~"5.."}}{RATE})) or vector(0))'
               f' / sum(rate(http_requests_total{{job=~"$job"}}{RATE}))',
               "percentunit", steps("green", (0.01, "orange"), (0.05, "red"))), w=4, h=4)
    d.add(stat("Latency p99", "99th percentile of request duration, every route.",
               "histogram_quantile(0.99, sum by (le) (rate("
               f'http_request_duration_seconds_bucket{{job=~"$job"}}{RATE})))',
               "s", steps("green", (0.5, "orange"), (1, "red"))), w=4, h=4)
    d.add(stat("Checkouts accepted",
               "Checkout requests answered 2xx per second (POST /v1/carts/{id}/checkout). The "
               "order is then confirmed asynchronously by the order process.",
               f'sum(rate(http_requests_total{{{CHECKOUT_ROUTE}, status=~"2.."}}{RATE})) or vector(0)',
               "reqps", steps("blue")), w=4, h=4)
    d.add(relay_leader_stat(), w=4, h=4)
    d.add(relay_lag_stat(), w=4, h=4)
    d.add(stat("Worst projection lag",
               "The most stale read model: age of the oldest event it has not applied "
               "(projection_lag_seconds). Alert MercatoProjectionLagging above 60 s.",
               "max(projection_lag_seconds)", "s", steps("green", (10, "orange"), (60, "red"))),
          w=4, h=4)
    d.add(stat("Parked events",
               "Events projections could not apply and parked (ADR 0012): "
               "`mercato projections parked`. Alert MercatoProjectionEventParked.",
               "sum(max by (projection) (projection_parked_events)) or vector(0)", "none",
               steps("green", (1, "red")), graph=False), w=4, h=4)
    d.add(stat("Dead letters",
               "Events workers gave up on in the time range (mercato_dead_lettered_total): "
               "`mercato projections dead-letters`. Alerts MercatoEventDeadLettered and "
               "MercatoOrderProcessDeadLetter. A worker's first dead letter since it started "
               "is not counted here (its counter starts at 1).",
               "sum(increase(mercato_dead_lettered_total[$__range])) or vector(0)", "none",
               steps("green", (1, "red")), decimals=0, graph=False), w=4, h=4)
    d.add(stat("Oldest open transaction",
               "Age of the oldest open transaction in PostgreSQL (from the leading relay). "
               "Events committed after it wait until it ends. Alert MercatoLogHeldBack.",
               f"max(mercato_log_oldest_open_transaction_seconds {LEADER})", "s",
               steps("green", (10, "orange"), (30, "red"))), w=4, h=4)
    d.add(stat("Handler panics",
               "Panics caught in the order process, its poller and the notification worker in "
               "the time range (mercato_handler_panics_total); the work is retried.",
               "sum(increase(mercato_handler_panics_total[$__range])) or vector(0)", "none",
               steps("green", (1, "orange")), decimals=0, graph=False), w=4, h=4)
    d.add(stat("Instances up", "Scraped Mercato processes that answer, per job.",
               'sum by (job) (up{job=~"mercato-.+"})', "none", steps("red", (1, "green")),
               legend="{{job}}", graph=False), w=4, h=4)

    d.row("HTTP per API")
    d.add(timeseries("Requests per API", "Requests per second (http_requests_total).",
                     [(f"sum by (job) (rate(http_requests_total{{{HTTP}}}{RATE}))", "{{job}}")],
                     "reqps"))
    d.add(timeseries("Responses by status", "Responses per second by API and status.",
                     [(f"sum by (job, status) (rate(http_requests_total{{{HTTP}}}{RATE}))",
                       "{{job}} {{status}}")],
                     "reqps", overrides=[color_override(".* 5..", "red"),
                                         color_override(".* 4..", "orange")]))
    d.add(timeseries("Server error ratio per API",
                     "Share of responses with a 5xx status. The red line is the alert's 5%. "
                     "On the query API, 503 stale-read means a read waited for a lagging "
                     "projection; 503 store_unavailable means the database pool could not "
                     "give a connection.",
                     [(f'(sum by (job) (rate(http_requests_total{{{HTTP}, status=~"5.."}}{RATE}))'
                       f" or 0 * sum by (job) (rate(http_requests_total{{{HTTP}}}{RATE})))"
                       f" / sum by (job) (rate(http_requests_total{{{HTTP}}}{RATE}))", "{{job}}")],
                     "percentunit", threshold=0.05))
    d.add(timeseries("Latency per API",
                     "Median and 99th percentile of request duration "
                     "(http_request_duration_seconds; buckets from 0.25 ms to 10 s, so 10 s "
                     "means 10 s or more).",
                     [("histogram_quantile(0.5, sum by (job, le) (rate("
                       f"http_request_duration_seconds_bucket{{{HTTP}}}{RATE})))", "{{job}} p50"),
                      ("histogram_quantile(0.99, sum by (job, le) (rate("
                       f"http_request_duration_seconds_bucket{{{HTTP}}}{RATE})))", "{{job}} p99")],
                     "s"))

    d.row("HTTP per route")
    d.add(timeseries("Requests per route", "Requests per second by method and route.",
                     [("sum by (job, method, route) (rate("
                       f"http_requests_total{{{HTTP}}}{RATE}))", "{{method}} {{route}}")],
                     "reqps", legend="table"), w=24, h=10)
    d.add(timeseries("Server errors (5xx) per route", "5xx responses per second.",
                     [("sum by (method, route, status) (rate("
                       f'http_requests_total{{{HTTP}, status=~"5.."}}{RATE}))',
                       "{{method}} {{route}} {{status}}")],
                     "reqps", legend="table"), w=12, h=10)
    d.add(timeseries("Client errors (4xx) per route",
                     "4xx responses per second: 401/403 auth, 409 conflicts, 412 stale "
                     "If-Match, 422 validation, 429 throttled.",
                     [("sum by (method, route, status) (rate("
                       f'http_requests_total{{{HTTP}, status=~"4.."}}{RATE}))',
                       "{{method}} {{route}} {{status}}")],
                     "reqps", legend="table"), w=12, h=10)
    d.add(timeseries("Latency p99 per route", "99th percentile of request duration.",
                     [("histogram_quantile(0.99, sum by (method, route, le) (rate("
                       f"http_request_duration_seconds_bucket{{{HTTP}}}{RATE})))",
                       "{{method}} {{route}}")],
                     "s", legend="table"), w=12, h=10)
    d.add(timeseries("Latency p50 per route", "Median request duration.",
                     [("histogram_quantile(0.5, sum by (method, route, le) (rate("
                       f"http_request_duration_seconds_bucket{{{HTTP}}}{RATE})))",
                       "{{method}} {{route}}")],
                     "s", legend="table"), w=12, h=10)
    d.add(timeseries("Throttled sign-ins and registrations",
                     "Requests refused with 429 by the sign-in and registration limits "
                     "(mercato_throttled_total, ADR 0014). A burst is a credential-stuffing "
                     "attempt or a client in a retry loop.",
                     [(f"sum(rate(mercato_throttled_total{RATE}))", "throttled")], "reqps"))

    d.row("Checkout and order process")
    d.add(timeseries("Checkout requests by status",
                     "POST /v1/carts/{id}/checkout per second by status. 202: accepted, the "
                     "order process takes over; 409/422: the cart cannot be checked out.",
                     [(f"sum by (status) (rate(http_requests_total{{{CHECKOUT_ROUTE}}}{RATE}))",
                       "{{status}}")],
                     "reqps", overrides=[color_override("5..", "red")]))
    d.add(timeseries("Checkout request latency",
                     "Time to answer the checkout request (the order is placed, not yet "
                     "confirmed: stock and payment follow asynchronously).",
                     [("histogram_quantile(0.5, sum by (le) (rate("
                       f"http_request_duration_seconds_bucket{{{CHECKOUT_ROUTE}}}{RATE})))", "p50"),
                      ("histogram_quantile(0.99, sum by (le) (rate("
                       f"http_request_duration_seconds_bucket{{{CHECKOUT_ROUTE}}}{RATE})))", "p99")],
                     "s"))
    d.add(timeseries("Checkout outcomes",
                     "Checkouts that ended, per second, by outcome (confirmed, or cancelled "
                     "with its reason).",
                     [(f"sum by (outcome) (rate(mercato_checkout_outcomes_total{RATE}))",
                       "{{outcome}}")], "ops"))
    d.add(timeseries("Time from order placed to confirmed",
                     "From OrderPlaced to OrderConfirmed, as the order process saw it.",
                     [("histogram_quantile(0.5, sum by (le) (rate("
                       f"mercato_checkout_time_to_confirmed_seconds_bucket{RATE})))", "p50"),
                      ("histogram_quantile(0.99, sum by (le) (rate("
                       f"mercato_checkout_time_to_confirmed_seconds_bucket{RATE})))", "p99")],
                     "s"))
    d.add(timeseries("Order process steps by outcome",
                     "Commands the order process dispatched per second "
                     "(mercato_checkout_commands_total): reserve and release stock, authorize, "
                     "capture, void and refund payments, confirm and cancel orders. appended: "
                     "the command wrote events; no_op: already done (a redelivery); dropped: "
                     "the target refused it in a way the process expects (e.g. the order was "
                     "cancelled meanwhile).",
                     [(f"sum by (outcome) (rate(mercato_checkout_commands_total{RATE}))",
                       "{{outcome}}")],
                     "ops", overrides=[color_override("appended", "green"),
                                       color_override("no_op", "blue"),
                                       color_override("dropped", "orange")]))
    d.add(timeseries("Order process events",
                     "Events the order process consumed per second, those that failed and will "
                     "be retried, and those it gave up on (dead letters: alert "
                     "MercatoOrderProcessDeadLetter).",
                     [("sum(rate(mercato_worker_handled_total{worker=~\".+-checkout\"}"
                       f"{RATE}))", "handled"),
                      ("sum(rate(mercato_worker_failures_total{worker=~\".+-checkout\"}"
                       f"{RATE}))", "failed (retried)"),
                      ("sum(rate(mercato_dead_lettered_total{worker=~\".+-checkout\"}"
                       f"{RATE}))", "dead-lettered")],
                     "ops", overrides=[color_override("failed.*", "orange"),
                                       color_override("dead-lettered", "red")]))
    d.add(timeseries("Recovered checkouts and panics",
                     "Checkouts whose request died after freezing the cart, whose order the "
                     "poller placed (mercato_checkout_recovered_total); panics caught in the "
                     "order process, its poller and the notification worker "
                     "(mercato_handler_panics_total), retried.",
                     [(f"sum(increase(mercato_checkout_recovered_total{RATE}))",
                       "checkouts recovered"),
                      (f"sum by (worker) (increase(mercato_handler_panics_total{RATE}))",
                       "panics: {{worker}}")],
                     "none", bars=True, decimals=0))

    d.row("Event store and database")
    d.add(timeseries("Events appended by aggregate type",
                     "Events written to the events table per second "
                     "(mercato_events_appended_total), by the APIs and the order process.",
                     [("sum by (aggregate_type) (rate(mercato_events_appended_total"
                       f"{RATE}))", "{{aggregate_type}}")],
                     "ops", stack=True))
    d.add(timeseries("Concurrency conflicts retried",
                     "Commands that lost an optimistic-concurrency race on an aggregate and "
                     "were retried (mercato_command_conflict_retries_total). A steady rate "
                     "means hot aggregates (one SKU's stock, one cart).",
                     [("sum by (aggregate_type) (rate(mercato_command_conflict_retries_total"
                       f"{RATE}))", "{{aggregate_type}}")],
                     "ops"))
    d.add(held_back_panel())
    d.add(timeseries("Database pool connections",
                     "Connections of each process's pool, in use and idle, against its size "
                     "(MERCATO_DATABASE_MAX_CONNECTIONS). A pool always full makes requests "
                     "wait, then fail with 503 store_unavailable.",
                     [("sum by (job, instance, state) (mercato_db_pool_connections)",
                       "{{instance}} {{state}}")],
                     "none"))
    d.add(timeseries("Personal data erased",
                     "Data keys destroyed by erasure (mercato_data_keys_shredded_total, ADR "
                     "0013): customers and guest orders erased.",
                     [(f"sum(increase(mercato_data_keys_shredded_total{RATE}))", "keys destroyed")],
                     "none", bars=True, decimals=0))

    d.row("Logs")
    d.add(log_rate("Errors and warnings per part",
                   "Mercato's ERROR and WARN log lines per interval, by part (Loki). The "
                   "lines are below; a line's trace_id opens its trace.",
                   'sum by (part, level) (count_over_time({part=~".+", level=~"ERROR|WARN"} '
                   "[$__interval]))", "{{part}} {{level}}"), w=24, h=6)
    d.add(logs("Error lines", "Mercato's ERROR log lines, newest first (Loki).",
               '{part=~".+", level="ERROR"}'), w=24, h=10)
    return d


def pipeline():
    d = Dashboard(
        "mercato-pipeline", "Mercato / Event pipeline",
        "The relay (events table to JetStream), the event log, the projections and the "
        "workers with their dead letters.",
        [variable("projection", "Projection", "label_values(projection_position, projection)"),
         variable("worker", "Worker", "label_values(mercato_worker_handled_total, worker)")])
    proj = 'projection=~"$projection"'
    work = 'worker=~"$worker"'

    d.row("Relay")
    d.add(relay_leader_stat(), w=4, h=4)
    d.add(relay_lag_stat(), w=4, h=4)
    d.add(stat("Relay lag (events)",
               "Committed events the leading relay has not had acknowledged yet "
               "(mercato_relay_lag_events).",
               f"max(mercato_relay_lag_events {LEADER})", "none",
               steps("green", (1000, "orange"), (100000, "red"))), w=4, h=4)
    d.add(stat("Published", "Events published to JetStream per second.",
               f"sum(rate(mercato_relay_published_total{RATE})) or vector(0)", "ops",
               steps("blue")), w=4, h=4)
    d.add(stat("Publish errors",
               "Failed publishes in the time range (mercato_relay_publish_errors_total); "
               "after one the relay re-syncs with the stream and goes on.",
               "sum(increase(mercato_relay_publish_errors_total[$__range])) or vector(0)",
               "none", steps("green", (1, "orange")), decimals=0, graph=False), w=4, h=4)
    d.add(stat("Relays up", "Relay processes Prometheus reaches (alert MercatoRelayDown at 0).",
               'sum(up{job="mercato-relay"}) or vector(0)', "none",
               steps("red", (1, "orange"), (2, "green")), graph=False), w=4, h=4)
    d.add(state_timeline("Leadership per relay",
                         "Which relay process held the leader lock when "
                         "(mercato_relay_leader: 1 leads, 0 stands by).",
                         "max by (instance) (mercato_relay_leader)", "{{instance}}",
                         value_map((0, "standby", "blue"), (1, "leader", "green"))), w=24, h=5)
    d.add(timeseries("Relay lag",
                     "Age of the oldest committed event not yet acknowledged by JetStream, and "
                     "how many there are (leading relay). The red line is the alert's 30 s.",
                     [(f"max(mercato_relay_lag_seconds {LEADER})", "seconds behind"),
                      (f"max(mercato_relay_lag_events {LEADER})", "events behind")],
                     "s", threshold=30,
                     overrides=[right_axis_override("events behind", "short")]))
    d.add(timeseries("Appended vs published",
                     "Events written to the events table and events the relay published, per "
                     "second. Published below appended for long: the relay falls behind "
                     "(alerts MercatoRelayLagging, MercatoRelayNotPublishing).",
                     [(f"sum(rate(mercato_events_appended_total{RATE}))", "appended"),
                      (f"sum(rate(mercato_relay_published_total{RATE}))", "published")],
                     "ops"))
    d.add(timeseries("Publish latency",
                     "From sending a publish to JetStream's ack "
                     "(mercato_relay_publish_latency_seconds).",
                     [("histogram_quantile(0.5, sum by (le) (rate("
                       f"mercato_relay_publish_latency_seconds_bucket{RATE})))", "p50"),
                      ("histogram_quantile(0.99, sum by (le) (rate("
                       f"mercato_relay_publish_latency_seconds_bucket{RATE})))", "p99")],
                     "s"))
    d.add(timeseries("Commit to ack",
                     "From an event's commit (recorded_at) to JetStream's ack "
                     "(mercato_relay_commit_to_ack_seconds): how long before workers can see "
                     "it. Buckets end at 10 s, so 10 s means 10 s or more.",
                     [("histogram_quantile(0.5, sum by (le) (rate("
                       f"mercato_relay_commit_to_ack_seconds_bucket{RATE})))", "p50"),
                      ("histogram_quantile(0.99, sum by (le) (rate("
                       f"mercato_relay_commit_to_ack_seconds_bucket{RATE})))", "p99")],
                     "s"))
    d.add(timeseries("Publish errors",
                     "Failed publishes (NATS unreachable, a wrong expected sequence); the relay "
                     "backs off and re-syncs with the stream's tail.",
                     [(f"sum(increase(mercato_relay_publish_errors_total{RATE}))", "errors")],
                     "none", bars=True, decimals=0,
                     overrides=[color_override("errors", "red")]))
    d.add(held_back_panel())

    d.row("Projections")
    d.add(table("Projections now",
                "Every read-model projection: lag, events behind, parked events, and the "
                "global position of its checkpoint. Same as `mercato projections status`.",
                [("lag", f"max by (projection) (projection_lag_seconds{{{proj}}})", "s",
                  steps("green", (10, "orange"), (60, "red"))),
                 ("events behind", f"max by (projection) (projection_lag_events{{{proj}}})",
                  "short", None),
                 ("parked", f"max by (projection) (projection_parked_events{{{proj}}})",
                  "none", steps("green", (1, "red"))),
                 ("position", f"max by (projection) (projection_position{{{proj}}})",
                  "none", None)],
                "projection"), w=12, h=8)
    codes = [("live", "live", "green"), ("rebuilding", "rebuilding", "blue"),
             ("failed", "failed", "red"), ("not_started", "not started", "text")]
    d.add(state_timeline("Projection state",
                         "live, rebuilding, failed or not started, as `mercato projections "
                         "status` shows it (projection_state).",
                         "max by (projection) ("
                         + " or ".join(f'(projection_state{{{proj}, state="{s}"}} == 1) * {i}'
                                       for i, (s, _t, _c) in enumerate(codes))
                         + ")", "{{projection}}",
                         value_map(*[(i, t, c) for i, (_s, t, c) in enumerate(codes)])),
          w=12, h=8)
    d.add(timeseries("Lag per projection",
                     "Age of the oldest event each projection has not applied "
                     "(projection_lag_seconds). The red line is the alert's 60 s.",
                     [(f"max by (projection) (projection_lag_seconds{{{proj}}})",
                       "{{projection}}")],
                     "s", threshold=60))
    d.add(timeseries("Events behind per projection",
                     "Events in the log after each projection's checkpoint "
                     "(projection_lag_events).",
                     [(f"max by (projection) (projection_lag_events{{{proj}}})",
                       "{{projection}}")],
                     "short"))
    d.add(timeseries("Checkpoint position",
                     "Global position of each projection's checkpoint (projection_position), "
                     "and of the search index on each query-API replica: a line that stops "
                     "rising while the others rise is stuck.",
                     [(f"max by (projection, instance) (projection_position{{{proj}}})",
                       "{{projection}} {{instance}}")],
                     "none", legend="table"))
    d.add(timeseries("Events applied per projection",
                     "Events each projection worker handled per second "
                     "(mercato_worker_handled_total).",
                     [("sum by (worker) (rate(mercato_worker_handled_total"
                       f'{{worker=~"projection-$projection"}}{RATE}))', "{{worker}}")],
                     "ops"))
    d.add(timeseries("Parked events per projection",
                     "Events parked now (projection_parked_events) and parkings per interval "
                     "(projection_parked_total). `mercato projections parked` lists them.",
                     [(f"max by (projection) (projection_parked_events{{{proj}}})",
                       "{{projection}} parked"),
                      (f"sum by (projection) (increase(projection_parked_total{{{proj}}}{RATE}))",
                       "{{projection}} newly parked")],
                     "none", decimals=0))
    d.add(timeseries("Projection failures",
                     "Batches a projection worker failed to apply and retries "
                     "(mercato_worker_failures_total); alert MercatoProjectionFailing after 10 "
                     "minutes. Search index gaps filled from the log "
                     "(search_gaps_filled_total) are normal after a redelivery.",
                     [("sum by (worker) (rate(mercato_worker_failures_total"
                       f'{{worker=~"projection-$projection"}}{RATE}))', "{{worker}} failed"),
                      (f"sum by (instance) (rate(search_gaps_filled_total{RATE}))",
                       "search gaps filled {{instance}}")],
                     "ops"))

    d.row("Workers and dead letters")
    d.add(timeseries("Events handled per worker",
                     "Events each durable consumer handled per second: projection-<name>, "
                     "<prefix>-checkout (the order process), <prefix>-notifications, "
                     "search-<replica>.",
                     [(f"sum by (worker) (rate(mercato_worker_handled_total{{{work}}}{RATE}))",
                       "{{worker}}")],
                     "ops", legend="table"))
    d.add(timeseries("Failures per worker",
                     "Events a worker failed to handle and will retry (up to 5 deliveries, "
                     "then a dead letter).",
                     [(f"sum by (worker) (rate(mercato_worker_failures_total{{{work}}}{RATE}))",
                       "{{worker}}")],
                     "ops", legend="table"))
    d.add(timeseries("Dead letters per worker",
                     "Events a worker gave up on, moved to the <stream>_DLQ stream "
                     "(mercato_dead_lettered_total): `mercato projections dead-letters "
                     "--worker W`. A projection's are read from the log again with its next "
                     "batch; the order process's and the notification worker's need an "
                     "operator.",
                     [(f"sum by (worker) (increase(mercato_dead_lettered_total{{{work}}}{RATE}))",
                       "{{worker}}")],
                     "none", bars=True, decimals=0))
    d.add(timeseries("Handler panics",
                     "Panics caught in a handler (mercato_handler_panics_total); the work is "
                     "retried and the worker lives on.",
                     [(f"sum by (worker) (increase(mercato_handler_panics_total{RATE}))",
                       "{{worker}}")],
                     "none", bars=True, decimals=0))
    return d


def render(dashboard):
    return json.dumps(dashboard.json(), indent=2, sort_keys=False) + "\n"


def main(argv):
    check = argv[1:] == ["--check"]
    if argv[1:] and not check:
        sys.exit(__doc__)
    stale = []
    for d in (overview(), pipeline()):
        path = OUT / f"{d.uid}.json"
        text = render(d)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(OUT.parent.parent.parent)}")
    if stale:
        sys.exit(f"generate.py: not what deploy/grafana/generate.py writes: {', '.join(stale)} "
                 "(edit generate.py, not the JSON, and run it)")


if __name__ == "__main__":
    main(sys.argv)
