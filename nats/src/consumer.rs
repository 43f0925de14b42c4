//! The consumer runtime every worker (projections, the order process, notifications) runs on.
//!
//! A durable pull consumer per worker name. Messages are handed to the [`Handler`] in batches
//! and acknowledged only after it returns `Ok` (after it committed). When a batch fails, its
//! messages are retried one by one to isolate the bad one: a message that fails is negatively
//! acknowledged with a delay, and until it succeeds (or is dead-lettered) every later message
//! of the same aggregate is negatively acknowledged too, in this batch and the following ones,
//! so one aggregate's events are not applied out of order while this worker runs. After
//! `max_deliver` failed deliveries a message is published with its error to the dead-letter
//! stream and acknowledged, so one bad event never blocks the rest. (The blocks live in the
//! worker and expire after `ack_wait`; across a restart, or with several replicas on one
//! durable consumer, handlers still check each aggregate's sequence themselves.)
//!
//! The server-side `max_deliver` of the consumer is left unlimited on purpose: when the server
//! reaches that limit it silently stops delivering, which would skip the message without
//! dead-lettering it. The limit is enforced here instead.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, AckKind, Message};
use futures::{FutureExt, StreamExt};
use mercato_event_store::RecordedEvent;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::config::NatsConfig;
use crate::error::NatsError;
use crate::headers;

/// What a handler returns when it could not apply a batch.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Applies events. Must be idempotent: a message is redelivered if the worker dies before
/// its ack reaches the server.
#[async_trait::async_trait]
pub trait Handler: Send + Sync {
    /// Applies `batch` (in stream order) and commits, or fails without a partial effect.
    async fn handle(&self, batch: &[Delivery]) -> Result<(), HandlerError>;
}

/// One delivered event.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event as it stands in the log.
    pub event: RecordedEvent,
    /// Its sequence in the events stream.
    pub stream_sequence: u64,
    /// How many times it has been delivered to this worker (1 the first time).
    pub delivered: i64,
    /// This worker's handling of the event, in the event's trace (it continues the relay's
    /// `traceparent` header, or the event's own): a handler that works per event runs its
    /// work in a child of it.
    pub span: tracing::Span,
}

/// How a worker consumes.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The durable consumer's name: one per worker (and per replica where each keeps its own state).
    pub durable_name: String,
    /// Which events (defaults to all: `<prefix>.events.>`).
    pub filter_subject: Option<String>,
    /// How long the server waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// Failed deliveries after which a message is dead-lettered.
    pub max_deliver: i64,
    /// Messages per batch.
    pub batch_size: usize,
    /// How long one pull request stays open on the server before the worker renews it
    /// (messages are handed over as they arrive, whatever this is).
    pub pull_expires: Duration,
    /// Delay before a failed message is redelivered.
    pub retry_delay: Duration,
    /// Unacknowledged messages the server hands out at once.
    pub max_ack_pending: i64,
}

impl ConsumerConfig {
    /// Defaults for a worker called `durable_name`.
    pub fn new(durable_name: impl Into<String>) -> Self {
        Self {
            durable_name: durable_name.into(),
            filter_subject: None,
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            batch_size: 256,
            pull_expires: Duration::from_secs(30),
            retry_delay: Duration::from_secs(1),
            max_ack_pending: 4096,
        }
    }
}

/// A worker bound to its durable consumer.
pub struct Worker {
    client: async_nats::Client,
    js: jetstream::Context,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    config: ConsumerConfig,
    dlq_subject: String,
    /// Aggregates whose event (at this stream sequence) failed and awaits redelivery, with
    /// when it failed; their later events wait. Entries expire after `ack_wait`: with several
    /// replicas on one durable consumer, the failing event may be redelivered elsewhere.
    blocked: HashMap<(String, String), (u64, Instant)>,
}

