//! Sales analytics: revenue and units per day and per SKU, refunds, orders by status.
//!
//! Revenue is recognised when an order is confirmed (its total, on the day it was placed, in
//! its currency); refunds are counted on the order's day too, so `revenue - refunded` is the
//! day's net. Sums are exact under redelivery because the runtime applies each event once.

use mercato_aggregates::order::OrderEvent;
use mercato_event_store::RecordedEvent;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::decode::{decode, tag};
use crate::error::ProjectionError;
use crate::runtime::Projection;

/// Back-office sales figures.
pub struct Sales;

#[async_trait::async_trait]
impl Projection for Sales {
    fn name(&self) -> &'static str {
        "sales"
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
            "OrderCancelled",
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
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let order_id =
            Uuid::parse_str(&event.aggregate_id).map_err(|e| ProjectionError::Invalid {
                event_id: event.event_id,
                reason: format!("order id: {e}"),
            })?;
        let status = match decode::<OrderEvent>(event)? {
            OrderEvent::OrderPlaced {
                lines,
                total,
                placed_at,
                ..
            } => {
                let lines: Vec<serde_json::Value> = lines
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "sku": l.sku.as_str(), "name": l.name.as_str(),
                            "quantity": l.quantity.get(), "line_total": l.line_total.amount(),
                        })
                    })
                    .collect();
                sqlx::query(
                    "INSERT INTO sales_orders (order_id, day, currency, total_amount, lines, status) \
                     VALUES ($1, ($2 AT TIME ZONE 'UTC')::date, $3, $4, $5, 'placed') ON CONFLICT DO NOTHING",
                )
                .bind(order_id)
                .bind(placed_at)
                .bind(total.currency().as_str())
                .bind(total.amount())
                .bind(serde_json::Value::Array(lines))
                .execute(conn)
                .await?;
                return Ok(());
            }
            OrderEvent::OrderConfirmed => {
                confirm(conn, order_id).await?;
                "confirmed".to_owned()
            }
            OrderEvent::OrderRefunded { amount, status, .. } => {
                sqlx::query(
                    "UPDATE sales_daily d SET refunded_amount = d.refunded_amount + $2 \
                     FROM sales_orders o WHERE o.order_id = $1 AND d.day = o.day AND d.currency = o.currency",
                )
                .bind(order_id)
                .bind(amount.amount())
                .execute(&mut *conn)
                .await?;
                tag(&status)
            }
            OrderEvent::OrderLineReserved { status, .. } => tag(&status),
            OrderEvent::OrderShipped { status, .. } => tag(&status),
            OrderEvent::OrderLineRejected { .. } => "stock_rejected".to_owned(),
            OrderEvent::OrderPaymentAuthorized { .. } => "payment_authorized".to_owned(),
            OrderEvent::OrderPaymentDeclined { .. } => "payment_declined".to_owned(),
            OrderEvent::OrderCancelled { .. } => "cancelled".to_owned(),
            OrderEvent::OrderDelivered => "delivered".to_owned(),
            OrderEvent::OrderPaymentCaptured { .. } => return Ok(()),
        };
        sqlx::query("UPDATE sales_orders SET status = $2 WHERE order_id = $1")
            .bind(order_id)
            .bind(status)
            .execute(conn)
            .await?;
        Ok(())
    }
}

async fn confirm(conn: &mut PgConnection, order_id: Uuid) -> Result<(), ProjectionError> {
    let Some(row) = sqlx::query(
        "UPDATE sales_orders SET confirmed = true WHERE order_id = $1 AND NOT confirmed \
         RETURNING day, currency, total_amount, lines",
    )
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(());
    };
    let day: chrono::NaiveDate = row.try_get("day")?;
    let currency: String = row.try_get("currency")?;
    let total: i64 = row.try_get("total_amount")?;
    let lines: serde_json::Value = row.try_get("lines")?;
    let lines = lines.as_array().cloned().unwrap_or_default();
    let units: i64 = lines
        .iter()
        .map(|l| l["quantity"].as_i64().unwrap_or(0))
        .sum();
    sqlx::query(
        "INSERT INTO sales_daily (day, currency, orders, units, revenue_amount) VALUES ($1, $2, 1, $3, $4) \
         ON CONFLICT (day, currency) DO UPDATE SET orders = sales_daily.orders + 1, \
           units = sales_daily.units + EXCLUDED.units, revenue_amount = sales_daily.revenue_amount + EXCLUDED.revenue_amount",
    )
    .bind(day)
    .bind(&currency)
    .bind(units)
    .bind(total)
    .execute(&mut *conn)
    .await?;
    for line in &lines {
        sqlx::query(
            "INSERT INTO sales_by_sku (day, sku, currency, name, units, revenue_amount) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (day, sku, currency) DO UPDATE SET name = EXCLUDED.name, \
               units = sales_by_sku.units + EXCLUDED.units, revenue_amount = sales_by_sku.revenue_amount + EXCLUDED.revenue_amount",
        )
        .bind(day)
        .bind(line["sku"].as_str().unwrap_or_default())
        .bind(&currency)
        .bind(line["name"].as_str().unwrap_or_default())
        .bind(line["quantity"].as_i64().unwrap_or(0))
        .bind(line["line_total"].as_i64().unwrap_or(0))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
