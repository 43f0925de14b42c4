//! Emails to customers and guests about their orders: confirmed, cancelled (in whole or the
//! unshipped rest), shipped, delivered, return requested and received, refunded.
//!
//! At most one notification per event: the `command.notifications` row (keyed by event id)
//! is written before the email is sent, and removed again if sending fails so that the
//! redelivery retries. Without `smtp_url` the rendered message is only recorded. The row's
//! message (recipient, subject, body) is sealed with the recipient's data key, so it reads
//! as erased once they are (ADR 0013).

use std::sync::Arc;
use tracing::Instrument as _;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use mercato_aggregates::customer::Customer;
use mercato_aggregates::order::{Order, OrderEvent};
use mercato_aggregates::upcasting::{decode, upcasters};
use mercato_aggregates::{DataSubject, Personal};
use mercato_event_store::privacy;
use mercato_event_store::AggregateStore;
use mercato_nats::{ConsumerConfig, Delivery, Handler, HandlerError, NatsConfig, Worker};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::CommandApiConfig;
use crate::state::Deps;

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
                let span = tracing::info_span!(parent: &delivery.span, "notify");
                self.notify(delivery).instrument(span).await?;
            }
            Ok(())
        })
        .await
    }
}

/// Order events that are worth an email.
const NOTIFIED: &[&str] = &[
    "OrderConfirmed",
    "OrderCancelled",
    "OrderRemainderCancelled",
    "OrderShipped",
    "OrderDelivered",
    "OrderReturnRequested",
    "OrderReturnReceived",
    "OrderRefunded",
];

impl Notifier {
    /// The recipient of an order's emails, how to greet them, and whose personal data that
    /// is: the customer's account, or a guest's email; `None` once erased.
    async fn recipient(
        &self,
        order: &Order,
    ) -> Result<Option<(String, String, DataSubject)>, HandlerError> {
        if let Some(email) = order.guest_email() {
            return Ok(email
                .expose()
                .map(|e| (e.as_str().to_owned(), "Hello,".to_owned(), email.subject())));
        }
        let Some(customer_id) = order.customer_id() else {
            return Ok(None);
        };
        let (customer, _) = self.customers.load(&customer_id.to_string()).await?;
        let email = customer.email().and_then(Personal::expose);
        let name = customer.name().and_then(Personal::expose);
        Ok(match (email, name) {
            (Some(email), Some(name)) => Some((
                email.as_str().to_owned(),
                format!("Hello {name},"),
                DataSubject::Customer(customer_id),
            )),
            // Forgotten (or unknown) customers get nothing.
            _ => None,
        })
    }

