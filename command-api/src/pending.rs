//! Checkouts between their two steps (`CheckOutCart`, then `PlaceOrder`): the
//! `command.pending_checkouts` table.
//!
//! `CartCheckedOut` carries neither the shipping address, the payment token nor a guest's
//! email, so a request that died after freezing the cart would leave it checked out with no
//! order. The request therefore records them here before the first step, and the checkout
//! service's sweeper (run by the order process's poller) places the order of any row older
//! than a grace period. The row's personal data (a guest's email, the address) is sealed
//! with the buyer's data key (ADR 0013); the row is deleted as soon as the order exists, and
//! rows whose cart was never checked out are dropped after [`ABANDONED_AFTER`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use mercato_aggregates::cart::{Cart, CartError};
use mercato_aggregates::order::NewOrderLine;
use mercato_aggregates::shipping::ShippingMethodId;
use mercato_aggregates::values::{CustomerId, Email, OrderId, PaymentMethodToken, PostalAddress};
use mercato_aggregates::{DataSubject, Personal};
use mercato_event_store::privacy;
use serde::{Deserialize, Serialize};
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
    /// The shipping method chosen (the request prices it into the frozen cart; the sweeper,
    /// which only places the order of a frozen cart, never needs it).
    pub shipping_method: Option<ShippingMethodId>,
}

/// What a checkout request needs to place its order, recorded before the cart is frozen.
#[derive(Debug, Clone)]
pub(crate) struct PendingCheckout {
    pub cart_id: Uuid,
    pub order_id: Uuid,
    /// The request's write id (correlation id of the order's first events).
    pub request_id: Uuid,
    pub checkout: Checkout,
    /// The limited promotions the checkout holds (or is about to hold) a use of.
    pub promotions: Vec<Uuid>,
}

/// The guest email and address of a pending checkout: personal data, sealed in the row.
#[derive(Debug, Serialize, Deserialize)]
struct BuyerDetails {
    guest_email: Option<Email>,
    shipping_address: PostalAddress,
}

/// Whose personal data a checkout's details are: the customer's, or the guest order's.
fn subject(p: &PendingCheckout) -> DataSubject {
    match &p.checkout.buyer {
        Buyer::Customer(id) => DataSubject::Customer(CustomerId::new(*id)),
        Buyer::Guest(_) => DataSubject::GuestOrder(OrderId::new(p.order_id)),
    }
}

/// Records (or, for a later attempt on a cart not yet checked out, replaces) the checkout,
/// its personal data sealed.
pub(crate) async fn record(pool: &PgPool, p: &PendingCheckout) -> Result<(), PendingError> {
    let (customer_id, guest_email) = match &p.checkout.buyer {
        Buyer::Customer(id) => (Some(*id), None),
        Buyer::Guest(email) => (None, Some(email.clone())),
    };
    let details = Personal::new(
        subject(p),
        BuyerDetails {
            guest_email,
            shipping_address: p.checkout.shipping_address.clone(),
        },
    );
    let mut personal =
        serde_json::to_value(&details).map_err(|e| PendingError::Encode(e.to_string()))?;
    privacy::seal(pool, &mut [&mut personal]).await?;
    sqlx::query(
        "INSERT INTO command.pending_checkouts \
           (cart_id, order_id, customer_id, request_id, personal, payment_token, promotions) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (cart_id) DO UPDATE SET customer_id = EXCLUDED.customer_id, \
           guest_email = NULL, shipping_address = NULL, request_id = EXCLUDED.request_id, \
           personal = EXCLUDED.personal, promotions = EXCLUDED.promotions, \
           payment_token = EXCLUDED.payment_token, created_at = now()",
    )
    .bind(p.cart_id)
    .bind(p.order_id)
    .bind(customer_id)
    .bind(p.request_id)
    .bind(personal)
    .bind(p.checkout.payment_token.as_str())
    .bind(&p.promotions)
    .execute(pool)
    .await?;
    Ok(())
}

/// Why a checkout could not be recorded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PendingError {
    /// PostgreSQL failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Sealing failed (the buyer was erased, or keys are misconfigured).
    #[error(transparent)]
    Privacy(#[from] privacy::PrivacyError),
    /// The details do not serialize.
    #[error("cannot encode the checkout: {0}")]
    Encode(String),
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
    let mut rows: Vec<Row> = sqlx::query_as(
        "SELECT cart_id, order_id, customer_id, guest_email, request_id, shipping_address, personal, \
           payment_token, promotions, created_at \
         FROM command.pending_checkouts WHERE created_at < now() - $1 ORDER BY created_at LIMIT 100",
    )
    .bind(grace)
    .fetch_all(pool)
    .await?;
    let mut sealed: Vec<&mut serde_json::Value> = rows
        .iter_mut()
        .filter_map(|r| r.personal.as_mut())
        .collect();
    privacy::reveal(pool, &mut sealed).await?;
    let mut due = Vec::with_capacity(rows.len());
    for row in rows {
        let cart_id = row.cart_id;
        match row.into_pending() {
            Ok(p) => due.push(p),
            // Its buyer was erased (or the row cannot be read): it can never be placed.
            Err(e) => {
                tracing::warn!(%cart_id, error = %e, "dropping a pending checkout that cannot be placed");
                forget(pool, cart_id).await?;
            }
        }
    }
    Ok(due)
}

#[derive(sqlx::FromRow)]
struct Row {
    cart_id: Uuid,
    order_id: Uuid,
    customer_id: Option<Uuid>,
    /// Rows recorded before personal data was sealed.
    guest_email: Option<String>,
    request_id: Uuid,
    /// Rows recorded before personal data was sealed.
    shipping_address: Option<serde_json::Value>,
    /// The revealed [`BuyerDetails`].
    personal: Option<serde_json::Value>,
    payment_token: String,
    promotions: Vec<Uuid>,
    created_at: DateTime<Utc>,
}

impl Row {
    /// The checkout, or an error for one whose buyer was erased meanwhile (it is never
    /// placed: the sweeper drops it).
    fn into_pending(
        self,
    ) -> Result<(PendingCheckout, DateTime<Utc>), Box<dyn std::error::Error + Send + Sync>> {
        let (guest_email, shipping_address) = match self.personal {
            Some(sealed) => {
                let details: Personal<BuyerDetails> = serde_json::from_value(sealed)?;
                let details = details
                    .into_inner()
                    .ok_or("the buyer of a pending checkout was erased")?;
                (details.guest_email, details.shipping_address)
            }
            None => (
                self.guest_email.map(Email::new).transpose()?,
                serde_json::from_value(self.shipping_address.ok_or("no shipping address")?)?,
            ),
        };
        let buyer = match (self.customer_id, guest_email) {
            (Some(id), _) => Buyer::Customer(id),
            (None, Some(email)) => Buyer::Guest(email),
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
                shipping_address,
                payment_token: PaymentMethodToken::new(self.payment_token)?,
                shipping_method: None,
            },
            promotions: self.promotions,
        };
        Ok((pending, self.created_at))
    }
}

/// The order lines of a checked-out cart (their pricing is the cart's
/// [`Cart::checkout_pricing`]).
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