impl Worker {
    /// Creates the durable consumer if needed and binds to it.
    pub async fn bind(
        client: async_nats::Client,
        js: jetstream::Context,
        nats: &NatsConfig,
        config: ConsumerConfig,
    ) -> Result<Self, NatsError> {
        let stream = js
            .get_stream(&nats.stream)
            .await
            .map_err(|e| NatsError::js("stream lookup", e))?;
        let consumer = stream
            .get_or_create_consumer(
                &config.durable_name,
                pull::Config {
                    durable_name: Some(config.durable_name.clone()),
                    description: Some(format!("mercato worker {}", config.durable_name)),
                    filter_subject: config
                        .filter_subject
                        .clone()
                        .unwrap_or_else(|| nats.events_wildcard()),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: config.ack_wait,
                    max_deliver: -1,
                    max_ack_pending: config.max_ack_pending,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| NatsError::js("consumer create", e))?;
        Ok(Self {
            client,
            js,
            consumer,
            dlq_subject: nats.dlq_subject(&config.durable_name),
            config,
            blocked: HashMap::new(),
        })
    }

    /// Pulls and handles until `shutdown`; then finishes and acknowledges the batch in hand
    /// and hands back (negatively acknowledges) what it received but did not handle.
    ///
    /// One long-lived pull request stream: messages are handed over as soon as they arrive
    /// (the server pushes them against the open request), and a batch is whatever has arrived
    /// while the previous one was handled, up to `batch_size`. So an idle worker reacts to a
    /// new event in about a round trip, and a busy one still works in large batches.
    pub async fn run<H: Handler>(
        mut self,
        handler: &H,
        shutdown: CancellationToken,
    ) -> Result<(), NatsError> {
        let worker = self.config.durable_name.clone();
        tracing::info!(worker = %worker, "worker started");
        // The counters exist from the start, so that a first failure is an increase.
        for counter in [
            "mercato_worker_handled_total",
            "mercato_worker_failures_total",
            "mercato_dead_lettered_total",
        ] {
            metrics::counter!(counter, "worker" => worker.clone()).increment(0);
        }
        let mut stream = None;
        while !shutdown.is_cancelled() {
            let messages = match stream.as_mut() {
                None => match self.open_stream().await {
                    Ok(s) => {
                        stream = Some(s);
                        continue;
                    }
                    Err(e) => Err(e),
                },
                Some(s) => tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    batch = next_batch(s, self.config.batch_size) => batch,
                },
            };
            let messages = match messages {
                Ok(m) => m,
                Err(e) => {
                    // Start over with a fresh pull stream (the server may have restarted or
                    // the consumer been recreated); unacknowledged messages come back.
                    tracing::warn!(worker = %worker, error = %e, "pull failed; retrying");
                    stream = None;
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(self.config.retry_delay) => continue,
                    }
                }
            };
            if messages.is_empty() {
                continue;
            }
            self.process(handler, messages).await;
        }
        // Hand back what was received but not handled, so the next puller of this durable
        // consumer (another replica, or this worker restarted) gets it at once, not after
        // `ack_wait`. First close the pull stream (its subscription ends, so the server stops
        // sending to it), then refuse what it had buffered: refused while the stream was open,
        // the server would only send it back to us. (A message that was on the wire as the
        // stream closed comes back after `ack_wait`, like any unacknowledged message.)
        if let Some(mut stream) = stream {
            let mut buffered = Vec::new();
            while let Some(Some(Ok(m))) = stream.next().now_or_never() {
                buffered.push(m);
            }
            drop(stream);
            let _ = self.client.flush().await;
            let handed_back = buffered.len();
            for m in &buffered {
                ack(m, AckKind::Nak(None)).await;
            }
            if handed_back > 0 {
                tracing::info!(worker = %worker, handed_back, "unhandled messages handed back");
            }
        }
        // Make sure the acks of the last batch have left before we go.
        let _ = self.client.flush().await;
        tracing::info!(worker = %worker, "worker stopped");
        Ok(())
    }

    async fn open_stream(&self) -> Result<pull::Stream, NatsError> {
        self.consumer
            .stream()
            .max_messages_per_batch(self.config.batch_size)
            .expires(self.config.pull_expires)
            .heartbeat(self.config.pull_expires / 4)
            .messages()
            .await
            .map_err(|e| NatsError::js("pull", e))
    }

    async fn process<H: Handler>(&mut self, handler: &H, messages: Vec<Message>) {
        let worker = self.config.durable_name.clone();
        let block_ttl = self.config.ack_wait.max(self.config.retry_delay * 4);
        self.blocked
            .retain(|_, (_, since)| since.elapsed() < block_ttl);

        let mut ready: Vec<(Message, Delivery)> = Vec::with_capacity(messages.len());
        for message in messages {
            match decode(&message, &worker) {
                // An earlier event of this aggregate is still failing: keep the aggregate's order.
                Ok(d) if self.waits_for_earlier(&d) => {
                    ack(&message, AckKind::Nak(Some(self.config.retry_delay))).await;
                }
                Ok(d) => ready.push((message, d)),
                // Undecodable now means undecodable forever: no point retrying.
                Err(reason) => self.dead_letter(&message, &reason, 0).await,
            }
        }
        if ready.is_empty() {
            return;
        }
        if ready.len() > 1 {
            let deliveries: Vec<Delivery> = ready.iter().map(|(_, d)| d.clone()).collect();
            // One batch serves many traces: each event's `consume` span stays open while the
            // batch is handled, and the batch's own work is linked to none of them.
            let batch =
                tracing::info_span!("consume_batch", worker = %worker, events = deliveries.len());
            match handler.handle(&deliveries).instrument(batch).await {
                Ok(()) => {
                    for (m, d) in &ready {
                        ack(m, AckKind::Ack).await;
                        self.unblock(d);
                    }
                    metrics::counter!("mercato_worker_handled_total", "worker" => worker.clone())
                        .increment(ready.len() as u64);
                    return;
                }
                Err(e) => {
                    tracing::info!(worker = %worker, error = %e, "batch failed; retrying its messages one by one");
                }
            }
        }

        // One by one, to isolate the failing message(s).
        let mut last_progress = Instant::now();
        for i in 0..ready.len() {
            if last_progress.elapsed() >= self.config.ack_wait / 3 {
                // Still working: keep the server from redelivering what is waiting its turn.
                for (m, _) in &ready[i..] {
                    ack(m, AckKind::Progress).await;
                }
                last_progress = Instant::now();
            }
            let (message, delivery) = &ready[i];
            if self.waits_for_earlier(delivery) {
                ack(message, AckKind::Nak(Some(self.config.retry_delay))).await;
                continue;
            }
            match handler
                .handle(std::slice::from_ref(delivery))
                .instrument(delivery.span.clone())
                .await
            {
                Ok(()) => {
                    ack(message, AckKind::Ack).await;
                    self.unblock(delivery);
                    metrics::counter!("mercato_worker_handled_total", "worker" => worker.clone())
                        .increment(1);
                }
                Err(e) => {
                    metrics::counter!("mercato_worker_failures_total", "worker" => worker.clone())
                        .increment(1);
                    if delivery.delivered >= self.config.max_deliver {
                        self.dead_letter(message, &e.to_string(), delivery.delivered)
                            .await;
                        self.unblock(delivery);
                    } else {
                        tracing::warn!(worker = %worker, event_id = %delivery.event.event_id,
                            delivered = delivery.delivered, error = %e, "handler failed; will retry");
                        self.blocked
                            .entry(aggregate_key(delivery))
                            .or_insert((delivery.stream_sequence, Instant::now()));
                        ack(message, AckKind::Nak(Some(self.config.retry_delay))).await;
                    }
                }
            }
        }
    }

    /// Whether an earlier event of this delivery's aggregate failed and has not been handled yet.
    fn waits_for_earlier(&self, delivery: &Delivery) -> bool {
        matches!(
            self.blocked.get(&aggregate_key(delivery)),
            Some((blocker, _)) if delivery.stream_sequence > *blocker
        )
    }

    /// Lifts the block this delivery held, if it was the blocking one.
    fn unblock(&mut self, delivery: &Delivery) {
        let key = aggregate_key(delivery);
        if matches!(self.blocked.get(&key), Some((blocker, _)) if *blocker == delivery.stream_sequence)
        {
            self.blocked.remove(&key);
        }
    }

    /// Publishes the message with its error to the dead-letter stream, then acknowledges it.
    /// If the dead-letter publish fails, the message is left unacknowledged and comes back.
    async fn dead_letter(&self, message: &Message, error: &str, delivered: i64) {
        let worker = &self.config.durable_name;
        // Keep Mercato's own headers; the relay's Nats-Expected-* headers would make JetStream
        // refuse the publish to the dead-letter stream.
        let mut headers = async_nats::HeaderMap::new();
        if let Some(original) = &message.headers {
            for (name, values) in original.iter() {
                let name_str: &str = name.as_ref();
                if name_str.starts_with("Nats-") {
                    continue;
                }
                for v in values {
                    headers.append(name.clone(), v.clone());
                }
            }
        }
        let stream_sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        let original_id = message
            .headers
            .as_ref()
            .and_then(|h| headers::get(h, async_nats::header::NATS_MESSAGE_ID.as_ref()));
        let msg_id = original_id
            .map(|id| format!("{worker}:{id}"))
            .unwrap_or_else(|| format!("{worker}:seq:{stream_sequence}"));
        let error: String = error.chars().take(2000).collect();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id.as_str());
        headers.insert(
            headers::DLQ_ERROR,
            error.replace(['\r', '\n'], " ").as_str(),
        );
        headers.insert(headers::DLQ_WORKER, worker.as_str());
        headers.insert(
            headers::DLQ_STREAM_SEQUENCE,
            stream_sequence.to_string().as_str(),
        );
        headers.insert(headers::DLQ_DELIVERIES, delivered.to_string().as_str());
        let published = async {
            self.js
                .send_publish(
                    self.dlq_subject.clone(),
                    PublishMessage::build()
                        .payload(message.payload.clone())
                        .headers(headers),
                )
                .await?
                .await
        }
        .await;
        match published {
            Ok(_) => {
                tracing::error!(worker = %worker, stream_sequence, error = %error, "event dead-lettered");
                metrics::counter!("mercato_dead_lettered_total", "worker" => worker.clone())
                    .increment(1);
                ack(message, AckKind::Ack).await;
            }
            Err(e) => {
                tracing::warn!(worker = %worker, error = %e, "dead-letter publish failed; the message will be redelivered");
            }
        }
    }
}

