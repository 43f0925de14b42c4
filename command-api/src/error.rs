//! The one place where domain and infrastructure errors become HTTP problems.

use std::fmt::Display;

use axum::http::StatusCode;
use mercato_aggregates::{ErrorCode, ErrorKind, ValueError};
use mercato_event_store::privacy::PrivacyError;
use mercato_event_store::EventStoreError;
use mercato_web::{FieldError, Problem};

/// A refusal: the status follows from what kind of refusal it is, in this one `match`; the
/// `code` is the domain's (or the API's own, for rules it checks itself).
pub(crate) fn refusal(kind: ErrorKind, code: &'static str, detail: impl Display) -> Problem {
    let (status, title) = match kind {
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "Not found"),
        ErrorKind::Conflict => (StatusCode::CONFLICT, "Conflict"),
        ErrorKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "Business rule violated"),
        ErrorKind::Unavailable => return Problem::unavailable(code, detail, 1),
    };
    Problem::new(status, code, title).detail(detail)
}

/// A rule violation of an aggregate.
pub(crate) fn domain_problem<E: ErrorCode + Display>(error: &E) -> Problem {
    refusal(error.kind(), error.code(), error)
}

/// Maps an event store failure; the internals of 5xx causes are logged, never sent.
pub(crate) fn store_problem<E>(err: EventStoreError<E>) -> Problem
where
    E: std::error::Error + ErrorCode,
{
    match err {
        EventStoreError::Domain(e) => domain_problem(&e),
        EventStoreError::Conflict {
            actual_version: Some(current),
            expected_version,
            ..
        } => Problem::conflict(
            "version_conflict",
            format!("the resource is at version {current}, not {expected_version}"),
        )
        .with("current_version", current),
        EventStoreError::Conflict { .. } => Problem::conflict(
            "concurrent_modification",
            "the resource kept changing concurrently; retry",
        ),
        EventStoreError::InvalidAggregateId { reason } => Problem::validation([FieldError::new(
            "id",
            "invalid_id",
            format!("invalid id: {reason}"),
        )]),
        EventStoreError::EventTooLarge { .. } => {
            Problem::unprocessable("too_large", "the change is too large to record")
        }
        EventStoreError::Erased { .. } => erased_problem(),
        EventStoreError::Unavailable(e) => {
            tracing::warn!(error = %e, "event store unavailable");
            Problem::unavailable("store_unavailable", "the event store is unavailable", 1)
        }
        other => Problem::internal(format!("{other}: {:?}", std::error::Error::source(&other))),
    }
}

/// Personal data that could not be sealed or revealed.
pub(crate) fn privacy_problem(err: PrivacyError) -> Problem {
    match err {
        PrivacyError::Erased(_) => erased_problem(),
        PrivacyError::Database(e) => db_problem(e),
        other => Problem::internal(other),
    }
}

/// A write of personal data of an erased subject.
fn erased_problem() -> Problem {
    Problem::conflict(
        "personal_data_erased",
        "this customer's or order's personal data was erased; nothing new can be recorded for it",
    )
}

/// A pending checkout that could not be recorded.
pub(crate) fn pending_problem(err: crate::pending::PendingError) -> Problem {
    use crate::pending::PendingError as E;
    match err {
        E::Database(e) => db_problem(e),
        E::Privacy(e) => privacy_problem(e),
        E::Encode(e) => Problem::internal(e),
    }
}

/// A database failure outside the event store.
pub(crate) fn db_problem(err: sqlx::Error) -> Problem {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            tracing::warn!(error = %err, "database unavailable");
            Problem::unavailable("store_unavailable", "the database is unavailable", 1)
        }
        other => Problem::internal(other),
    }
}

/// Collects value errors of a request, each naming its field.
#[derive(Default)]
pub(crate) struct Fields(Vec<FieldError>);

impl Fields {
    /// Keeps the value, or records the error against `field`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, ValueError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(FieldError::new(field, e.code(), e.to_string()));
                None
            }
        }
    }

    /// Records an error of `field` directly.
    pub fn push(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, code, message));
    }

    /// 422 naming every bad field, if there is one.
    pub fn finish(self) -> Result<(), Problem> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Problem::validation(self.0))
        }
    }
}
