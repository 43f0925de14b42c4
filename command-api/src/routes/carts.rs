//! Carts (anonymous or a customer's) and the checkout.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use base64::Engine as _;
use mercato_aggregates::cart::{Cart, CartCommand, CartStatus};
use mercato_aggregates::money::Currency;
use mercato_aggregates::order::OrderCommand;
use mercato_aggregates::values::{CartId, CustomerId, OrderId, PaymentMethodToken, Quantity};
use mercato_event_store::EventStoreError;
use mercato_web::{Caller, Json, Path, Problem, MERCATO_CART_TOKEN};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use uuid::Uuid;

use super::customers::AddressDto;
use super::{context, parse_sku, parse_uuid, written, IfMatch, WriteResult};
use crate::api::AppState;
use crate::error::{db_problem, domain_problem, store_problem, Fields};
use crate::exec::{execute, Written};
use crate::idempotency::RequestContext;
use crate::pending::{self, PendingCheckout};

/// Namespace of cart ids derived from a request's write id.
const CART_NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7263_6174_6f2d_6361_7274_0000_0001);
/// Namespace of order ids derived from the cart id: one order per cart, whatever retries.
const ORDER_NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7263_6174_6f2d_6f72_6465_7200_0001);

/// The SHA-256 (hex) of a cart token: all that is stored.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The order a cart is checked out into.
pub fn order_id_for(cart_id: Uuid) -> Uuid {
    Uuid::new_v5(&ORDER_NAMESPACE, cart_id.as_bytes())
}

/// A new cart.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCart {
    /// ISO 4217 code; `EUR` when omitted.
    currency: Option<String>,
}

/// A new cart and, for an anonymous cart, its secret token.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CartCreated {
    id: String,
    /// Send it as `Mercato-Cart-Token` on every later request for this cart. Shown once.
    cart_token: String,
    #[serde(flatten)]
    write: WriteResult,
}

/// A line to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddItem {
    sku: String,
    quantity: u32,
}

/// A line's new quantity.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeItem {
    quantity: u32,
}

/// Where to ship and how to pay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Checkout {
    shipping_address: AddressDto,
    /// A payment method token (`tok_visa`, ...); never a card number.
    payment_token: String,
}

/// The order the checkout placed; it proceeds asynchronously.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CheckoutAccepted {
    order_id: String,
    cart_id: String,
    /// `placed`: stock reservation and payment follow.
    status: &'static str,
    #[serde(flatten)]
    write: WriteResult,
}

/// Opens a cart (anonymous, or the calling customer's).
#[utoipa::path(post, path = "/v1/carts", tag = "carts", request_body(content = CreateCart, description = "optional"),
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = CartCreated), (status = 401, body = mercato_web::problem::ProblemBody),
              (status = 422, body = mercato_web::problem::ProblemBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Extension(req): Extension<RequestContext>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let body: CreateCart = if body.iter().all(u8::is_ascii_whitespace) {
        CreateCart::default()
    } else {
        if !json_content(&headers) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            )
            .detail("send the body as JSON with `Content-Type: application/json`"));
        }
        mercato_web::extract::parse_json(&body)?
    };
    let mut f = Fields::default();
    let currency = f.check(
        "currency",
        Currency::new(body.currency.as_deref().unwrap_or("EUR")),
    );
    f.finish()?;
    let cart_id = Uuid::new_v5(&CART_NAMESPACE, req.write_id.as_bytes());
    let customer_id = caller.as_ref().and_then(Caller::customer_id);
    // The token is stored (as a hash) before the cart exists, so the cart is never reachable
    // without it. A retry whose first answer was lost gets a new token, replacing the unseen one.
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    sqlx::query(
        "INSERT INTO command.cart_tokens (cart_id, token_hash) VALUES ($1, $2) \
         ON CONFLICT (cart_id) DO UPDATE SET token_hash = EXCLUDED.token_hash",
    )
    .bind(cart_id)
    .bind(token_hash(&token))
    .execute(&state.stores().pool)
    .await
    .map_err(db_problem)?;
    let command = CartCommand::OpenCart {
        cart_id: CartId::new(cart_id),
        customer_id: customer_id.map(CustomerId::new),
        currency: currency.unwrap(),
    };
    let stores = state.stores();
    let w = execute(
        &stores.carts,
        &stores.pool,
        &cart_id.to_string(),
        command,
        &context(&req, caller.as_ref()),
        None,
    )
    .await
    .map_err(store_problem)?;
    Ok(written(
        StatusCode::CREATED,
        CartCreated {
            id: cart_id.to_string(),
            cart_token: token,
            write: WriteResult::from(&w),
        },
        &w,
    ))
}

fn json_content(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false)
}