/// Waits for the next message, then takes every message that has already arrived, up to
/// `max`, without waiting for more.
async fn next_batch(stream: &mut pull::Stream, max: usize) -> Result<Vec<Message>, NatsError> {
    let first = match stream.next().await {
        Some(Ok(m)) => m,
        Some(Err(e)) => return Err(NatsError::js("pull", e)),
        None => return Err(NatsError::js("pull", "the pull stream ended")),
    };
    let mut messages = vec![first];
    // Outside tokio's cooperative budget: within it, once the task's budget (128 operations
    // per poll) is spent, the subscription's channel reports "nothing yet" however much has
    // arrived, and every batch was cut at 55-72 messages while thousands waited.
    tokio::task::unconstrained(async {
        while messages.len() < max {
            match stream.next().now_or_never() {
                Some(Some(Ok(m))) => messages.push(m),
                // Nothing more has arrived yet. (An error here is dropped: the stream recovers
                // from a transient one, and one that ends it shows as `None` on the next call.)
                _ => break,
            }
        }
    })
    .await;
    Ok(messages)
}

fn aggregate_key(delivery: &Delivery) -> (String, String) {
    (
        delivery.event.aggregate_type.clone(),
        delivery.event.aggregate_id.clone(),
    )
}

fn decode(message: &Message, worker: &str) -> Result<Delivery, String> {
    let info = message
        .info()
        .map_err(|e| format!("not a jetstream message: {e}"))?;
    let event: RecordedEvent = serde_json::from_slice(&message.payload)
        .map_err(|e| format!("payload is not a mercato event: {e}"))?;
    let span = tracing::info_span!("consume", worker, event_type = %event.event_type, event_id = %event.event_id);
    let traceparent = message
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::TRACEPARENT))
        .map(|v| v.as_str())
        .or(event.metadata.traceparent.as_deref());
    mercato_telemetry::continue_trace(&span, traceparent);
    Ok(Delivery {
        event,
        stream_sequence: info.stream_sequence,
        delivered: info.delivered,
        span,
    })
}

async fn ack(message: &Message, kind: AckKind) {
    if let Err(e) = message.ack_with(kind).await {
        // The server redelivers after ack_wait; handlers are idempotent.
        tracing::warn!(error = %e, "ack could not be sent");
    }
}
