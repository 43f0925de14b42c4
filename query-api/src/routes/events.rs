//! Back office: the PostgreSQL event log as NDJSON, for tools that pull over HTTP.
//!
//! One JSON object per line, the JSON form of `RecordedEvent` (what `mercato events tail`
//! prints), in log order, streamed page by page from the gap-safe `LogReader` so a large
//! export never sits in memory. Personal data is withheld unless asked for
//! (`include_personal_data=true`), and an erased subject's is gone either way (ADR 0013).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use mercato_event_store::{LogFilter, LogReader, PersonalData, Position};
use mercato_web::{Caller, Problem, Query};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;

/// Events read from the log per page.
const PAGE: usize = 1_000;

/// Which events to stream.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsParams {
    /// Only events after this position token (`<tx_id>.<global_position>`; default: the start).
    after: Option<String>,
    /// Only these event types (comma-separated, e.g. `OrderPlaced,OrderConfirmed`).
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Only this aggregate type.
    aggregate_type: Option<String>,
    /// Only this aggregate id.
    aggregate_id: Option<String>,
    /// At most this many events (1 to 1,000,000; default: every readable event).
    #[param(minimum = 1, maximum = 1_000_000)]
    limit: Option<u64>,
    /// Include personal data in the clear (default `false`: every personal value reads
    /// `{"$subject": ..., "$redacted": true}`). An erased subject's values are `$erased`.
    include_personal_data: Option<bool>,
}

/// The most events one request may ask for (`limit`).
const MAX_LIMIT: u64 = 1_000_000;

/// The event log after a position, as NDJSON (`application/x-ndjson`), in log order.
#[utoipa::path(get, path = "/v1/admin/events", tag = "admin", params(EventsParams), security(("bearer" = [])),
    responses((status = 200, description = "One JSON event per line", content_type = "application/x-ndjson"),
        (status = 400), (status = 401), (status = 403)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<EventsParams>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let after = match params.after.as_deref() {
        None => Position::START,
        Some(token) => token
            .parse()
            .map_err(|e| Problem::bad_request("invalid_position", e))?,
    };
    if params.limit.is_some_and(|l| !(1..=MAX_LIMIT).contains(&l)) {
        return Err(Problem::bad_request(
            "invalid_limit",
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    let personal = if params.include_personal_data == Some(true) {
        PersonalData::Revealed
    } else {
        PersonalData::Redacted
    };
    let filter = LogFilter {
        aggregate_type: params.aggregate_type,
        aggregate_id: params.aggregate_id,
        event_types: params
            .event_type
            .iter()
            .flat_map(|t| t.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        ..LogFilter::default()
    };
    let page = Page {
        reader: LogReader::new(state.pool.clone()).with_personal_data(personal),
        filter,
        after,
        left: params.limit.unwrap_or(u64::MAX),
    };
    let stream = futures::stream::try_unfold(page, next_page);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

struct Page {
    reader: LogReader,
    filter: LogFilter,
    after: Position,
    left: u64,
}

/// The next page as NDJSON bytes; `None` at the end of the log (or of `limit`). An error
/// here aborts the response (its status is sent already), which a client sees as a
/// truncated body.
async fn next_page(mut page: Page) -> Result<Option<(Bytes, Page)>, std::io::Error> {
    if page.left == 0 {
        return Ok(None);
    }
    let limit = usize::try_from(page.left.min(PAGE as u64)).unwrap_or(PAGE);
    let events = page
        .reader
        .read(page.after, &page.filter, limit)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read the event log for an export");
            std::io::Error::other(e)
        })?;
    let Some(last) = events.last() else {
        return Ok(None);
    };
    page.after = last.position;
    page.left -= events.len() as u64;
    let mut out = Vec::with_capacity(events.len() * 512);
    for event in &events {
        serde_json::to_writer(&mut out, event).map_err(std::io::Error::other)?;
        out.push(b'\n');
    }
    Ok(Some((Bytes::from(out), page)))
}