/// Loads the cart and checks that the caller may use it: its customer (or the admin) for a
/// customer's cart, the holder of its token for an anonymous one.
async fn authorize(
    state: &AppState,
    caller: Option<&Caller>,
    headers: &HeaderMap,
    cart_id: Uuid,
) -> Result<Cart, Problem> {
    let (cart, _) = state
        .stores()
        .carts
        .load(&cart_id.to_string())
        .await
        .map_err(store_problem)?;
    if cart.status() == CartStatus::Absent {
        return Err(domain_problem("cart_not_found", "no such cart"));
    }
    if caller.is_some_and(Caller::is_admin) {
        return Ok(cart);
    }
    if let Some(owner) = cart.customer_id() {
        return match caller {
            None => Err(Problem::unauthorized(
                "this cart belongs to a customer; send their token",
            )),
            Some(c) => c.require_owner_or_admin(owner.as_uuid()).map(|()| cart),
        };
    }
    let Some(token) = headers
        .get(MERCATO_CART_TOKEN)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(Problem::unauthorized(
            "send the cart's `Mercato-Cart-Token`",
        ));
    };
    let stored: Option<String> =
        sqlx::query_scalar("SELECT token_hash FROM command.cart_tokens WHERE cart_id = $1")
            .bind(cart_id)
            .fetch_optional(&state.stores().pool)
            .await
            .map_err(db_problem)?;
    let matches =
        stored.is_some_and(|h| bool::from(h.as_bytes().ct_eq(token_hash(token).as_bytes())));
    if matches {
        Ok(cart)
    } else {
        Err(Problem::forbidden(
            "the cart token does not match this cart",
        ))
    }
}

/// Cart errors about the product a request names are the request's fault (422), not a
/// missing target.
fn cart_problem(e: EventStoreError<mercato_aggregates::cart::CartError>) -> Problem {
    match e {
        EventStoreError::Domain(ref d) if d.code() == "product_not_found" => {
            Problem::unprocessable("product_not_found", d)
        }
        other => store_problem(other),
    }
}

async fn run(
    state: &AppState,
    req: &RequestContext,
    caller: Option<&Caller>,
    cart_id: Uuid,
    command: CartCommand,
    expected: Option<u64>,
) -> Result<Written, Problem> {
    let stores = state.stores();
    execute(
        &stores.carts,
        &stores.pool,
        &cart_id.to_string(),
        command,
        &context(req, caller),
        expected,
    )
    .await
    .map_err(cart_problem)
}

/// Adds units of a product (captures its current name and price).
#[utoipa::path(post, path = "/v1/carts/{id}/items", tag = "carts", request_body = AddItem,
    params(("id" = String, Path), ("Mercato-Cart-Token" = Option<String>, Header)),
    responses((status = 200, body = WriteResult), (status = 401, body = mercato_web::problem::ProblemBody),
              (status = 403, body = mercato_web::problem::ProblemBody), (status = 404, body = mercato_web::problem::ProblemBody),
              (status = 409, body = mercato_web::problem::ProblemBody), (status = 422, body = mercato_web::problem::ProblemBody)))]
pub(crate) async fn add_item(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    headers: HeaderMap,
    Json(body): Json<AddItem>,
) -> Result<Response, Problem> {
    let cart_id = parse_uuid("id", &id)?;
    let mut f = Fields::default();
    let sku = f.check("sku", mercato_aggregates::values::Sku::new(&body.sku));
    let quantity = f.check("quantity", Quantity::new(body.quantity));
    f.finish()?;
    authorize(&state, caller.as_ref(), &headers, cart_id).await?;
    let command = CartCommand::AddCartItem {
        sku: sku.unwrap(),
        quantity: quantity.unwrap(),
    };
    let w = run(&state, &req, caller.as_ref(), cart_id, command, expected).await?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

/// Sets a line's quantity.
#[utoipa::path(patch, path = "/v1/carts/{id}/items/{sku}", tag = "carts", request_body = ChangeItem,
    params(("id" = String, Path), ("sku" = String, Path), ("Mercato-Cart-Token" = Option<String>, Header)),
    responses((status = 200, body = WriteResult), (status = 401, body = mercato_web::problem::ProblemBody),
              (status = 403, body = mercato_web::problem::ProblemBody), (status = 404, body = mercato_web::problem::ProblemBody),
              (status = 422, body = mercato_web::problem::ProblemBody)))]
pub(crate) async fn change_item(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Extension(req): Extension<RequestContext>,
    Path((id, sku)): Path<(String, String)>,
    IfMatch(expected): IfMatch,
    headers: HeaderMap,
    Json(body): Json<ChangeItem>,
) -> Result<Response, Problem> {
    let cart_id = parse_uuid("id", &id)?;
    let sku = parse_sku(&sku)?;
    let mut f = Fields::default();
    let quantity = f.check("quantity", Quantity::new(body.quantity));
    f.finish()?;
    authorize(&state, caller.as_ref(), &headers, cart_id).await?;
    let command = CartCommand::ChangeCartItemQuantity {
        sku,
        quantity: quantity.unwrap(),
    };
    let w = run(&state, &req, caller.as_ref(), cart_id, command, expected).await?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

/// Removes a line.
#[utoipa::path(delete, path = "/v1/carts/{id}/items/{sku}", tag = "carts",
    params(("id" = String, Path), ("sku" = String, Path), ("Mercato-Cart-Token" = Option<String>, Header)),
    responses((status = 200, body = WriteResult), (status = 401, body = mercato_web::problem::ProblemBody),
              (status = 403, body = mercato_web::problem::ProblemBody), (status = 404, body = mercato_web::problem::ProblemBody),
              (status = 422, body = mercato_web::problem::ProblemBody)))]
