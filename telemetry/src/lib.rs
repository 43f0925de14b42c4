//! Telemetry shared by Mercato's binaries: JSON logs, OpenTelemetry traces, Prometheus
//! metrics and the admin router.
#![forbid(unsafe_code)]

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub mod traces;

pub use traces::{continue_trace, traceparent};

/// Latency buckets (seconds) for every `*_seconds` histogram: 0.25 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Where the JSON log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard output (services).
    Stdout,
    /// Standard error: for commands whose stdout is data (`events export`).
    Stderr,
}

/// Installs JSON logging (level from `RUST_LOG`, default `info`; every line inside a span
/// carries its `trace_id` and `span_id`) and tracing for `service`: spans are exported over
/// OTLP/HTTP to `otlp_endpoint` when one is given (`http://collector:4318`), and otherwise
/// still carry trace ids into logs and event metadata. Calling it again is harmless (tests
/// start several applications in one process). Call [`shutdown`] before exiting.
pub fn init(service: &str, logs: LogTarget, otlp_endpoint: Option<&str>) -> Result<(), Error> {
    init_at(service, logs, otlp_endpoint, "info")
}

/// Like [`init`], with `default_level` when `RUST_LOG` is not set (a benchmark logs only
/// warnings).
pub fn init_at(
    service: &str,
    logs: LogTarget,
    otlp_endpoint: Option<&str>,
    default_level: &str,
) -> Result<(), Error> {
    let provider = traces::tracer_provider(service, otlp_endpoint)?;
    match logs {
        LogTarget::Stdout => install(provider, std::io::stdout, default_level),
        LogTarget::Stderr => install(provider, std::io::stderr, default_level),
    }
    tracing::debug!(
        service,
        otlp = otlp_endpoint.is_some(),
        "telemetry initialised"
    );
    Ok(())
}

/// Installs the subscriber: the filter (`RUST_LOG`, else `default_level`), JSON logs with
/// trace ids, and the OpenTelemetry layer over `provider`.
pub fn install<W>(provider: SdkTracerProvider, writer: W, default_level: &str)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let tracer = provider.tracer("mercato");
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(traces::WithTraceIds(
                    tracing_subscriber::fmt::format()
                        .json()
                        .flatten_event(true)
                        .with_current_span(true)
                        .with_target(true),
                ))
                .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .with_writer(writer),
        )
        .try_init()
        .is_ok();
    if installed {
        traces::keep(provider);
    }
}

/// Flushes and stops the span exporter (spans still buffered are sent).
pub fn shutdown() {
    traces::shutdown();
}

/// Telemetry that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The OTLP exporter could not be built (a malformed endpoint).
    #[error("cannot export traces to {endpoint}: {reason}")]
    Otlp {
        /// The configured endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
}

/// The process-wide Prometheus recorder (installed on first use, with histogram buckets and
/// a periodic upkeep task when a Tokio runtime is running).
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let upkeep = handle.clone();
                rt.spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(5));
                    loop {
                        tick.tick().await;
                        upkeep.run_upkeep();
                    }
                });
            }
            handle
        })
        .clone()
}

/// The admin router: `GET /metrics` (Prometheus text format) and `GET /healthz`.
pub fn admin_router() -> Router {
    let handle = metrics();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = handle.render();
                async move { ([(CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response() }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
}

/// Middleware of every HTTP server of Mercato (the APIs, the storefront): counts requests
/// (`http_requests_total{method, route, status}`) and times them
/// (`http_request_duration_seconds{method, route}`), labelled by route template so a label
/// never holds an id.
pub async fn record_http(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
