//! Checkouts between their two steps (`CheckOutCart`, then `PlaceOrder`): the
//! `command.pending_checkouts` table.
//!
//! `CartCheckedOut` carries neither the shipping address, the payment token nor a guest's
//! email, so a request that died after freezing the cart would leave it checked out with no
//! order. The request therefore records them here before the first step, and the checkout
//! service's sweeper (run by the order process's poller) places the order of any row older
//! than a grace period. The row holds personal data, so it is deleted as soon as the order
//! exists, and rows whose cart was never checked out are dropped after [`ABANDONED_AFTER`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use mercato_aggregates::cart::{Cart, CartError};
use mercato_aggregates::order::NewOrderLine;
use mercato_aggregates::values::{Email, PaymentMethodToken, PostalAddress};
use sqlx::PgPool;
use uuid::Uuid;

/// A row whose cart is still not checked out after this long belongs to a request that
/// failed before (or at) `CheckOutCart`; far above any request's run time.
pub(crate) const ABANDONED_AFTER: Duration = Duration::from_secs(10 * 60);

/// Who buys: a signed-in customer, or a guest known by their email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Buyer {
    /// A registered customer.
    Customer(Uuid),
    /// A guest; order updates go to the email.
    Guest(Email),
}

/// What a checkout needs besides the cart.
#[derive(Debug, Clone)]
pub(crate) struct Checkout {
    pub buyer: Buyer,
    pub shipping_address: PostalAddress,
    pub payment_token: PaymentMethodToken,
}

/// What a checkout request needs to place its order, recorded before the cart is frozen.
#[derive(Debug, Clone)]
pub(crate) struct PendingCheckout {
    pub cart_id: Uuid,
    pub order_id: Uuid,
    /// The request's write id (correlation id of the order's first events).
    pub request_id: Uuid,
    pub checkout: Checkout,
}

/// Records (or, for a later attempt on a cart not yet checked out, replaces) the checkout.
pub(crate) async fn record(pool: &PgPool, p: &PendingCheckout) -> Result<(), sqlx::Error> {
    let address = serde_json::to_value(&p.checkout.shipping_address)
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let (customer_id, guest_email) = match &p.checkout.buyer {
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
    .bind(p.checkout.payment_token.as_str())
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

/// Checkouts recorded more than `grace` ago, oldest first (at most 100), with when each was
/// recorded.
pub(crate) async fn due(
    pool: &PgPool,
    grace: Duration,
) -> Result<Vec<(PendingCheckout, DateTime<Utc>)>, Box<dyn std::error::Error + Send + Sync>> {
    let grace = chrono::Duration::from_std(grace)?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT cart_id, order_id, customer_id, guest_email, request_id, shipping_address, payment_token, created_at \
         FROM command.pending_checkouts WHERE created_at < now() - $1 ORDER BY created_at LIMIT 100",
    )
    .bind(grace)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Row::into_pending).collect()
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

impl Row {
    fn into_pending(
        self,
    ) -> Result<(PendingCheckout, DateTime<Utc>), Box<dyn std::error::Error + Send + Sync>> {
        let buyer = match (self.customer_id, self.guest_email) {
            (Some(id), _) => Buyer::Customer(id),
            (None, Some(email)) => Buyer::Guest(Email::new(email)?),
            // The table's check constraint rules this out.
            (None, None) => {
                return Err("a pending checkout has neither a customer nor a guest".into())
            }
        };
        let pending = PendingCheckout {
            cart_id: self.cart_id,
            order_id: self.order_id,
            request_id: self.request_id,
            checkout: Checkout {
                buyer,
                shipping_address: serde_json::from_value(self.shipping_address)?,
                payment_token: PaymentMethodToken::new(self.payment_token)?,
            },
        };
        Ok((pending, self.created_at))
    }
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
