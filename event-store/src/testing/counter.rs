//! A minimal aggregate for exercising the event store and relay without the domain crate.

use std::sync::Arc;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use tokio::sync::Barrier;

/// Counts; `applied` tells how many events were applied (a double apply shows).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counter {
    /// The sum.
    pub value: i64,
    /// Events applied.
    pub applied: u64,
}

/// Commands of [`Counter`].
#[derive(Debug)]
pub enum CounterCommand {
    /// Adds a non-zero amount.
    Add(i64),
    /// Decides nothing (an idempotent repeat).
    Nothing,
    /// Records a note (an event of any size).
    Note(String),
}

/// Events of [`Counter`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum CounterEvent {
    /// An amount was added.
    Added {
        /// The amount.
        by: i64,
        /// The sum after it.
        total: i64,
    },
    /// A note was recorded.
    Noted {
        /// Its text.
        text: String,
    },
}

impl DomainEvent for CounterEvent {
    fn event_type(&self) -> String {
        match self {
            CounterEvent::Added { .. } => "Added".into(),
            CounterEvent::Noted { .. } => "Noted".into(),
        }
    }
    fn event_version(&self) -> String {
        "1.0".into()
    }
}

/// Errors of [`Counter`].
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CounterError {
    /// Adding zero is refused.
    #[error("cannot add zero")]
    Zero,
}

/// When set, every `handle` waits on the barrier after deciding: two commands that loaded the
/// same version both reach commit, so exactly one of them must lose the race.
#[derive(Clone, Default)]
pub struct CounterServices {
    /// The barrier, if any.
    pub barrier: Option<Arc<Barrier>>,
}

impl Aggregate for Counter {
    const TYPE: &'static str = "Counter";
    type Command = CounterCommand;
    type Event = CounterEvent;
    type Error = CounterError;
    type Services = CounterServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let by = match command {
            CounterCommand::Nothing => return Ok(()),
            CounterCommand::Note(text) => {
                sink.write(CounterEvent::Noted { text }, self).await;
                return Ok(());
            }
            CounterCommand::Add(0) => return Err(CounterError::Zero),
            CounterCommand::Add(by) => by,
        };
        let total = self.value + by;
        sink.write(CounterEvent::Added { by, total }, self).await;
        if let Some(barrier) = &services.barrier {
            barrier.wait().await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            CounterEvent::Added { by, .. } => {
                self.value += by;
                self.applied += 1;
            }
            CounterEvent::Noted { .. } => self.applied += 1,
        }
    }
}
