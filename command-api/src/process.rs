//! The order process runtime: the domain's `OrderProcess` (the checkout, then the order's
//! whole life: shipments, cancellations, returns, refunds) on a durable JetStream consumer,
//! with its state, an outbox of commands and the payment deadlines in PostgreSQL.
//!
//! For each relevant event (order, stock, payment): in one transaction, lock the order's
//! process row, let the process decide, and store the new state, its deadline and the
//! commands (with their deterministic ids). Then, under a per-order advisory lock (held on a
//! small pool of its own, so dispatchers never starve the main pool), dispatch the order's
//! pending commands in order. Each dispatch carries the command id as the
//! events' correlation id and first looks for events with that id, so a command whose
//! append succeeded but whose "dispatched" mark was lost is not executed twice. The message
//! is acknowledged only after that, so a crash anywhere leads to a redelivery that finds the
//! event already handled and finishes the dispatch. A poller fires passed deadlines
//! (`PaymentDeadlinePassed`, survives restarts: the deadline is a column), sweeps commands
//! left pending, and places the orders of checkouts whose request died between freezing the
//! cart and placing the order (`crate::pending`). A panic in a handler or a poll is caught,
//! logged and counted (`crate::panics`): the batch is retried, the worker lives on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

use async_trait::async_trait;
use futures::StreamExt;
use mercato_aggregates::order::{CancellationReason, OrderEvent};
use mercato_aggregates::order_process::{
    OrderProcess, ProcessEvent, ProcessInput, ProcessPhase, ProcessPolicy, TargetedCommand,
};
use mercato_aggregates::payment::{PaymentEvent, PaymentGateway};
use mercato_aggregates::stock::StockEvent;
use mercato_aggregates::upcasting::decode;
use mercato_aggregates::values::{OrderId, PaymentId};
use mercato_aggregates::{ErrorCode, ErrorKind};
use mercato_event_store::EventStoreError;
use mercato_nats::{ConsumerConfig, Delivery, Handler, HandlerError, NatsConfig, Worker};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::CommandApiConfig;
use crate::exec::{execute, execute_recorded, WriteContext, WrittenEvents};
use crate::state::Deps;
use crate::stores::Stores;

/// Namespace of deadline tick ids.
const DEADLINE_NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7263_6174_6f2d_6465_6164_6c69_6e65);
/// Orders handled concurrently within one batch (each order's events stay in order).
const CONCURRENT_ORDERS: usize = 4;

/// Tunables of the order process worker.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// The durable consumer (default name `<prefix>-checkout`).
    pub consumer: ConsumerConfig,
    /// Payment deadline after placement (also the reservations' expiry).
    pub reservation_ttl: Duration,
    /// How often passed deadlines, stale pending commands and unfinished checkouts are
    /// looked for.
    pub poll: Duration,
    /// Age of a recorded checkout without an order before the poller places the order.
    pub checkout_grace: Duration,
}

impl ProcessConfig {
    /// From the command side's configuration.
    pub fn from_config(config: &CommandApiConfig) -> Self {
        Self {
            consumer: ConsumerConfig::new(format!("{}-checkout", config.consumer_prefix)),
            reservation_ttl: config.reservation_ttl,
            poll: config.deadline_poll,
            checkout_grace: config.checkout_grace,
        }
    }
}

/// The order process worker, ready to run.
pub struct OrderProcessWorker {
    core: Arc<ProcessCore>,
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    nats: NatsConfig,
    config: ProcessConfig,
}

struct ProcessCore {
    stores: Stores,
    /// Connections that only hold the per-order dispatch locks. The dispatch itself needs
    /// connections of the main pool; taking the locks there too would let the dispatchers
    /// (holding every connection of a small pool) wait on each other forever.
    locks: PgPool,
    policy: ProcessPolicy,
    checkout_grace: Duration,
}

impl OrderProcessWorker {
    /// The order process over `deps` with the payment gateway `config` chooses.
    pub fn new(config: &CommandApiConfig, deps: &Deps) -> Self {
        let gateway = config.payment_gateway.build(config);
        Self::with_gateway(ProcessConfig::from_config(config), deps, gateway)
    }

