//! Keeps a panicking handler from ending its worker.
//!
//! A panic inside an order process or notification handler (a bug, a misbehaving gateway) would unwind
//! through the consumer runtime and end the worker without a word. Instead it is caught per
//! batch, logged, counted and reported as a handler error, so the runtime retries the batch
//! and dead-letters it after its delivery limit, like any other failure.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use mercato_nats::HandlerError;

/// A handler (or poll) that panicked.
#[derive(Debug, thiserror::Error)]
#[error("{worker} handler panicked: {message}")]
pub(crate) struct HandlerPanicked {
    worker: &'static str,
    message: String,
}

/// Runs `work`, turning a panic into a [`HandlerPanicked`] error.
pub(crate) async fn guarded<F>(worker: &'static str, work: F) -> Result<(), HandlerError>
where
    F: Future<Output = Result<(), HandlerError>>,
{
    // Unwind safety: a panicking attempt leaves nothing half-done that the retry trusts; every
    // step re-reads its state from PostgreSQL (transactions roll back when dropped).
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            tracing::error!(worker, panic = %message, "handler panicked; the work will be retried");
            metrics::counter!("mercato_handler_panics_total", "worker" => worker).increment(1);
            Err(Box::new(HandlerPanicked { worker, message }))
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        return (*s).to_owned();
    }
    if let Some(s) = payload.downcast_ref::<String>() {
        return s.clone();
    }
    "a panic without a message".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error_and_a_result_passes_through() {
        let err = guarded("test", async { panic!("boom") }).await.unwrap_err();
        assert_eq!(err.to_string(), "test handler panicked: boom");
        assert!(guarded("test", async { Ok(()) }).await.is_ok());
        let failed = guarded("test", async { Err("no".into()) })
            .await
            .unwrap_err();
        assert_eq!(failed.to_string(), "no");
    }
}
