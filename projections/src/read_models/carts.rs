//! Carts: lines and totals of every cart.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use mercato_aggregates::cart::CartEvent;
use mercato_event_store::RecordedEvent;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{distinct, rows};
use crate::decode::decode;
use crate::error::ProjectionError;
use crate::projection::Projection;

/// Cart view.
pub struct Carts;

#[async_trait::async_trait]
impl Projection for Carts {
    fn name(&self) -> &'static str {
        "carts"
    }
    fn version(&self) -> i32 {
        1
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Cart"]
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[
            "CartOpened",
            "CartItemAdded",
            "CartItemQuantityChanged",
            "CartItemRemoved",
            "CartCouponApplied",
            "CartCouponRemoved",
            "CartCheckedOut",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["carts", "cart_lines"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let ids = distinct(events.iter().map(|e| e.aggregate_id.clone()));
        let mut carts: HashMap<Uuid, CartRow> =
            rows::load::<CartRow>(conn, "carts", "cart_id", "uuid", &ids)
                .await?
                .into_iter()
                .map(|c| (c.cart_id, c))
                .collect();
        // `None`: the line was removed.
        let mut lines: HashMap<(Uuid, String), Option<LineRow>> =
            rows::load::<LineRow>(conn, "cart_lines", "cart_id", "uuid", &ids)
                .await?
                .into_iter()
                .map(|l| ((l.cart_id, l.sku.clone()), Some(l)))
                .collect();
        let mut changed_carts = HashSet::new();
        let mut changed_lines = HashSet::new();
        for event in events {
            let cart_id =
                Uuid::parse_str(&event.aggregate_id).map_err(|e| ProjectionError::Invalid {
                    event_id: event.event_id,
                    reason: format!("cart id: {e}"),
                })?;
            let at = event.recorded_at;
            let mut new_total = None;
            match decode::<CartEvent>(event)? {
                CartEvent::CartOpened {
                    customer_id,
                    currency,
                    ..
                } => {
                    if let Entry::Vacant(slot) = carts.entry(cart_id) {
                        slot.insert(CartRow {
                            cart_id,
                            customer_id: customer_id.map(|c| c.as_uuid()),
                            currency: currency.as_str().to_owned(),
                            status: "open".to_owned(),
                            total_amount: 0,
                            order_id: None,
                            opened_at: at,
                            updated_at: at,
                            coupons: Vec::new(),
                            pricing: None,
                        });
                        changed_carts.insert(cart_id);
                    }
                }
                CartEvent::CartItemAdded {
                    sku,
                    name,
                    category,
                    brand,
                    weight_grams,
                    unit_price,
                    line_quantity,
                    line_total,
                    cart_total,
                    ..
                } => {
                    let key = (cart_id, sku.as_str().to_owned());
                    let slot = lines.entry(key.clone()).or_insert(None);
                    let added_at = slot.as_ref().map_or(at, |l| l.added_at);
                    *slot = Some(LineRow {
                        cart_id,
                        sku: key.1.clone(),
                        name: name.as_str().to_owned(),
                        quantity: line_quantity.get() as i32,
                        unit_price_amount: unit_price.amount(),
                        line_total_amount: line_total.amount(),
                        added_at,
                        category: category.map(Vec::from),
                        brand: brand.map(String::from),
                        weight_grams: weight_grams.and_then(|w| i32::try_from(w).ok()),
                    });
                    changed_lines.insert(key);
                    new_total = Some(cart_total.amount());
                }
                CartEvent::CartItemQuantityChanged {
                    sku,
                    quantity,
                    line_total,
                    cart_total,
                } => {
                    let key = (cart_id, sku.as_str().to_owned());
                    if let Some(Some(line)) = lines.get_mut(&key) {
                        line.quantity = quantity.get() as i32;
                        line.line_total_amount = line_total.amount();
                        changed_lines.insert(key);
                    }
                    new_total = Some(cart_total.amount());
                }
                CartEvent::CartItemRemoved { sku, cart_total } => {
                    let key = (cart_id, sku.as_str().to_owned());
                    lines.insert(key.clone(), None);
                    changed_lines.insert(key);
                    new_total = Some(cart_total.amount());
                }
                CartEvent::CartCouponApplied { code, promotion_id } => {
                    if let Some(cart) = carts.get_mut(&cart_id) {
                        if !cart.coupons.iter().any(|c| c.code == code.as_str()) {
                            cart.coupons.push(CouponRow {
                                code: code.as_str().to_owned(),
                                promotion_id: promotion_id.as_uuid(),
                            });
                        }
                        cart.updated_at = at;
                        changed_carts.insert(cart_id);
                    }
                }
                CartEvent::CartCouponRemoved { code } => {
                    if let Some(cart) = carts.get_mut(&cart_id) {
                        cart.coupons.retain(|c| c.code != code.as_str());
                        cart.updated_at = at;
                        changed_carts.insert(cart_id);
                    }
                }
                CartEvent::CartCheckedOut {
                    order_id,
                    customer_id,
                    total,
                    pricing,
                    ..
                } => {
                    if let Some(cart) = carts.get_mut(&cart_id) {
                        cart.pricing = pricing
                            .map(serde_json::to_value)
                            .transpose()
                            .map_err(|e| ProjectionError::Payload(e.to_string()))?;
                        cart.status = "checked_out".to_owned();
                        cart.order_id = Some(order_id.as_uuid());
                        cart.customer_id = customer_id.map(|c| c.as_uuid()).or(cart.customer_id);
                        cart.total_amount = total.amount();
                        cart.updated_at = at;
                        changed_carts.insert(cart_id);
                    }
                }
            }
            if let (Some(total), Some(cart)) = (new_total, carts.get_mut(&cart_id)) {
                cart.total_amount = total;
                cart.updated_at = at;
                changed_carts.insert(cart_id);
            }
        }
        let upserts: Vec<&CartRow> = changed_carts
            .iter()
            .filter_map(|id| carts.get(id))
            .collect();
        rows::upsert(conn, "carts", &["cart_id"], &upserts).await?;
        let (kept, removed): (Vec<_>, Vec<_>) = changed_lines
            .iter()
            .map(|key| (key, lines.get(key).and_then(Option::as_ref)))
            .partition(|(_, line)| line.is_some());
        let removed: Vec<LineKey> = removed
            .into_iter()
            .map(|((cart_id, sku), _)| LineKey {
                cart_id: *cart_id,
                sku: sku.clone(),
            })
            .collect();
        rows::delete(
            conn,
            "cart_lines",
            &[("cart_id", "uuid"), ("sku", "text")],
            &removed,
        )
        .await?;
        let kept: Vec<&LineRow> = kept.into_iter().filter_map(|(_, line)| line).collect();
        rows::upsert(conn, "cart_lines", &["cart_id", "sku"], &kept).await
    }
}

/// A row of `carts`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CartRow {
    cart_id: Uuid,
    customer_id: Option<Uuid>,
    currency: String,
    status: String,
    total_amount: i64,
    order_id: Option<Uuid>,
    opened_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The coupon codes added.
    coupons: Vec<CouponRow>,
    /// The `Priced` the cart was checked out with.
    pricing: Option<serde_json::Value>,
}

/// A coupon code in a cart.
#[derive(Debug, Serialize, Deserialize)]
struct CouponRow {
    code: String,
    promotion_id: Uuid,
}

/// A row of `cart_lines`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineRow {
    cart_id: Uuid,
    sku: String,
    name: String,
    quantity: i32,
    unit_price_amount: i64,
    line_total_amount: i64,
    added_at: DateTime<Utc>,
    /// Captured with the line (category promotions match on it).
    category: Option<Vec<String>>,
    /// Captured with the line (brand promotions match on it).
    brand: Option<String>,
    /// Captured with the line (weight-based shipping rates use it).
    weight_grams: Option<i32>,
}

/// The key of a `cart_lines` row.
#[derive(Debug, Serialize)]
struct LineKey {
    cart_id: Uuid,
    sku: String,
}
