//! The checkout: a cart becomes an order in two steps (`CheckOutCart`, then `PlaceOrder`),
//! either of which may be the last thing a dying request does.
//!
//! The request records the shipping address, payment token and buyer first
//! (`crate::pending`), so the order process's sweeper places the order of a checkout whose
//! request died in between. Retrying the checkout (with or without the same key) completes an
//! attempt that died between the steps, as does the sweeper; the order id is derived from the
//! cart id, so every path places the same order once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use mercato_aggregates::cart::{Cart, CartCommand, CartStatus};
use mercato_aggregates::order::{Order, OrderCommand, OrderError};
use mercato_aggregates::values::{CustomerId, Email, OrderId, PromotionId};
use mercato_aggregates::ErrorKind;
use mercato_event_store::EventStoreError;
use mercato_nats::HandlerError;
use mercato_web::Problem;
use uuid::Uuid;

use crate::error::{pending_problem, refusal, store_problem};
use crate::exec::{execute, WriteContext, Written};
use crate::pending::{self, PendingCheckout};
pub(crate) use crate::pending::{Buyer, Checkout};
use crate::services::promotions;
use crate::stores::Stores;

/// Namespace of order ids derived from the cart id: one order per cart, whatever retries.
const ORDER_NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7263_6174_6f2d_6f72_6465_7200_0001);

/// The order a cart is checked out into.
pub fn order_id_for(cart_id: Uuid) -> Uuid {
    Uuid::new_v5(&ORDER_NAMESPACE, cart_id.as_bytes())
}

impl Buyer {
    fn customer_id(&self) -> Option<CustomerId> {
        match self {
            Buyer::Customer(id) => Some(CustomerId::new(*id)),
            Buyer::Guest(_) => None,
        }
    }

    fn guest_email(&self) -> Option<Email> {
        match self {
            Buyer::Customer(_) => None,
            Buyer::Guest(email) => Some(email.clone()),
        }
    }

    /// Whether `order` was placed by this buyer.
    fn placed(&self, order: &Order) -> bool {
        match self {
            Buyer::Customer(_) => order.customer_id() == self.customer_id(),
            Buyer::Guest(email) => {
                order.customer_id().is_none()
                    && order.guest_email().and_then(|e| e.expose()) == Some(email)
            }
        }
    }
}

/// Checks `cart` (already authorized for the caller) out into its order and places it.
/// Returns where the order stands.
pub(crate) async fn check_out(
    stores: &Stores,
    mut cart: Cart,
    cart_id: Uuid,
    checkout: Checkout,
    ctx: &WriteContext,
    expected: Option<u64>,
) -> Result<(OrderId, Written), Problem> {
    let order_id = OrderId::new(order_id_for(cart_id));
    // Step 1: freeze the cart into the order id (skipped when an earlier attempt did it).
    if cart.status() != CartStatus::CheckedOut {
        // Price the cart, and hold a use of each limited promotion for the order before the
        // cart is frozen at that price (ADR 0021).
        let now = Utc::now();
        let customer = checkout.buyer.customer_id();
        let address = &checkout.shipping_address;
        let method = checkout.shipping_method.as_ref();
        let offer =
            promotions::offer(stores, &cart, customer, order_id, address, method, now).await?;
        let pending = PendingCheckout {
            cart_id,
            order_id: order_id.as_uuid(),
            request_id: ctx.write_id,
            checkout: checkout.clone(),
            promotions: offer.limited.iter().map(|p| p.as_uuid()).collect(),
        };
        pending::record(&stores.pool, &pending)
            .await
            .map_err(pending_problem)?;
        if let Err(refused) =
            promotions::reserve(stores, &offer.limited, order_id, customer, now, ctx).await
        {
            if let Err(e) = pending::forget_own(&stores.pool, cart_id, ctx.write_id).await {
                tracing::warn!(cart_id = %cart_id, error = %e, "could not drop a refused checkout's record");
            }
            return Err(refused);
        }
        let command = CartCommand::CheckOutCart {
            order_id,
            customer_id: customer,
            pricing: Some(offer.pricing),
        };
        let frozen = execute(&stores.carts, &cart_id.to_string(), command, ctx, expected).await;
        cart = stores
            .carts
            .load(&cart_id.to_string())
            .await
            .map_err(store_problem)?
            .0;
        if let Err(e) = frozen {
            // A concurrent attempt may have checked the cart out into the same order: then
            // this one goes on to place it too (one of them wins).
            if cart.order_id() != Some(order_id) {
                promotions::release(stores, &offer.limited, order_id, ctx).await;
                if let Err(e) = pending::forget_own(&stores.pool, cart_id, ctx.write_id).await {
                    tracing::warn!(cart_id = %cart_id, error = %e, "could not drop a failed checkout's record");
                }
                return Err(store_problem(e));
            }
        }
    } else if cart.order_id() != Some(order_id) {
        return Err(refusal(
            ErrorKind::Conflict,
            "cart_checked_out",
            "this cart was already checked out",
        ));
    }
    // Step 2: place the order from the frozen lines.
    let written = match place_order(stores, &cart, order_id, &checkout, ctx).await {
        Ok(w) => w,
        Err(EventStoreError::Domain(OrderError::AlreadyExists)) => {
            let (order, version) = stores
                .orders
                .load(&order_id.to_string())
                .await
                .map_err(store_problem)?;
            if !checkout.buyer.placed(&order) {
                return Err(Problem::forbidden(
                    "this cart's order belongs to someone else",
                ));
            }
            Written {
                aggregate_id: order_id.to_string(),
                version,
                position: None,
                appended: 0,
            }
        }
        Err(e) => return Err(store_problem(e)),
    };
    // The order exists: the recorded address and token are no longer needed (personal data).
    if let Err(e) = pending::forget(&stores.pool, cart_id).await {
        // The sweeper deletes it on its next pass (it finds the order placed).
        tracing::warn!(cart_id = %cart_id, error = %e, "could not delete a placed checkout's record");
    }
    Ok((order_id, written))
}

