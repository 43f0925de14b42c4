//! Sales analytics: revenue and units per day and per SKU, refunds, orders by status.
//!
//! Revenue is recognised when an order is confirmed (its total, on the day it was placed, in
//! its currency), with the discounts, tax and shipping inside it beside it per day. Per SKU,
//! a line's revenue is what the customer paid for it (after its discounts, with its tax),
//! the same measure its refunds are shares of. Refunds are negative revenue on the day they were made (the recorded
//! refund's day): per day in `sales_daily.refunded_amount`, and per SKU for the units a
//! refund pays back (cancelled or returned units; a merchant's refund of an amount has no
//! units and counts per day only), so `revenue - refunded` is the net, per day and per SKU.
//! Sums are exact under redelivery because the runtime applies each event once.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use mercato_aggregates::order::OrderEvent;
use mercato_event_store::RecordedEvent;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{distinct, rows};
use crate::decode::{decode, tag};
use crate::error::ProjectionError;
use crate::projection::Projection;

/// Back-office sales figures.
pub struct Sales;

#[async_trait::async_trait]
impl Projection for Sales {
    fn name(&self) -> &'static str {
        "sales"
    }
    fn version(&self) -> i32 {
        3
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
            "OrderCancelled",
            "OrderRemainderCancelled",
            "OrderShipped",
            "OrderDelivered",
            "OrderRefunded",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["sales_orders", "sales_daily", "sales_by_sku"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let ids = distinct(events.iter().map(|e| e.aggregate_id.clone()));
        let mut orders: HashMap<Uuid, SalesOrderRow> =
            rows::load::<SalesOrderRow>(conn, "sales_orders", "order_id", "uuid", &ids)
                .await?
                .into_iter()
                .map(|o| (o.order_id, o))
                .collect();
        let mut changed = HashSet::new();
        let mut daily: HashMap<(NaiveDate, String), DailyDelta> = HashMap::new();
        let mut by_sku: HashMap<(NaiveDate, String, String), SkuDelta> = HashMap::new();
        let mut refunds: HashMap<(NaiveDate, String), i64> = HashMap::new();
        let mut sku_refunds: HashMap<(NaiveDate, String, String), SkuDelta> = HashMap::new();
        for event in events {
            let order_id =
                Uuid::parse_str(&event.aggregate_id).map_err(|e| ProjectionError::Invalid {
                    event_id: event.event_id,
                    reason: format!("order id: {e}"),
                })?;
            let status = match decode::<OrderEvent>(event)? {
                OrderEvent::OrderPlaced {
                    lines,
                    total,
                    discounts,
                    tax,
                    shipping,
                    placed_at,
                    ..
                } => {
                    if let Entry::Vacant(slot) = orders.entry(order_id) {
                        let lines: Vec<serde_json::Value> = lines
                            .iter()
                            .map(|l| {
                                serde_json::json!({
                                    "sku": l.sku.as_str(), "name": l.name.as_str(),
                                    "quantity": l.quantity.get(), "line_total": l.paid().amount(),
                                })
                            })
                            .collect();
                        slot.insert(SalesOrderRow {
                            order_id,
                            day: placed_at.date_naive(),
                            currency: total.currency().as_str().to_owned(),
                            total_amount: total.amount(),
                            lines: serde_json::Value::Array(lines),
                            status: "placed".to_owned(),
                            confirmed: false,
                            discount_amount: discounts.iter().map(|d| d.amount.amount()).sum(),
                            tax_amount: tax.map_or(0, |t| t.amount()),
                            shipping_amount: shipping.map_or(0, |s| s.total.amount()),
                        });
                        changed.insert(order_id);
                    }
                    continue;
                }
                OrderEvent::OrderConfirmed => {
                    // Revenue is recognised once, on the order's day.
                    if let Some(o) = orders.get_mut(&order_id).filter(|o| !o.confirmed) {
                        o.confirmed = true;
                        let lines = o.lines.as_array().cloned().unwrap_or_default();
                        let day = daily.entry((o.day, o.currency.clone())).or_default();
                        day.orders += 1;
                        add(event, &mut day.revenue_amount, o.total_amount)?;
                        add(event, &mut day.discount_amount, o.discount_amount)?;
                        add(event, &mut day.tax_amount, o.tax_amount)?;
                        add(event, &mut day.shipping_amount, o.shipping_amount)?;
                        for line in &lines {
                            let units = line["quantity"].as_i64().unwrap_or(0);
                            add(event, &mut day.units, units)?;
                            let sku = line["sku"].as_str().unwrap_or_default().to_owned();
                            let entry = by_sku.entry((o.day, sku, o.currency.clone())).or_default();
                            entry.name = line["name"].as_str().unwrap_or_default().to_owned();
                            add(event, &mut entry.units, units)?;
                            let total = line["line_total"].as_i64().unwrap_or(0);
                            add(event, &mut entry.revenue_amount, total)?;
                        }
                    }
                    "confirmed".to_owned()
                }
                OrderEvent::OrderRefunded {
                    amount,
                    status,
                    lines,
                    ..
                } => {
                    let day = event.recorded_at.date_naive();
                    let currency = amount.currency().as_str().to_owned();
                    add(
                        event,
                        refunds.entry((day, currency.clone())).or_default(),
                        amount.amount(),
                    )?;
                    let names = orders
                        .get(&order_id)
                        .and_then(|o| o.lines.as_array().cloned())
                        .unwrap_or_default();
                    for line in lines {
                        let sku = line.sku.as_str().to_owned();
                        let entry = sku_refunds
                            .entry((day, sku.clone(), currency.clone()))
                            .or_default();
                        entry.name = names
                            .iter()
                            .find(|l| l["sku"].as_str() == Some(sku.as_str()))
                            .and_then(|l| l["name"].as_str())
                            .unwrap_or_default()
                            .to_owned();
                        add(event, &mut entry.units, i64::from(line.quantity.get()))?;
                        add(event, &mut entry.revenue_amount, line.amount.amount())?;
                    }
                    tag(&status)
                }
                OrderEvent::OrderRemainderCancelled { status, .. } => tag(&status),
                OrderEvent::OrderLineReserved { status, .. } => tag(&status),
                OrderEvent::OrderShipped { status, .. } => tag(&status),
                OrderEvent::OrderLineRejected { .. } => "stock_rejected".to_owned(),
                OrderEvent::OrderPaymentAuthorized { .. } => "payment_authorized".to_owned(),
                OrderEvent::OrderPaymentDeclined { .. } => "payment_declined".to_owned(),
                OrderEvent::OrderCancelled { .. } => "cancelled".to_owned(),
                OrderEvent::OrderDelivered { status, .. } => tag(&status),
                OrderEvent::OrderPaymentCaptured { .. }
                | OrderEvent::OrderPaymentVoided { .. }
                | OrderEvent::OrderReturnRequested { .. }
                | OrderEvent::OrderReturnReceived { .. }
                | OrderEvent::OrderRefundRequested { .. }
                | OrderEvent::OrderRefundFailed { .. }
                | OrderEvent::OrderPersonalDataErased { .. } => continue,
            };
            if let Some(o) = orders.get_mut(&order_id) {
                o.status = status;
                changed.insert(order_id);
            }
        }

        let upserts: Vec<&SalesOrderRow> = changed.iter().filter_map(|id| orders.get(id)).collect();
        rows::upsert(conn, "sales_orders", &["order_id"], &upserts).await?;
        let daily: Vec<serde_json::Value> = daily
            .into_iter()
            .map(|((day, currency), d)| {
                serde_json::json!({"day": day, "currency": currency, "orders": d.orders,
                    "units": d.units, "revenue_amount": d.revenue_amount,
                    "discount_amount": d.discount_amount, "tax_amount": d.tax_amount,
                    "shipping_amount": d.shipping_amount})
            })
            .collect();
        if !daily.is_empty() {
            sqlx::query(
                "INSERT INTO sales_daily (day, currency, orders, units, revenue_amount, discount_amount, \
                   tax_amount, shipping_amount) \
                 SELECT day, currency, orders, units, revenue_amount, discount_amount, tax_amount, \
                   shipping_amount \
                 FROM jsonb_populate_recordset(NULL::sales_daily, $1) \
                 ON CONFLICT (day, currency) DO UPDATE SET orders = sales_daily.orders + EXCLUDED.orders, \
                   units = sales_daily.units + EXCLUDED.units, \
                   revenue_amount = sales_daily.revenue_amount + EXCLUDED.revenue_amount, \
                   discount_amount = sales_daily.discount_amount + EXCLUDED.discount_amount, \
                   tax_amount = sales_daily.tax_amount + EXCLUDED.tax_amount, \
                   shipping_amount = sales_daily.shipping_amount + EXCLUDED.shipping_amount",
            )
            .bind(serde_json::Value::Array(daily))
            .execute(&mut *conn)
            .await?;
        }
        let by_sku: Vec<serde_json::Value> = by_sku
            .into_iter()
            .map(|((day, sku, currency), d)| {
                serde_json::json!({"day": day, "sku": sku, "currency": currency, "name": d.name,
                    "units": d.units, "revenue_amount": d.revenue_amount})
            })
            .collect();
        if !by_sku.is_empty() {
            sqlx::query(
                "INSERT INTO sales_by_sku (day, sku, currency, name, units, revenue_amount)                  SELECT day, sku, currency, name, units, revenue_amount                  FROM jsonb_populate_recordset(NULL::sales_by_sku, $1)                  ON CONFLICT (day, sku, currency) DO UPDATE SET name = EXCLUDED.name,                    units = sales_by_sku.units + EXCLUDED.units,                    revenue_amount = sales_by_sku.revenue_amount + EXCLUDED.revenue_amount",
            )
            .bind(serde_json::Value::Array(by_sku))
            .execute(&mut *conn)
            .await?;
        }
        let refunds: Vec<serde_json::Value> = refunds
            .into_iter()
            .map(|((day, currency), refunded)| {
                serde_json::json!({"day": day, "currency": currency, "refunded_amount": refunded})
            })
            .collect();
        if !refunds.is_empty() {
            sqlx::query(
                "INSERT INTO sales_daily (day, currency, refunded_amount) \
                 SELECT day, currency, refunded_amount \
                 FROM jsonb_populate_recordset(NULL::sales_daily, $1) \
                 ON CONFLICT (day, currency) DO UPDATE \
                   SET refunded_amount = sales_daily.refunded_amount + EXCLUDED.refunded_amount",
            )
            .bind(serde_json::Value::Array(refunds))
            .execute(&mut *conn)
            .await?;
        }
        let sku_refunds: Vec<serde_json::Value> = sku_refunds
            .into_iter()
            .map(|((day, sku, currency), d)| {
                serde_json::json!({"day": day, "sku": sku, "currency": currency, "name": d.name,
                    "refunded_units": d.units, "refunded_amount": d.revenue_amount})
            })
            .collect();
        if !sku_refunds.is_empty() {
            sqlx::query(
                "INSERT INTO sales_by_sku (day, sku, currency, name, refunded_units, refunded_amount) \
                 SELECT day, sku, currency, name, refunded_units, refunded_amount \
                 FROM jsonb_populate_recordset(NULL::sales_by_sku, $1) \
                 ON CONFLICT (day, sku, currency) DO UPDATE \
                   SET refunded_units = sales_by_sku.refunded_units + EXCLUDED.refunded_units, \
                       refunded_amount = sales_by_sku.refunded_amount + EXCLUDED.refunded_amount",
            )
            .bind(serde_json::Value::Array(sku_refunds))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// `total += value`, or the event is one whose sums the read model cannot hold (it is
/// parked, ADR 0012; the column would overflow just the same).
fn add(event: &RecordedEvent, total: &mut i64, value: i64) -> Result<(), ProjectionError> {
    *total = total
        .checked_add(value)
        .ok_or_else(|| ProjectionError::Invalid {
            event_id: event.event_id,
            reason: format!("a sum overflows: {total} + {value}"),
        })?;
    Ok(())
}

/// A row of `sales_orders`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SalesOrderRow {
    order_id: Uuid,
    day: NaiveDate,
    currency: String,
    total_amount: i64,
    lines: serde_json::Value,
    status: String,
    confirmed: bool,
    /// The promotions' amount inside `total_amount`.
    discount_amount: i64,
    /// The tax inside `total_amount`.
    tax_amount: i64,
    /// The shipping inside `total_amount`.
    shipping_amount: i64,
}

/// What a batch adds to a day's sales.
#[derive(Debug, Default)]
struct DailyDelta {
    orders: i64,
    units: i64,
    revenue_amount: i64,
    discount_amount: i64,
    tax_amount: i64,
    shipping_amount: i64,
}

/// What a batch adds to a SKU's sales on a day.
#[derive(Debug, Default)]
struct SkuDelta {
    name: String,
    units: i64,
    revenue_amount: i64,
}
