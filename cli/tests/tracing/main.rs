//! One connected trace from a checkout request to the read model (issue #13): the request's
//! span, the append, the relay's hop, the order process's steps and commands, the append of
//! `OrderConfirmed`, and the projections that apply it, all under the trace the client sent.
//!
//! Its own test binary: it installs the process-wide subscriber, with an in-memory exporter,
//! and runs every part of Mercato in this process.

#[path = "../common/guest.rs"]
mod guest;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use mercato_cli::{Application, Cli, Parts};
use mercato_event_store::testing::TestDatabase;
use mercato_nats::testing::TestNats;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::Value;

use crate::guest::Shop;

/// The trace the client starts (W3C trace context of the checkout request).
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_is_one_connected_trace_from_the_request_to_the_read_model() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let logs = Logs::default();
    let writer = logs.clone();
    mercato_telemetry::install(provider, move || writer.clone(), "info");

    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let index = std::env::temp_dir().join(format!("mercato-trace-{}", uuid::Uuid::new_v4()));
    let url = format!(
        "{}/{}",
        mercato_event_store::testing::server_url()
            .rsplit_once('/')
            .map_or("", |(b, _)| b),
        db.name()
    );
    let index_dir = index.to_string_lossy().into_owned();
    let cli = Cli::try_parse_from([
        "mercato",
        "serve",
        "--database-url",
        &url,
        "--database-max-connections",
        "8",
        "--nats-url",
        &nats.config.url,
        "--stream",
        &nats.config.stream,
        "--subject-prefix",
        &nats.config.subject_prefix,
        "--admin-addr",
        "127.0.0.1:0",
        "--command-api-addr",
        "127.0.0.1:0",
        "--query-api-addr",
        "127.0.0.1:0",
        "--storefront-addr",
        "127.0.0.1:0",
        "--index-dir",
        &index_dir,
        "--jwt-secret",
        "trace-test-secret-trace-test-secret",
        "--admin-email",
        "admin@mercato.test",
        "--admin-password",
        "admin-password",
        "--data-key",
        mercato_event_store::testing::TEST_DATA_KEY,
    ])
    .unwrap();
    mercato_event_store::privacy::install(cli.settings.master_keys(true).unwrap()).unwrap();
    mercato_cli::migrate(&cli.settings).await.unwrap();
    let app = Application::build(cli.settings.clone(), Parts::all())
        .await
        .unwrap();
    let command = format!("http://{}", app.command_api_addr.unwrap());
    let query = format!("http://{}", app.query_api_addr.unwrap());
    let stop = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());

    let shop = Shop {
        http: reqwest::Client::new(),
        command,
        query,
    };
    let admin = shop.admin_token().await;
    shop.stock_product(&admin, "TRACE-1", 5).await;
    // The checkout, in the client's trace, until the read model shows it confirmed.
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let placed = shop
        .guest_checkout("TRACE-1", 1, &[("traceparent", traceparent.as_str())])
        .await;
    let order_id = placed.order_id.clone();
    shop.wait_until_confirmed(&placed).await;

    // Spans end (and are exported) a moment after their work: wait for the projection's.
    let trace = TraceId::from_hex(CLIENT_TRACE).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let finished = || -> Vec<SpanData> {
        exporter
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace)
            .collect()
    };
    loop {
        let spans = finished();
        if spans.iter().any(|s| {
            s.name == "consume"
                && attr(s, "event_type") == Some("OrderConfirmed".into())
                && attr(s, "worker").is_some_and(|w| w.starts_with("projection-orders"))
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no projection span of OrderConfirmed in the trace; it has: {:#?}",
            spans.iter().map(describe).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Log lines inside the trace carry its ids (the confirmation email is recorded in it).
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = loop {
        let text = logs.text();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("notification recorded") && l.contains(CLIENT_TRACE))
        {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no log line in the trace");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["trace_id"], CLIENT_TRACE);
    assert_eq!(line["span_id"].as_str().map(str::len), Some(16), "{line}");
    stop.cancel();
    running.await.unwrap().unwrap();
    // The flow goes on after the confirmation (the payment's capture): read the trace once
    // every part has stopped, so that no span is missing because its work was still running.
    let spans = finished();
    let _ = std::fs::remove_dir_all(&index);

    let named = |name: &str, key: &str, value: &str| {
        spans
            .iter()
            .any(|s| s.name == name && attr(s, key).as_deref() == Some(value))
    };
    let all: Vec<String> = spans.iter().map(describe).collect();
    // The request, continuing the client's span.
    let request = spans
        .iter()
        .find(|s| s.name == "http" && attr(s, "uri").is_some_and(|u| u.ends_with("/checkout")))
        .unwrap_or_else(|| panic!("no request span: {all:#?}"));
    assert_eq!(
        request.parent_span_id,
        SpanId::from_hex(CLIENT_SPAN).unwrap()
    );
    // The append of OrderPlaced, the relay's hop, the order process and its commands, the
    // append and relay of OrderConfirmed, and the read models applying it.
    assert!(named("append", "aggregate_type", "Order"), "{all:#?}");
    assert!(
        named("relay_publish", "event_type", "OrderPlaced"),
        "{all:#?}"
    );
    assert!(named("consume", "event_type", "OrderPlaced"), "{all:#?}");
    assert!(spans.iter().any(|s| s.name == "order_process"), "{all:#?}");
    assert!(
        spans.iter().any(|s| s.name == "process_command"),
        "{all:#?}"
    );
    assert!(named("append", "aggregate_type", "Payment"), "{all:#?}");
    assert!(
        named("relay_publish", "event_type", "OrderConfirmed"),
        "{all:#?}"
    );
    // Connected: every span's parent is the client's span or another span of the trace.
    let ids: HashSet<SpanId> = spans.iter().map(|s| s.span_context.span_id()).collect();
    for span in &spans {
        assert!(
            span.parent_span_id == SpanId::from_hex(CLIENT_SPAN).unwrap()
                || ids.contains(&span.parent_span_id),
            "{} has a parent outside the trace: {all:#?}",
            describe(span)
        );
    }
    // The events carry the causes: OrderConfirmed was caused by an event of the flow and
    // correlates to the checkout request.
    let rows: Vec<EventCauses> = sqlx::query_as(
        "SELECT event_type, metadata ->> 'correlation_id', metadata ->> 'causation_id', metadata ->> 'traceparent' \
         FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&order_id)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let placed = rows.iter().find(|r| r.0 == "OrderPlaced").unwrap();
    let confirmed = rows.iter().find(|r| r.0 == "OrderConfirmed").unwrap();
    assert_eq!(confirmed.1, placed.1, "one correlation id for the flow");
    let causes: HashMap<String, String> =
        sqlx::query_as("SELECT event_id::text, event_type FROM events WHERE event_id::text = $1")
            .bind(confirmed.2.as_deref().expect("a causation id"))
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(causes.len(), 1, "the causation id names an event");
    for row in &rows {
        assert!(
            row.3.as_deref().is_some_and(|t| t.contains(CLIENT_TRACE)),
            "{row:?}"
        );
    }
}

/// An event's type, correlation id, causation id and traceparent.
type EventCauses = (String, Option<String>, Option<String>, Option<String>);

/// The log lines, as written.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

fn describe(span: &SpanData) -> String {
    let attrs: Vec<String> = span
        .attributes
        .iter()
        .filter(|kv| {
            !kv.key.as_str().starts_with("code.") && !kv.key.as_str().starts_with("thread.")
        })
        .map(|kv| format!("{}={}", kv.key, kv.value))
        .collect();
    format!(
        "{} [{}] parent {} {}",
        span.name,
        span.span_context.span_id(),
        span.parent_span_id,
        attrs.join(" ")
    )
}
