//! Telemetry shared by Mercato's binaries: JSON logs, Prometheus metrics and the admin router.
#![forbid(unsafe_code)]

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Latency buckets (seconds) for every `*_seconds` histogram: 0.25 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs JSON logging to stdout for `service` (level from `RUST_LOG`, default `info`).
/// Calling it again is harmless (tests start several applications in one process).
pub fn init(service: &'static str) {
    init_with(service, std::io::stdout);
}

/// Like [`init`], but logs to stderr: for commands whose stdout is data (`events export`).
pub fn init_stderr(service: &'static str) {
    init_with(service, std::io::stderr);
}

fn init_with<W>(service: &'static str, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_target(true)
                .with_writer(writer),
        )
        .try_init();
    tracing::debug!(service, "telemetry initialised");
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
