//! Orders: the order view (status, lines, totals, payment and shipment state, cancellation
//! reason) and each customer's order history (`orders` by `customer_id`).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use mercato_aggregates::order::{OrderEvent, OrderStatus};
use mercato_event_store::RecordedEvent;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{distinct, rows};
use crate::decode::{decode, tag};
use crate::error::ProjectionError;
use crate::runtime::Projection;

/// Order view and history.
pub struct Orders;

#[async_trait::async_trait]
impl Projection for Orders {
    fn name(&self) -> &'static str {
        "orders"
    }
    fn version(&self) -> i32 {
        1
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Order"]
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[
            "OrderPlaced",
            "OrderLineReserved",
            "OrderLineRejected",
            "OrderPaymentAuthorized",
            "OrderPaymentDeclined",
            "OrderConfirmed",
            "OrderPaymentCaptured",
            "OrderCancelled",
            "OrderShipped",
            "OrderDelivered",
            "OrderRefunded",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["orders", "order_lines"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let ids = distinct(events.iter().map(|e| e.aggregate_id.clone()));
        let mut orders: HashMap<Uuid, OrderRow> =
            rows::load::<OrderRow>(conn, "orders", "order_id", "uuid", &ids)
                .await?
                .into_iter()
                .map(|o| (o.order_id, o))
                .collect();
        let mut lines: HashMap<Uuid, Vec<LineRow>> = HashMap::new();
        for line in rows::load::<LineRow>(conn, "order_lines", "order_id", "uuid", &ids).await? {
            lines.entry(line.order_id).or_default().push(line);
        }
        let mut changed = HashSet::new();
        let mut changed_lines = HashSet::new();
        for event in events {
            let order_id =
                Uuid::parse_str(&event.aggregate_id).map_err(|e| ProjectionError::Invalid {
                    event_id: event.event_id,
                    reason: format!("order id: {e}"),
                })?;
            let at = event.recorded_at;
            let decoded = decode::<OrderEvent>(event)?;
            if let OrderEvent::OrderPlaced {
                customer_id,
                lines: placed,
                total,
                placed_at,
                ..
            } = &decoded
            {
                // An order is placed once; a second placement changes nothing.
                if let Entry::Vacant(slot) = orders.entry(order_id) {
                    slot.insert(OrderRow::placed(
                        order_id,
                        customer_id.as_uuid(),
                        total.currency().as_str(),
                        total.amount(),
                        *placed_at,
                        at,
                    ));
                    changed.insert(order_id);
                }
                let existing = lines.entry(order_id).or_default();
                for (i, line) in placed.iter().enumerate() {
                    let line_no = i as i32 + 1;
                    if existing.iter().any(|l| l.line_no == line_no) {
                        continue;
                    }
                    existing.push(LineRow {
                        order_id,
                        line_no,
                        sku: line.sku.as_str().to_owned(),
                        name: line.name.as_str().to_owned(),
                        quantity: line.quantity.get() as i32,
                        shipped_quantity: 0,
                        unit_price_amount: line.unit_price.amount(),
                        line_total_amount: line.line_total.amount(),
                    });
                    changed_lines.insert(order_id);
                }
                continue;
            }
            if let OrderEvent::OrderShipped { lines: shipped, .. } = &decoded {
                for shipped in shipped {
                    for line in lines.entry(order_id).or_default() {
                        if line.sku == shipped.sku.as_str() {
                            line.shipped_quantity += shipped.quantity.get() as i32;
                            changed_lines.insert(order_id);
                        }
                    }
                }
            }
            // An event of an order this read model never saw placed changes nothing.
            let Some(o) = orders.get_mut(&order_id) else {
                continue;
            };
            match decoded {
                OrderEvent::OrderPlaced { .. } => {}
                OrderEvent::OrderLineReserved { status, .. } => o.status = tag(&status),
                OrderEvent::OrderLineRejected { .. } => o.status = "stock_rejected".to_owned(),
                OrderEvent::OrderPaymentAuthorized { payment_id, .. } => {
                    o.status = "payment_authorized".to_owned();
                    o.payment_state = "authorized".to_owned();
                    o.payment_id = Some(payment_id.as_uuid());
                }
                OrderEvent::OrderPaymentDeclined { payment_id, reason } => {
                    o.status = "payment_declined".to_owned();
                    o.payment_state = "declined".to_owned();
                    o.payment_id = Some(payment_id.as_uuid());
                    o.payment_decline = Some(tag(&reason));
                }
                OrderEvent::OrderConfirmed => o.status = "confirmed".to_owned(),
                OrderEvent::OrderPaymentCaptured { amount, .. } => {
                    // A refund recorded before the capture keeps its payment state.
                    if o.refunded_amount == 0 {
                        o.payment_state = "captured".to_owned();
                    }
                    o.captured_amount = amount.amount();
                }
                OrderEvent::OrderCancelled { reason } => {
                    o.status = "cancelled".to_owned();
                    o.cancellation_reason = Some(serde_json::to_value(&reason).unwrap_or_default());
                }
                OrderEvent::OrderShipped {
                    tracking_number,
                    status,
                    ..
                } => {
                    o.shipment_state = if status == OrderStatus::Shipped {
                        "shipped"
                    } else {
                        "partially_shipped"
                    }
                    .to_owned();
                    o.status = tag(&status);
                    o.tracking_numbers.push(tracking_number.as_str().to_owned());
                }
                OrderEvent::OrderDelivered => {
                    o.status = "delivered".to_owned();
                    o.shipment_state = "delivered".to_owned();
                }
                OrderEvent::OrderRefunded {
                    total_refunded,
                    status,
                    ..
                } => {
                    o.status = tag(&status);
                    o.refunded_amount = total_refunded.amount();
                    o.payment_state = if o.refunded_amount >= o.captured_amount {
                        "refunded"
                    } else {
                        "partially_refunded"
                    }
                    .to_owned();
                }
            }
            o.updated_at = at;
            changed.insert(order_id);
        }
        let upserts: Vec<&OrderRow> = changed.iter().filter_map(|id| orders.get(id)).collect();
        rows::upsert(conn, "orders", &["order_id"], &upserts).await?;
        let upserts: Vec<&LineRow> = changed_lines
            .iter()
            .filter_map(|id| lines.get(id))
            .flatten()
            .collect();
        rows::upsert(conn, "order_lines", &["order_id", "line_no"], &upserts).await
    }
}

/// A row of `orders`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderRow {
    order_id: Uuid,
    customer_id: Uuid,
    status: String,
    currency: String,
    total_amount: i64,
    placed_at: DateTime<Utc>,
    payment_id: Option<Uuid>,
    payment_state: String,
    payment_decline: Option<String>,
    captured_amount: i64,
    refunded_amount: i64,
    shipment_state: String,
    tracking_numbers: Vec<String>,
    cancellation_reason: Option<serde_json::Value>,
    updated_at: DateTime<Utc>,
}

impl OrderRow {
    fn placed(
        order_id: Uuid,
        customer_id: Uuid,
        currency: &str,
        total_amount: i64,
        placed_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            order_id,
            customer_id,
            status: "placed".to_owned(),
            currency: currency.to_owned(),
            total_amount,
            placed_at,
            payment_id: None,
            payment_state: "pending".to_owned(),
            payment_decline: None,
            captured_amount: 0,
            refunded_amount: 0,
            shipment_state: "not_shipped".to_owned(),
            tracking_numbers: Vec::new(),
            cancellation_reason: None,
            updated_at: at,
        }
    }
}

/// A row of `order_lines`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineRow {
    order_id: Uuid,
    line_no: i32,
    sku: String,
    name: String,
    quantity: i32,
    shipped_quantity: i32,
    unit_price_amount: i64,
    line_total_amount: i64,
}