/// Places the order of a checked-out `cart` (the checkout's step 2, and the sweeper's).
pub(crate) async fn place_order(
    stores: &Stores,
    cart: &Cart,
    order_id: OrderId,
    checkout: &Checkout,
    ctx: &WriteContext,
) -> Result<Written, EventStoreError<OrderError>> {
    let lines = pending::order_lines(cart).map_err(|e| {
        // A checked-out cart always has lines; report it like the order would.
        tracing::error!(error = %e, "a checked-out cart has no lines");
        EventStoreError::Domain(OrderError::NoLines)
    })?;
    let command = OrderCommand::PlaceOrder {
        order_id,
        customer_id: checkout.buyer.customer_id(),
        guest_email: checkout.buyer.guest_email(),
        lines,
        pricing: cart.checkout_pricing().cloned().map(Box::new),
        shipping_address: checkout.shipping_address.clone(),
        payment_method: checkout.payment_token.clone(),
        placed_at: chrono::Utc::now(),
    };
    execute(&stores.orders, &order_id.to_string(), command, ctx, None).await
}

/// Finishes the checkouts recorded more than `grace` ago whose request died between the two
/// steps; returns how many orders it placed. A row that fails is logged and retried on the
/// next poll, without holding up the others.
pub(crate) async fn sweep(stores: &Stores, grace: Duration) -> Result<usize, HandlerError> {
    let mut placed = 0;
    for (pending, recorded_at) in pending::due(&stores.pool, grace).await? {
        let cart_id = pending.cart_id;
        match finish(stores, pending, recorded_at).await {
            Ok(true) => placed += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(cart_id = %cart_id, error = %e, "finishing a pending checkout failed")
            }
        }
    }
    Ok(placed)
}

/// Places the pending checkout's order if its cart is checked out; `true` if this call
/// placed it (`order_already_exists` means the request, a retry or an earlier sweep got
/// there first).
async fn finish(
    stores: &Stores,
    pending: PendingCheckout,
    recorded_at: DateTime<Utc>,
) -> Result<bool, HandlerError> {
    let (cart, _) = stores.carts.load(&pending.cart_id.to_string()).await?;
    let order_id = OrderId::new(pending.order_id);
    if cart.status() != CartStatus::CheckedOut || cart.order_id() != Some(order_id) {
        let age = Utc::now() - recorded_at;
        if age > chrono::Duration::from_std(pending::ABANDONED_AFTER)? {
            tracing::info!(cart_id = %pending.cart_id, "dropping a checkout that never checked its cart out");
            let held: Vec<PromotionId> = pending
                .promotions
                .iter()
                .copied()
                .map(PromotionId::new)
                .collect();
            let ctx = WriteContext {
                write_id: pending.request_id,
                check_prior: true,
                actor: "system:process".to_owned(),
                causation_id: None,
                correlation_id: None,
            };
            promotions::release(stores, &held, order_id, &ctx).await;
            pending::forget_own(&stores.pool, pending.cart_id, pending.request_id).await?;
        }
        return Ok(false);
    }
    let ctx = WriteContext {
        write_id: pending.request_id,
        check_prior: true,
        actor: "system:process".to_owned(),
        causation_id: None,
        correlation_id: None,
    };
    let placed = match place_order(stores, &cart, order_id, &pending.checkout, &ctx).await {
        Ok(w) => w.appended > 0,
        Err(EventStoreError::Domain(OrderError::AlreadyExists)) => false,
        Err(e) => return Err(Box::new(e)),
    };
    pending::forget(&stores.pool, pending.cart_id).await?;
    if placed {
        metrics::counter!("mercato_checkout_recovered_total").increment(1);
        tracing::warn!(order_id = %order_id, cart_id = %pending.cart_id, "placed the order of a checkout whose request died");
    }
    Ok(placed)
}
