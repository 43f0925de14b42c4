//! Recommendations: which SKUs were bought together, and which sell best in a category.
//!
//! - `recommendation_pending_orders`: the SKUs and quantities of an order from `OrderPlaced`
//!   (only `lines[].sku` and `lines[].quantity`, so fields later versions add to the event do
//!   not matter here), kept until the order is confirmed or cancelled, then deleted.
//! - `recommendation_pairs`: for every two distinct SKUs of a confirmed order, one more order
//!   in both directions (`(a, b)` and `(b, a)`), so "bought with X" is one index range.
//! - `recommendation_products`: every product's current category (from the product's events)
//!   and the units of it sold in confirmed orders. "Popular in a category" ranks the products
//!   now in that category by their units, so a product that moves category takes its sales
//!   with it.
//!
//! An order counts once, when it is confirmed: an order cancelled before confirmation counts
//! nothing (its pending lines are dropped). A cancellation, a return or a refund *after*
//! confirmation is deliberately left counted: the shopper still chose those products
//! together, which is what the counts are evidence of, and the pending lines are gone by then
//! (keeping every order's lines forever only to subtract them again is not worth it).

use std::collections::{BTreeMap, HashMap, HashSet};

use mercato_aggregates::order::OrderEvent;
use mercato_aggregates::product::ProductEvent;
use mercato_event_store::RecordedEvent;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{distinct, rows};
use crate::decode::decode;
use crate::error::ProjectionError;
use crate::projection::Projection;

/// "Bought together" and "popular in this category", from confirmed orders.
pub struct Recommendations;