    /// The order process with its own settings and payment gateway.
    pub fn with_gateway(
        config: ProcessConfig,
        deps: &Deps,
        gateway: Arc<dyn PaymentGateway>,
    ) -> Self {
        let ttl = chrono::Duration::from_std(config.reservation_ttl)
            .unwrap_or_else(|_| chrono::Duration::minutes(15));
        Self {
            core: Arc::new(ProcessCore {
                stores: Stores::new(deps.pool.clone(), gateway, &deps.snapshots),
                // One per concurrent order, and one for the poller.
                locks: PgPoolOptions::new()
                    .max_connections(CONCURRENT_ORDERS as u32 + 1)
                    .min_connections(0)
                    .acquire_timeout(deps.pool.options().get_acquire_timeout())
                    .connect_lazy_with((*deps.pool.connect_options()).clone()),
                policy: ProcessPolicy {
                    reservation_ttl: ttl,
                },
                checkout_grace: config.checkout_grace,
            }),
            client: deps.nats_client.clone(),
            js: deps.js.clone(),
            nats: deps.nats.clone(),
            config,
        }
    }

    /// Consumes and fires deadlines until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let worker = Worker::bind(
            self.client,
            self.js,
            &self.nats,
            self.config.consumer.clone(),
        )
        .await?;
        let core = self.core.clone();
        let poll = self.config.poll;
        let stop = shutdown.clone();
        let poller = tokio::spawn(async move {
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(e) = crate::panics::guarded("checkout-poller", core.poll_once()).await {
                            tracing::warn!(error = %e, "checkout deadline poll failed");
                        }
                    }
                }
            }
        });
        let handler = ProcessHandler { core: self.core };
        let result = worker.run(&handler, shutdown.clone()).await;
        shutdown.cancel();
        let _ = poller.await;
        result.map_err(Into::into)
    }
}

struct ProcessHandler {
    core: Arc<ProcessCore>,
}

#[async_trait]
impl Handler for ProcessHandler {
    async fn handle(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        crate::panics::guarded("checkout", self.handle_batch(batch)).await
    }
}