pub(crate) async fn remove_item(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Extension(req): Extension<RequestContext>,
    Path((id, sku)): Path<(String, String)>,
    IfMatch(expected): IfMatch,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let cart_id = parse_uuid("id", &id)?;
    let sku = parse_sku(&sku)?;
    authorize(&state, caller.as_ref(), &headers, cart_id).await?;
    let w = run(
        &state,
        &req,
        caller.as_ref(),
        cart_id,
        CartCommand::RemoveCartItem { sku },
        expected,
    )
    .await?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

/// Checks the cart out into an order (a customer; an anonymous cart also needs its token).
/// Answers 202: stock reservation, payment and confirmation follow in the checkout saga.
#[utoipa::path(post, path = "/v1/carts/{id}/checkout", tag = "carts", request_body = Checkout,
    params(("id" = String, Path), ("Mercato-Cart-Token" = Option<String>, Header),
           ("Idempotency-Key" = Option<String>, Header)), security(("bearer" = [])),
    responses((status = 202, body = CheckoutAccepted), (status = 401, body = mercato_web::problem::ProblemBody),
              (status = 403, body = mercato_web::problem::ProblemBody), (status = 404, body = mercato_web::problem::ProblemBody),
              (status = 409, body = mercato_web::problem::ProblemBody), (status = 422, body = mercato_web::problem::ProblemBody)))]
pub(crate) async fn checkout(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    headers: HeaderMap,
    Json(body): Json<Checkout>,
) -> Result<Response, Problem> {
    let cart_id = parse_uuid("id", &id)?;
    let Some(customer_id) = caller.customer_id() else {
        return Err(Problem::forbidden("only a customer can check out"));
    };
    let mut f = Fields::default();
    let address = body.shipping_address.check("shipping_address", &mut f);
    let token = f.check(
        "payment_token",
        PaymentMethodToken::new(&body.payment_token),
    );
    f.finish()?;
    let mut cart = authorize(&state, Some(&caller), &headers, cart_id).await?;
    let order_id = order_id_for(cart_id);
    let (address, token) = (address.unwrap(), token.unwrap());
    let stores = state.stores();
    let ctx = context(&req, Some(&caller));
    // Step 1: freeze the cart into the order id (skipped when an earlier attempt did it).
    // The address and token are recorded first, so that if this process dies before step 2
    // the saga's sweeper places the order without the client having to retry.
    if cart.status() != CartStatus::CheckedOut {
        let pending = PendingCheckout {
            cart_id,
            order_id,
            customer_id,
            request_id: req.write_id,
            shipping_address: address.clone(),
            payment_token: token.clone(),
        };
        pending::record(&stores.pool, &pending)
            .await
            .map_err(db_problem)?;
        let command = CartCommand::CheckOutCart {
            order_id: OrderId::new(order_id),
            customer_id: Some(CustomerId::new(customer_id)),
        };
        let checked_out = run(&state, &req, Some(&caller), cart_id, command, expected).await;
        cart = stores
            .carts
            .load(&cart_id.to_string())
            .await
            .map_err(store_problem)?
            .0;
        if let Err(problem) = checked_out {
            // A concurrent attempt may have checked the cart out into the same order: then
            // this one goes on to place it too (one of them wins).
            if cart.order_id() != Some(OrderId::new(order_id)) {
                if let Err(e) = pending::forget_own(&stores.pool, cart_id, req.write_id).await {
                    tracing::warn!(cart_id = %cart_id, error = %e, "could not drop a failed checkout's record");
                }
                return Err(problem);
            }
        }
    } else if cart.order_id() != Some(OrderId::new(order_id)) {
        return Err(domain_problem(
            "cart_checked_out",
            "this cart was already checked out",
        ));
    }
    // Step 2: place the order from the frozen lines. Retrying the checkout (with or without
    // the same key) completes an attempt that died between the two steps, as does the sweeper.
    let lines = pending::order_lines(&cart).map_err(|e| domain_problem(e.code(), &e))?;
    let command = OrderCommand::PlaceOrder {
        order_id: OrderId::new(order_id),
        customer_id: CustomerId::new(customer_id),
        lines,
        shipping_address: address,
        payment_method: token,
        placed_at: chrono::Utc::now(),
    };
    let w = match execute(
        &stores.orders,
        &stores.pool,
        &order_id.to_string(),
        command,
        &ctx,
        None,
    )
    .await
    {
        Ok(w) => w,
        Err(EventStoreError::Domain(e)) if e.code() == "order_already_exists" => {
            let (order, version) = stores
                .orders
                .load(&order_id.to_string())
                .await
                .map_err(store_problem)?;
            if order.customer_id() != Some(CustomerId::new(customer_id)) {
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
    Ok(written(
        StatusCode::ACCEPTED,
        CheckoutAccepted {
            order_id: order_id.to_string(),
            cart_id: cart_id.to_string(),
            status: "placed",
            write: WriteResult::from(&w),
        },
        &w,
    ))
}