#[async_trait::async_trait]
impl Projection for Recommendations {
    fn name(&self) -> &'static str {
        "recommendations"
    }
    fn version(&self) -> i32 {
        1
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Product", "Order"]
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[
            "ProductCreated",
            "ProductDetailsUpdated",
            "OrderPlaced",
            "OrderConfirmed",
            "OrderCancelled",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &[
            "recommendation_pending_orders",
            "recommendation_pairs",
            "recommendation_products",
        ]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let order_ids = distinct(
            events
                .iter()
                .filter(|e| e.aggregate_type == "Order")
                .map(|e| e.aggregate_id.clone()),
        );
        let mut pending: HashMap<Uuid, PendingOrderRow> = rows::load::<PendingOrderRow>(
            conn,
            "recommendation_pending_orders",
            "order_id",
            "uuid",
            &order_ids,
        )
        .await?
        .into_iter()
        .map(|o| (o.order_id, o))
        .collect();
        let mut placed: HashSet<Uuid> = HashSet::new();
        let mut settled: HashSet<Uuid> = HashSet::new();
        let mut categories: HashMap<String, Vec<String>> = HashMap::new();
        let mut units: HashMap<String, i64> = HashMap::new();
        let mut pairs: HashMap<(String, String), i64> = HashMap::new();

        for event in events {
            if event.aggregate_type == "Product" {
                match decode::<ProductEvent>(event)? {
                    ProductEvent::ProductCreated { details, .. }
                    | ProductEvent::ProductDetailsUpdated { details } => {
                        categories.insert(
                            event.aggregate_id.clone(),
                            details.category.segments().to_vec(),
                        );
                    }
                    _ => {}
                }
                continue;
            }
            let order_id =
                Uuid::parse_str(&event.aggregate_id).map_err(|e| ProjectionError::Invalid {
                    event_id: event.event_id,
                    reason: format!("order id: {e}"),
                })?;
            // Only the variants read here are named: the order's other events (and fields
            // other engineers add to them) never concern this read model.
            match decode::<OrderEvent>(event)? {
                OrderEvent::OrderPlaced { lines, .. } => {
                    let mut quantities: BTreeMap<String, i64> = BTreeMap::new();
                    for line in &lines {
                        let total = quantities.entry(line.sku.as_str().to_owned()).or_default();
                        add(event, total, i64::from(line.quantity.get()))?;
                    }
                    let lines = quantities
                        .into_iter()
                        .map(|(sku, quantity)| PendingLine { sku, quantity })
                        .collect();
                    pending.insert(order_id, PendingOrderRow { order_id, lines });
                    placed.insert(order_id);
                }
                OrderEvent::OrderConfirmed => {
                    // The pending row is the guard: an order counts once, when confirmed.
                    let Some(order) = pending.remove(&order_id) else {
                        continue;
                    };
                    settled.insert(order_id);
                    for line in &order.lines {
                        add(
                            event,
                            units.entry(line.sku.clone()).or_default(),
                            line.quantity,
                        )?;
                        for other in &order.lines {
                            if other.sku != line.sku {
                                *pairs
                                    .entry((line.sku.clone(), other.sku.clone()))
                                    .or_default() += 1;
                            }
                        }
                    }
                }
                // Cancelled before confirmation: the order counts nothing.
                OrderEvent::OrderCancelled { .. } if pending.remove(&order_id).is_some() => {
                    settled.insert(order_id);
                }
                _ => {}
            }
        }

        let inserted: Vec<&PendingOrderRow> =
            placed.iter().filter_map(|id| pending.get(id)).collect();
        rows::upsert(
            conn,
            "recommendation_pending_orders",
            &["order_id"],
            &inserted,
        )
        .await?;
        let settled: Vec<serde_json::Value> = settled
            .into_iter()
            .map(|id| serde_json::json!({ "order_id": id }))
            .collect();
        rows::delete(
            conn,
            "recommendation_pending_orders",
            &[("order_id", "uuid")],
            &settled,
        )
        .await?;

        if !categories.is_empty() {
            let (skus, paths): (Vec<String>, Vec<serde_json::Value>) = categories
                .into_iter()
                .map(|(sku, path)| (sku, serde_json::json!(path)))
                .unzip();
            // A text[][] parameter cannot hold paths of different lengths: each travels as
            // a JSON array.
            sqlx::query(
                "INSERT INTO recommendation_products (sku, category) \
                 SELECT s, ARRAY(SELECT jsonb_array_elements_text(c)) \
                 FROM unnest($1::text[], $2::jsonb[]) AS k(s, c) \
                 ON CONFLICT (sku) DO UPDATE SET category = EXCLUDED.category",
            )
            .bind(&skus)
            .bind(&paths)
            .execute(&mut *conn)
            .await?;
        }
        if !units.is_empty() {
            let (skus, sold): (Vec<String>, Vec<i64>) = units.into_iter().unzip();
            // A sale may be applied before its product's creation was (another aggregate):
            // the row then waits with an empty category for it.
            sqlx::query(
                "INSERT INTO recommendation_products (sku, units) \
                 SELECT * FROM unnest($1::text[], $2::bigint[]) \
                 ON CONFLICT (sku) DO UPDATE \
                   SET units = recommendation_products.units + EXCLUDED.units",
            )
            .bind(&skus)
            .bind(&sold)
            .execute(&mut *conn)
            .await?;
        }
        if !pairs.is_empty() {
            let mut skus = Vec::with_capacity(pairs.len());
            let mut others = Vec::with_capacity(pairs.len());
            let mut orders = Vec::with_capacity(pairs.len());
            for ((sku, other), n) in pairs {
                skus.push(sku);
                others.push(other);
                orders.push(n);
            }
            sqlx::query(
                "INSERT INTO recommendation_pairs (sku, other_sku, orders) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) \
                 ON CONFLICT (sku, other_sku) DO UPDATE \
                   SET orders = recommendation_pairs.orders + EXCLUDED.orders",
            )
            .bind(&skus)
            .bind(&others)
            .bind(&orders)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// `total += value`, or the event is one whose sums the read model cannot hold (parked).
fn add(event: &RecordedEvent, total: &mut i64, value: i64) -> Result<(), ProjectionError> {
    *total = total
        .checked_add(value)
        .ok_or_else(|| ProjectionError::Invalid {
            event_id: event.event_id,
            reason: format!("a sum overflows: {total} + {value}"),
        })?;
    Ok(())
}

/// A row of `recommendation_pending_orders`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingOrderRow {
    order_id: Uuid,
    lines: Vec<PendingLine>,
}

/// A SKU of a pending order and its units (lines of the same SKU summed).
#[derive(Debug, Serialize, Deserialize)]
struct PendingLine {
    sku: String,
    quantity: i64,
}
