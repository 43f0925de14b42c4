//! OpenTelemetry traces: the tracer provider (an OTLP exporter when configured), W3C
//! `traceparent` in and out of spans, and trace ids in the JSON logs.
//!
//! A request's trace follows its events: the command API stores the `traceparent` of the
//! append in each event's metadata, the relay carries it as a NATS header, and every consumer
//! continues the trace from it (docs/adr/0015-tracing.md).

use std::sync::Mutex;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::Error;

/// The provider behind the installed subscriber, kept to flush it on [`shutdown`].
static PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);

/// A tracer provider for `service`: with a batch OTLP/HTTP exporter to `otlp_endpoint`
/// (`/v1/traces` is appended unless given), or with no exporter at all (spans still get
/// trace ids, for the logs and the events' metadata).
pub fn tracer_provider(
    service: &str,
    otlp_endpoint: Option<&str>,
) -> Result<SdkTracerProvider, Error> {
    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let Some(endpoint) = otlp_endpoint else {
        return Ok(builder.build());
    };
    let url = if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url.clone())
        .build()
        .map_err(|e| Error::Otlp {
            endpoint: url,
            reason: e.to_string(),
        })?;
    Ok(builder.with_batch_exporter(exporter).build())
}

/// Keeps `provider` for [`shutdown`].
pub(crate) fn keep(provider: SdkTracerProvider) {
    if let Ok(mut kept) = PROVIDER.lock() {
        *kept = Some(provider);
    }
}

/// Flushes and stops the kept provider.
pub(crate) fn shutdown() {
    let provider = PROVIDER.lock().ok().and_then(|mut p| p.take());
    if let Some(provider) = provider {
        if let Err(e) = provider.shutdown() {
            tracing::warn!(error = %e, "traces were not all exported");
        }
    }
}

/// The W3C `traceparent` of the current span, when it belongs to a trace.
pub fn traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// Makes `span` a child of the span a W3C `traceparent` names (nothing happens when there is
/// none or it is malformed: the span then starts a trace of its own).
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(value) = traceparent else {
        return;
    };
    let cx = TraceContextPropagator::new().extract(&Traceparent(value));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// One `traceparent` value, as a propagator reads it.
struct Traceparent<'a>(&'a str);

impl Extractor for Traceparent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// A JSON event format that adds the current span's `trace_id` and `span_id` to each line.
pub(crate) struct WithTraceIds<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let ids = ctx.lookup_current().and_then(|span| {
            let cx = tracing::dispatcher::get_default(|dispatch| {
                tracing_opentelemetry::get_otel_context(&span.id(), dispatch)
            })?;
            let otel = cx.span();
            let sc = otel.span_context();
            sc.is_valid()
                .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
        });
        let Some((trace_id, span_id)) = ids else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        // The JSON format writes one object per line: the ids become its first members.
        match line.strip_prefix('{') {
            Some(rest) => write!(
                writer,
                "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{rest}"
            ),
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn a_traceparent_is_continued_and_written_back() {
        let provider = tracer_provider("test", None).unwrap();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(
                opentelemetry::trace::TracerProvider::tracer(&provider, "test"),
            ));
        tracing::subscriber::with_default(subscriber, || {
            let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let span = tracing::info_span!("child");
            continue_trace(&span, Some(incoming));
            let outgoing = span.in_scope(|| traceparent().unwrap());
            assert!(outgoing.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
            assert!(
                !outgoing.contains("00f067aa0ba902b7"),
                "a new span id: {outgoing}"
            );
            assert!(outgoing.ends_with("-01"));

            // A malformed value starts a trace of its own.
            let orphan = tracing::info_span!("orphan");
            continue_trace(&orphan, Some("not a traceparent"));
            let own = orphan.in_scope(|| traceparent().unwrap());
            assert!(!own.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "{own}");
        });
    }
}
