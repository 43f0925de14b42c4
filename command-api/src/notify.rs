//! Emails to customers about their orders: confirmed, cancelled, shipped, refunded.
//!
//! At most one notification per event: the `command.notifications` row (keyed by event id)
//! is written before the email is sent, and removed again if sending fails so that the
//! redelivery retries. Without `smtp_url` the rendered message is only recorded.

use std::sync::Arc;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use mercato_aggregates::customer::Customer;
use mercato_aggregates::order::{Order, OrderEvent};
use mercato_aggregates::upcasting::upcasters;
use mercato_event_store::AggregateStore;
use mercato_nats::{ConsumerConfig, Delivery, Handler, HandlerError, NatsConfig, Worker};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::api::Deps;
use crate::config::CommandApiConfig;

/// The notification worker, ready to run.
pub struct NotificationWorker {
    handler: Arc<Notifier>,
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    nats: NatsConfig,
    consumer: ConsumerConfig,
}

struct Notifier {
    pool: PgPool,
    orders: AggregateStore<Order>,
    customers: AggregateStore<Customer>,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: String,
}

impl NotificationWorker {
    /// A worker over `deps`; fails on an unusable `smtp_url`.
    pub fn new(config: &CommandApiConfig, deps: &Deps) -> anyhow::Result<Self> {
        let smtp = match &config.smtp_url {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| anyhow::anyhow!("invalid smtp url: {e}"))?
                    .build(),
            ),
            None => None,
        };
        config
            .mail_from
            .parse::<Mailbox>()
            .map_err(|e| anyhow::anyhow!("invalid mail_from: {e}"))?;
        let mut consumer = ConsumerConfig::new(format!("{}-notifications", config.consumer_prefix));
        consumer.filter_subject = Some(deps.nats.aggregate_type_wildcard("Order"));
        Ok(Self {
            handler: Arc::new(Notifier {
                pool: deps.pool.clone(),
                orders: AggregateStore::new(deps.pool.clone(), (), &deps.snapshots)
                    .with_upcasters(upcasters()),
                customers: AggregateStore::new(deps.pool.clone(), (), &deps.snapshots)
                    .with_upcasters(upcasters()),
                smtp,
                from: config.mail_from.clone(),
            }),
            client: deps.nats_client.clone(),
            js: deps.js.clone(),
            nats: deps.nats.clone(),
            consumer,
        })
    }

    /// Replaces the consumer settings (tests shorten `ack_wait`).
    pub fn with_consumer(mut self, consumer: ConsumerConfig) -> Self {
        self.consumer = consumer;
        self
    }

    /// Consumes until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let worker = Worker::bind(self.client, self.js, &self.nats, self.consumer).await?;
        worker.run(self.handler.as_ref(), shutdown).await?;
        Ok(())
    }
}

#[async_trait]
impl Handler for Notifier {
    async fn handle(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        crate::panics::guarded("notifications", async {
            for delivery in batch {
                self.notify(delivery).await?;
            }
            Ok(())
        })
        .await
    }
}

impl Notifier {
    async fn notify(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let e = &delivery.event;
        if e.aggregate_type != "Order"
            || !matches!(
                e.event_type.as_str(),
                "OrderConfirmed" | "OrderCancelled" | "OrderShipped" | "OrderRefunded"
            )
        {
            return Ok(());
        }
        let event: OrderEvent = serde_json::from_value(e.payload.clone())?;
        let (order, _) = self.orders.load(&e.aggregate_id).await?;
        let Some(customer_id) = order.customer_id() else {
            return Ok(());
        };
        let (customer, _) = self.customers.load(&customer_id.to_string()).await?;
        let (Some(email), Some(name)) = (customer.email(), customer.name()) else {
            // Forgotten (or unknown) customers get nothing.
            return Ok(());
        };
        let order_ref = &e.aggregate_id[..8.min(e.aggregate_id.len())];
        let greeting = format!("Hello {},\n\n", name.expose());
        let (kind, subject, text) = match &event {
            OrderEvent::OrderConfirmed => (
                "order_confirmed",
                format!("Your order {order_ref} is confirmed"),
                "we have received your payment and your order is confirmed.".to_owned(),
            ),
            OrderEvent::OrderCancelled { reason } => (
                "order_cancelled",
                format!("Your order {order_ref} was cancelled"),
                format!(
                    "your order was cancelled ({}). Nothing was charged unless a refund follows.",
                    cancel_text(reason)
                ),
            ),
            OrderEvent::OrderShipped {
                tracking_number, ..
            } => (
                "order_shipped",
                format!("Your order {order_ref} has shipped"),
                format!("your parcel is on its way; tracking number {tracking_number}."),
            ),
            OrderEvent::OrderRefunded { amount, .. } => (
                "order_refunded",
                format!("A refund for your order {order_ref}"),
                format!(
                    "we refunded {}.{:02} {}.",
                    amount.amount() / 100,
                    amount.amount() % 100,
                    amount.currency().as_str()
                ),
            ),
            _ => return Ok(()),
        };
        let body = format!(
            "{greeting}{text}\n\nOrder: {}\n\n-- Mercato\n",
            e.aggregate_id
        );
        let delivery_kind = if self.smtp.is_some() {
            "smtp"
        } else {
            "recorded"
        };
        let inserted = sqlx::query(
            "INSERT INTO command.notifications (event_id, order_id, kind, recipient, subject, body, delivery) \
             VALUES ($1, $2::uuid, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(e.event_id)
        .bind(&e.aggregate_id)
        .bind(kind)
        .bind(email.expose().as_str())
        .bind(&subject)
        .bind(&body)
        .bind(delivery_kind)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            return Ok(());
        }
        let Some(smtp) = &self.smtp else {
            tracing::info!(event_id = %e.event_id, kind, "notification recorded");
            return Ok(());
        };
        let sent = async {
            let message = Message::builder()
                .from(self.from.parse::<Mailbox>()?)
                .to(email.expose().as_str().parse::<Mailbox>()?)
                .subject(subject)
                .body(body)?;
            smtp.send(message).await?;
            Ok::<(), HandlerError>(())
        }
        .await;
        if let Err(err) = sent {
            sqlx::query("DELETE FROM command.notifications WHERE event_id = $1")
                .bind(e.event_id)
                .execute(&self.pool)
                .await?;
            return Err(err);
        }
        tracing::info!(event_id = %e.event_id, kind, "notification sent");
        Ok(())
    }
}

fn cancel_text(reason: &mercato_aggregates::order::CancellationReason) -> String {
    use mercato_aggregates::order::CancellationReason as R;
    match reason {
        R::OutOfStock { sku } => format!("{sku} is out of stock"),
        R::PaymentDeclined { reason } => format!("the payment was declined: {reason:?}"),
        R::ReservationExpired => "the payment did not arrive in time".to_owned(),
        R::CustomerRequest => "at your request".to_owned(),
        R::MerchantRequest => "by the shop".to_owned(),
    }
}