impl ProcessHandler {
    async fn handle_batch(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        let mut groups: BTreeMap<OrderId, Vec<(ProcessInput, Cause)>> = BTreeMap::new();
        for delivery in batch {
            if let Some(input) = process_input(delivery)? {
                groups
                    .entry(input.event.order_id())
                    .or_default()
                    .push((input, Cause::of(delivery)));
            }
        }
        let results: Vec<Result<(), HandlerError>> = futures::stream::iter(groups.into_values())
            .map(|inputs| async move {
                for (input, cause) in inputs {
                    let span = tracing::info_span!(parent: &cause.span, "order_process", order_id = %input.event.order_id());
                    self.core
                        .apply(&input, cause.correlation_id)
                        .instrument(span)
                        .await?;
                }
                Ok(())
            })
            .buffer_unordered(CONCURRENT_ORDERS)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

/// Where a delivered event came from, for the commands it leads to.
struct Cause {
    /// The flow the event belongs to (the request that started the checkout).
    correlation_id: Option<Uuid>,
    /// The worker's span of the event, in its trace.
    span: tracing::Span,
}

impl Cause {
    fn of(delivery: &Delivery) -> Self {
        Self {
            correlation_id: delivery.event.metadata.correlation_id,
            span: delivery.span.clone(),
        }
    }
}

/// The process's view of a delivered event, if it reacts to it.
fn process_input(delivery: &Delivery) -> Result<Option<ProcessInput>, HandlerError> {
    let e = &delivery.event;
    let (id, kind, version, payload) =
        (&e.aggregate_id, &e.event_type, &e.event_version, &e.payload);
    let event = match e.aggregate_type.as_str() {
        "Order" => {
            let order_id: OrderId = e.aggregate_id.parse()?;
            // The process needs no personal data: it reads an order's as withheld.
            let mut payload = payload.clone();
            mercato_event_store::privacy::redact(&mut payload);
            let event: OrderEvent = decode(id, kind, version, &payload)?;
            ProcessEvent::from_order_event(order_id, &event)
        }
        "Stock" => {
            let event: StockEvent = decode(id, kind, version, payload)?;
            ProcessEvent::from_stock_event(&event)
        }
        "Payment" => {
            let payment_id: PaymentId = e.aggregate_id.parse()?;
            let event: PaymentEvent = decode(id, kind, version, payload)?;
            ProcessEvent::from_payment_event(payment_id, &event)
        }
        _ => None,
    };
    Ok(event.map(|event| ProcessInput {
        event_id: e.event_id,
        event,
    }))
}

impl ProcessCore {
    fn pool(&self) -> &PgPool {
        &self.stores.pool
    }

    /// Decides and records `input`, then dispatches the order's pending commands.
    async fn apply(
        &self,
        input: &ProcessInput,
        correlation_id: Option<Uuid>,
    ) -> Result<(), HandlerError> {
        let order_id = input.event.order_id().as_uuid();
        if self.settled(order_id, input.event_id).await? {
            return Ok(());
        }
        self.record(input, correlation_id).await?;
        self.dispatch_pending(order_id).await
    }

    /// Whether the order's process already handled `event_id` and has nothing left to
    /// dispatch: one read, where handling it again would take two transactions. The usual
    /// case for the stock and payment events the dispatcher already reacted to (ADR 0018).
    async fn settled(&self, order_id: Uuid, event_id: Uuid) -> Result<bool, HandlerError> {
        let settled: Option<bool> = sqlx::query_scalar(
            "SELECT (state -> 'processed') ? $2 AND NOT EXISTS ( \
               SELECT 1 FROM command.checkout_commands c \
               WHERE c.order_id = $1 AND c.dispatched_at IS NULL) \
             FROM command.checkout_processes WHERE order_id = $1",
        )
        .bind(order_id)
        .bind(event_id.to_string())
        .fetch_optional(self.pool())
        .await?;
        Ok(settled == Some(true))
    }

    /// Decides and records: the new state and its commands in one transaction, each command
    /// with its cause (`input`'s event, the flow `correlation_id`, the current trace).
    /// Returns how many commands it queued.
    async fn record(
        &self,
        input: &ProcessInput,
        correlation_id: Option<Uuid>,
    ) -> Result<usize, HandlerError> {
        let order_id = input.event.order_id().as_uuid();
        let mut tx = self.pool().begin().await?;
        let lock = "SELECT state FROM command.checkout_processes WHERE order_id = $1 FOR UPDATE";
        let state: serde_json::Value = match sqlx::query_scalar(lock)
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?
        {
            Some(state) => state,
            // The order's first event: create the row (a concurrent first event may win).
            None => {
                sqlx::query(
                    "INSERT INTO command.checkout_processes (order_id, state, phase) VALUES ($1, $2, 'not_started') \
                     ON CONFLICT DO NOTHING",
                )
                .bind(order_id)
                .bind(serde_json::to_value(OrderProcess::default())?)
                .execute(&mut *tx)
                .await?;
                sqlx::query_scalar(lock)
                    .bind(order_id)
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        let process: OrderProcess = serde_json::from_value(state)?;
        let decision = process.handle(input, &self.policy);
        let outcome = checkout_outcome(process.phase(), &decision.process);
        let mut queued = 0;
        if decision.process != process {
            let next = &decision.process;
            sqlx::query(
                "UPDATE command.checkout_processes SET state = $2, phase = $3, deadline = $4, updated_at = now() \
                 WHERE order_id = $1",
            )
            .bind(order_id)
            .bind(serde_json::to_value(next)?)
            .bind(serde_json::to_value(next.phase())?.as_str().unwrap_or_default().to_owned())
            .bind(next.deadline())
            .execute(&mut *tx)
            .await?;
            for command in &decision.commands {
                sqlx::query(
                    "INSERT INTO command.checkout_commands \
                       (command_id, order_id, aggregate_type, aggregate_id, command, causation_id, correlation_id, traceparent) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                )
                .bind(command.command_id)
                .bind(order_id)
                .bind(command.command.aggregate_type())
                .bind(command.command.aggregate_id())
                .bind(serde_json::to_value(&command.command)?)
                .bind(input.event_id)
                .bind(correlation_id)
                .bind(mercato_telemetry::traceparent())
                .execute(&mut *tx)
                .await?;
            }
            queued = decision.commands.len();
            tracing::debug!(order_id = %order_id, phase = ?next.phase(), commands = queued, "checkout advanced");
        }
        tx.commit().await?;
        if let Some(outcome) = outcome {
            self.record_outcome(order_id, outcome).await;
        }
        Ok(queued)
    }

    /// Counts how a checkout ended (`mercato_checkout_outcomes_total`) and, when confirmed,
    /// how long it took since the order was placed (`mercato_checkout_time_to_confirmed_seconds`).
    /// Counted once: only the transition that ends the checkout gets here.
    async fn record_outcome(&self, order_id: Uuid, outcome: &'static str) {
        metrics::counter!("mercato_checkout_outcomes_total", "outcome" => outcome).increment(1);
        if outcome != "confirmed" {
            return;
        }
        let placed: Result<Option<f64>, sqlx::Error> = sqlx::query_scalar(
            "SELECT extract(epoch FROM now() - recorded_at)::float8 FROM events \
             WHERE aggregate_type = 'Order' AND aggregate_id = $1 ORDER BY sequence LIMIT 1",
        )
        .bind(order_id.to_string())
        .fetch_optional(self.pool())
        .await;
        if let Ok(Some(seconds)) = placed {
            metrics::histogram!("mercato_checkout_time_to_confirmed_seconds").record(seconds);
        }
    }

    /// Sends the order's pending commands in order, one dispatcher per order at a time.
    ///
    /// What a stock or payment command appended is the process's next input: it is decided
    /// on here at once, its commands joining the queue, rather than a bus round trip later
    /// (ADR 0018). Those events still arrive from the bus, and are then known (the process
    /// remembers the ids of the events it handled); a crash before they are recorded here
    /// leaves them to that delivery.
    async fn dispatch_pending(&self, order_id: Uuid) -> Result<(), HandlerError> {
        let mut lock = self.locks.begin().await?;
        let key = i64::from_be_bytes(order_id.as_bytes()[..8].try_into()?);
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(&mut *lock)
            .await?;
        // The queue as it stands, then again only if dispatching it queued more. Commands
        // queued elsewhere meanwhile wait for this lock, and their queuer dispatches them.
        loop {
            let queue: Vec<QueuedCommand> = sqlx::query_as(
                "SELECT command_id, command, causation_id, correlation_id, traceparent \
                 FROM command.checkout_commands \
                 WHERE order_id = $1 AND dispatched_at IS NULL ORDER BY seq",
            )
            .bind(order_id)
            .fetch_all(self.pool())
            .await?;
            let mut queued_more = false;
            for queued in queue {
                let command_id = queued.command_id;
                let span = tracing::info_span!("process_command", command_id = %command_id);
                mercato_telemetry::continue_trace(&span, queued.traceparent.as_deref());
                let correlation_id = queued.correlation_id;
                let (outcome, next) = self.dispatch(queued).instrument(span.clone()).await?;
                sqlx::query(
                    "UPDATE command.checkout_commands SET dispatched_at = now(), outcome = $2 WHERE command_id = $1",
                )
                .bind(command_id)
                .bind(&outcome)
                .execute(self.pool())
                .await?;
                for input in next {
                    let queued = self
                        .record(&input, correlation_id)
                        .instrument(span.clone())
                        .await?;
                    queued_more |= queued > 0;
                }
            }
            if !queued_more {
                break;
            }
        }
        lock.commit().await?;
        Ok(())
    }

    /// Runs one command; returns its outcome (`appended`, `no_op`, `dropped:<code>`) and the
    /// process's inputs among the stock or payment events it appended, or an error worth
    /// retrying.
    async fn dispatch(
        &self,
        queued: QueuedCommand,
    ) -> Result<(String, Vec<ProcessInput>), HandlerError> {
        let ctx = WriteContext {
            write_id: queued.command_id,
            check_prior: true,
            actor: "system:process".to_owned(),
            causation_id: queued.causation_id,
            correlation_id: queued.correlation_id,
        };
        let command: TargetedCommand = serde_json::from_value(queued.command)?;
        let s = &self.stores;
        let (outcome, next) = match command {
            TargetedCommand::Stock { sku, command } => outcome(
                execute_recorded(&s.stock, sku.as_str(), command, &ctx, None).await,
                ProcessEvent::from_stock_event,
                |_| false,
            ),
            // Not an order's events: an outside change to the order (a cancellation, say)
            // may sit before them in its stream, and the process must see the order's
            // events in their order, so these come from the bus.
            TargetedCommand::Order { order_id, command } => outcome(
                execute(&s.orders, &order_id.to_string(), command, &ctx, None)
                    .await
                    .map(|written| (written, Vec::new())),
                |_: &()| None,
                // An outside cancellation overtook the checkout; it learns of it from
                // `OrderCancelled` (aggregates README).
                |code| matches!(code, "invalid_transition" | "order_already_cancelled"),
            ),
            TargetedCommand::Payment {
                payment_id,
                command,
            } => outcome(
                execute_recorded(&s.payments, &payment_id.to_string(), command, &ctx, None).await,
                |event| ProcessEvent::from_payment_event(payment_id, event),
                |code| code == "payment_already_exists",
            ),
            // A release: nothing in the process waits for its event.
            TargetedCommand::Promotion {
                promotion_id,
                command,
            } => outcome(
                execute(
                    &s.promotions,
                    &promotion_id.to_string(),
                    command,
                    &ctx,
                    None,
                )
                .await
                .map(|written| (written, Vec::new())),
                |_: &()| None,
                |code| code == "promotion_not_found",
            ),
        }?;
        metrics::counter!("mercato_checkout_commands_total", "outcome" => outcome.split(':').next().unwrap_or("").to_owned())
            .increment(1);
        Ok((outcome, next))
    }

    /// Fires passed deadlines and finishes dispatches left pending (e.g. after a crash).
    async fn poll_once(&self) -> Result<(), HandlerError> {
        let due: Vec<Uuid> = sqlx::query_scalar(
            "SELECT order_id FROM command.checkout_processes WHERE deadline <= now() ORDER BY deadline LIMIT 100",
        )
        .fetch_all(self.pool())
        .await?;
        for order_id in due {
            let input = ProcessInput {
                event_id: Uuid::new_v5(&DEADLINE_NAMESPACE, order_id.as_bytes()),
                event: ProcessEvent::PaymentDeadlinePassed {
                    order_id: OrderId::new(order_id),
                },
            };
            tracing::info!(order_id = %order_id, "payment deadline passed");
            self.apply(&input, None).await?;
            // A process that ignored the tick (already past it) must not be polled again.
            sqlx::query(
                "UPDATE command.checkout_processes SET deadline = NULL WHERE order_id = $1 AND deadline <= now()",
            )
            .bind(order_id)
            .execute(self.pool())
            .await?;
        }
        let stale: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT order_id FROM command.checkout_commands \
             WHERE dispatched_at IS NULL AND created_at < now() - interval '2 seconds' LIMIT 100",
        )
        .fetch_all(self.pool())
        .await?;
        for order_id in stale {
            self.dispatch_pending(order_id).await?;
        }
        crate::services::checkout::sweep(&self.stores, self.checkout_grace).await?;
        Ok(())
    }
}

/// How a checkout ended, when this step ends it: `confirmed` on reaching capture,
/// or why it was cancelled while it was still being checked out.
fn checkout_outcome(before: ProcessPhase, after: &OrderProcess) -> Option<&'static str> {
    use ProcessPhase::{
        Authorizing, Cancelled, Capturing, Compensating, Completed, Confirming, NotStarted,
        Reserving,
    };
    let checking_out = matches!(before, NotStarted | Reserving | Authorizing | Confirming);
    if !checking_out || before == after.phase() {
        return None;
    }
    match after.phase() {
        Capturing | Completed => Some("confirmed"),
        Compensating | Cancelled => Some(match after.cancel_reason() {
            Some(CancellationReason::OutOfStock { .. }) => "out_of_stock",
            Some(CancellationReason::PaymentDeclined { .. }) => "payment_declined",
            Some(CancellationReason::ReservationExpired) => "reservation_expired",
            _ => "cancelled",
        }),
        _ => None,
    }
}

/// A command waiting in `command.checkout_commands`, with its cause.
#[derive(sqlx::FromRow)]
struct QueuedCommand {
    command_id: Uuid,
    command: serde_json::Value,
    causation_id: Option<Uuid>,
    correlation_id: Option<Uuid>,
    traceparent: Option<String>,
}

/// A dispatched command's outcome, and the process's inputs among the events it appended
/// (`input` picks them).
fn outcome<E: std::error::Error + ErrorCode + Send + Sync + 'static, V>(
    result: Result<WrittenEvents<V>, EventStoreError<E>>,
    input: impl Fn(&V) -> Option<ProcessEvent>,
    droppable: impl Fn(&str) -> bool,
) -> Result<(String, Vec<ProcessInput>), HandlerError> {
    match result {
        Ok((w, events)) if w.appended > 0 => {
            let next = events
                .iter()
                .filter_map(|(event_id, event)| {
                    input(event).map(|event| ProcessInput {
                        event_id: *event_id,
                        event,
                    })
                })
                .collect();
            Ok(("appended".to_owned(), next))
        }
        Ok(_) => Ok(("no_op".to_owned(), Vec::new())),
        Err(EventStoreError::Domain(e)) if droppable(e.code()) => {
            Ok((format!("dropped:{}", e.code()), Vec::new()))
        }
        // A gateway that cannot be reached now: keep the command pending and try again
        // (the message is redelivered, and the poller retries stale commands).
        Err(EventStoreError::Domain(e)) if e.kind() == ErrorKind::Unavailable => {
            tracing::warn!(code = e.code(), error = %e, "order process command will be retried");
            Err(Box::new(EventStoreError::Domain(e)))
        }
        Err(EventStoreError::Domain(e)) => {
            // The process guarantees this does not happen; keep going rather than block the
            // order's later commands, and make it visible.
            tracing::error!(code = e.code(), error = %e, "checkout command refused");
            Ok((format!("refused:{}", e.code()), Vec::new()))
        }
        Err(e) => Err(Box::new(e)),
    }
}