    async fn notify(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let e = &delivery.event;
        if e.aggregate_type != "Order" || !NOTIFIED.contains(&e.event_type.as_str()) {
            return Ok(());
        }
        let event: OrderEvent =
            decode(&e.aggregate_id, &e.event_type, &e.event_version, &e.payload)?;
        let (order, _) = self.orders.load(&e.aggregate_id).await?;
        let Some((email, greeting, data_subject)) = self.recipient(&order).await? else {
            return Ok(());
        };
        let order_ref = &e.aggregate_id[..8.min(e.aggregate_id.len())];
        let Some((kind, subject, text)) = message(&event, order_ref) else {
            return Ok(());
        };
        let body = format!(
            "{greeting}\n\n{text}\n\nOrder: {}\n\n-- Mercato\n",
            e.aggregate_id
        );
        let delivery_kind = if self.smtp.is_some() {
            "smtp"
        } else {
            "recorded"
        };
        // The record of the email is sealed with the recipient's data key (ADR 0013).
        let record = Personal::new(
            data_subject,
            Recorded {
                to: email.clone(),
                subject: subject.clone(),
                body: body.clone(),
            },
        );
        let mut message = serde_json::to_value(&record)?;
        privacy::seal(&self.pool, &mut [&mut message]).await?;
        let inserted = sqlx::query(
            "INSERT INTO command.notifications (event_id, order_id, kind, message, delivery) \
             VALUES ($1, $2::uuid, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(e.event_id)
        .bind(&e.aggregate_id)
        .bind(kind)
        .bind(message)
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
                .to(email.parse::<Mailbox>()?)
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

/// An email as `command.notifications.message` records it (sealed).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Recorded {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The text.
    pub body: String,
}

/// The kind, subject and text of the email about `event`, if it gets one.
fn message(event: &OrderEvent, order_ref: &str) -> Option<(&'static str, String, String)> {
    Some(match event {
        OrderEvent::OrderConfirmed => (
            "order_confirmed",
            format!("Your order {order_ref} is confirmed"),
            "we have received your payment and your order is confirmed.".to_owned(),
        ),
        OrderEvent::OrderCancelled { reason } => (
            "order_cancelled",
            format!("Your order {order_ref} was cancelled"),
            format!(
                "your order was cancelled ({}). Anything you paid is refunded.",
                cancel_text(reason)
            ),
        ),
        OrderEvent::OrderRemainderCancelled { reason, value, .. } => (
            "order_remainder_cancelled",
            format!("Part of your order {order_ref} was cancelled"),
            format!(
                "the items of your order that had not shipped yet were cancelled ({}); we refund {}.",
                cancel_text(reason),
                money_text(*value)
            ),
        ),
        OrderEvent::OrderShipped {
            tracking_number, ..
        } => (
            "order_shipped",
            format!("Your order {order_ref} has shipped"),
            format!("your parcel is on its way; tracking number {tracking_number}."),
        ),
        OrderEvent::OrderDelivered { .. } => (
            "order_delivered",
            format!("Your order {order_ref} was delivered"),
            "your parcel was delivered. Something not right? You can return it within the return window.".to_owned(),
        ),
        OrderEvent::OrderReturnRequested { .. } => (
            "return_requested",
            format!("Your return for order {order_ref}"),
            "we have registered your return; please send the items back. We refund them when they arrive.".to_owned(),
        ),
        OrderEvent::OrderReturnReceived { value, .. } => (
            "return_received",
            format!("We received your return for order {order_ref}"),
            format!("your returned items arrived; we refund {}.", money_text(*value)),
        ),
        OrderEvent::OrderRefunded { amount, .. } => (
            "order_refunded",
            format!("A refund for your order {order_ref}"),
            format!("we refunded {}.", money_text(*amount)),
        ),
        _ => return None,
    })
}

/// `12.50 EUR`, with the currency's minor-unit digits (ISO 4217: none for JPY, three for
/// KWD, BHD, JOD, OMR, TND, two for the others).
fn money_text(money: mercato_aggregates::Money) -> String {
    let currency = money.currency();
    let digits = match currency.as_str() {
        "JPY" | "KRW" | "CLP" | "ISK" | "VND" | "XAF" | "XOF" => 0,
        "KWD" | "BHD" | "JOD" | "OMR" | "TND" | "IQD" | "LYD" => 3,
        _ => 2,
    };
    let amount = money.amount();
    if digits == 0 {
        return format!("{amount} {}", currency.as_str());
    }
    let unit = 10i64.pow(digits);
    format!(
        "{}.{:0width$} {}",
        amount / unit,
        amount % unit,
        currency.as_str(),
        width = digits as usize
    )
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

#[cfg(test)]
mod tests {
    use mercato_aggregates::money::{Currency, Money};

    use super::money_text;

    #[test]
    fn amounts_are_written_with_their_currencys_decimals() {
        let money = |amount, code| Money::new(amount, Currency::new(code).unwrap()).unwrap();
        assert_eq!(money_text(money(1250, "EUR")), "12.50 EUR");
        assert_eq!(money_text(money(5, "EUR")), "0.05 EUR");
        assert_eq!(money_text(money(1250, "JPY")), "1250 JPY");
        assert_eq!(money_text(money(1250, "KWD")), "1.250 KWD");
    }
}
