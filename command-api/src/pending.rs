//! Checkouts between their two steps (`CheckOutCart`, then `PlaceOrder`).
//!
//! `CartCheckedOut` carries neither the shipping address, the payment token nor a guest's
//! email, so a request that died after freezing the cart would leave it checked out with no
//! order. The request therefore records them in `command.pending_checkouts` before the first
//! step, and the order process's poller finishes any row older than a grace period: it
//! places the order from the frozen cart under the request's write id
//! (`order_already_exists` means the request, a retry or an earlier sweep got there first).
//! The row holds personal data, so it is deleted as soon as the order exists, and rows whose
//! cart was never checked out are dropped after [`ABANDONED_AFTER`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use mercato_aggregates::cart::{Cart, CartError, CartStatus};
use mercato_aggregates::order::{NewOrderLine, OrderError};
use mercato_aggregates::values::{Email, OrderId, PaymentMethodToken, PostalAddress};
use mercato_nats::HandlerError;
use sqlx::PgPool;
use uuid::Uuid;

use crate::exec::WriteContext;
use crate::services::checkout::{place_order, Buyer, Checkout};
use crate::stores::Stores;

/// A row whose cart is still not checked out after this long belongs to a request that
/// failed before (or at) `CheckOutCart`; far above any request's run time.
pub(crate) const ABANDONED_AFTER: Duration = Duration::from_secs(10 * 60);

/// What a checkout request needs to place its order, recorded before the cart is frozen.
#[derive(Debug, Clone)]
pub(crate) struct PendingCheckout {
    pub cart_id: Uuid,
    pub order_id: Uuid,
    pub buyer: Buyer,
    /// The request's write id (correlation id of the order's first events).
    pub request_id: Uuid,
    pub shipping_address: PostalAddress,
    pub payment_token: PaymentMethodToken,
}

/// Records (or, for a later attempt on a cart not yet checked out, replaces) the checkout.
pub(crate) async fn record(pool: &PgPool, p: &PendingCheckout) -> Result<(), sqlx::Error> {
    let address =
        serde_json::to_value(&p.shipping_address).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let (customer_id, guest_email) = match &p.buyer {
        Buyer::Customer(id) => (Some(*id), None),
        Buyer::Guest(email) => (None, Some(email.as_str())),
    };
    sqlx::query(
        "INSERT INTO command.pending_checkouts \
           (cart_id, order_id, customer_id, guest_email, request_id, shipping_address, payment_token) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (cart_id) DO UPDATE SET customer_id = EXCLUDED.customer_id, \
           guest_email = EXCLUDED.guest_email, request_id = EXCLUDED.request_id, \
           shipping_address = EXCLUDED.shipping_address, \
           payment_token = EXCLUDED.payment_token, created_at = now()",
    )
    .bind(p.cart_id)
    .bind(p.order_id)
    .bind(customer_id)
    .bind(guest_email)
    .bind(p.request_id)
    .bind(address)
    .bind(p.payment_token.as_str())
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes the cart's row (its order exists, or the checkout failed).
pub(crate) async fn forget(pool: &PgPool, cart_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM command.pending_checkouts WHERE cart_id = $1")
        .bind(cart_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Deletes the row only if `request_id` still owns it (a concurrent attempt may have
/// replaced it and be about to check the cart out).
pub(crate) async fn forget_own(
    pool: &PgPool,
    cart_id: Uuid,
    request_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM command.pending_checkouts WHERE cart_id = $1 AND request_id = $2")
        .bind(cart_id)
        .bind(request_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// The order lines of a checked-out cart.
pub(crate) fn order_lines(cart: &Cart) -> Result<Vec<NewOrderLine>, CartError> {
    Ok(cart
        .lines()?
        .into_iter()
        .map(|l| NewOrderLine {
            sku: l.sku,
            name: l.name,
            quantity: l.quantity,
            unit_price: l.unit_price,
        })
        .collect())
}

/// Finishes the checkouts recorded more than `grace` ago; returns how many orders it placed.
/// A row that fails is logged and retried on the next poll, without holding up the others.
pub(crate) async fn sweep(stores: &Stores, grace: Duration) -> Result<usize, HandlerError> {
    let grace = chrono::Duration::from_std(grace)?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT cart_id, order_id, customer_id, guest_email, request_id, shipping_address, payment_token, created_at \
         FROM command.pending_checkouts WHERE created_at < now() - $1 ORDER BY created_at LIMIT 100",
    )
    .bind(grace)
    .fetch_all(&stores.pool)
    .await?;
    let mut placed = 0;
    for row in rows {
        let cart_id = row.cart_id;
        match finish(stores, row).await {
            Ok(true) => placed += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(cart_id = %cart_id, error = %e, "finishing a pending checkout failed")
            }
        }
    }
    Ok(placed)
}

#[derive(sqlx::FromRow)]
struct Row {
    cart_id: Uuid,
    order_id: Uuid,
    customer_id: Option<Uuid>,
    guest_email: Option<String>,
    request_id: Uuid,
    shipping_address: serde_json::Value,
    payment_token: String,
    created_at: DateTime<Utc>,
}

/// Places the row's order if its cart is checked out; `true` if this call placed it.
async fn finish(stores: &Stores, row: Row) -> Result<bool, HandlerError> {
    let (cart, _) = stores.carts.load(&row.cart_id.to_string()).await?;
    let order_id = OrderId::new(row.order_id);
    if cart.status() != CartStatus::CheckedOut || cart.order_id() != Some(order_id) {
        let age = Utc::now() - row.created_at;
        if age > chrono::Duration::from_std(ABANDONED_AFTER)? {
            tracing::info!(cart_id = %row.cart_id, "dropping a checkout that never checked its cart out");
            forget_own(&stores.pool, row.cart_id, row.request_id).await?;
        }
        return Ok(false);
    }
    let buyer = match (row.customer_id, row.guest_email) {
        (Some(id), _) => Buyer::Customer(id),
        (None, Some(email)) => Buyer::Guest(Email::new(email)?),
        (None, None) => return Err("a pending checkout has neither a customer nor a guest".into()),
    };
    let checkout = Checkout {
        buyer,
        shipping_address: serde_json::from_value(row.shipping_address)?,
        payment_token: PaymentMethodToken::new(row.payment_token)?,
    };
    let ctx = WriteContext {
        write_id: row.request_id,
        check_prior: true,
        actor: "system:process".to_owned(),
        causation_id: None,
    };
    let placed = match place_order(stores, &cart, order_id, &checkout, &ctx).await {
        Ok(w) => w.appended > 0,
        Err(mercato_event_store::EventStoreError::Domain(OrderError::AlreadyExists)) => false,
        Err(e) => return Err(Box::new(e)),
    };
    forget(&stores.pool, row.cart_id).await?;
    if placed {
        metrics::counter!("mercato_checkout_recovered_total").increment(1);
        tracing::warn!(order_id = %row.order_id, cart_id = %row.cart_id, "placed the order of a checkout whose request died");
    }
    Ok(placed)
}
