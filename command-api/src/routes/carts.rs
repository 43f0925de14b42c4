//! Carts (anonymous or a customer's) and the checkout.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use mercato_aggregates::cart::{Cart, CartCommand, CartStatus};
use mercato_aggregates::money::Currency;
use mercato_aggregates::promotion::PromotionError;
use mercato_aggregates::shipping::ShippingMethodId;
use mercato_aggregates::values::{
    CartId, CouponCode, CustomerId, Email, PaymentMethodToken, Quantity,
};
use mercato_aggregates::ErrorKind;
use mercato_web::{Caller, Json, Path, Problem, MERCATO_CART_TOKEN};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::customers::AddressDto;
use super::{
    context, optional_json, parse_sku, parse_uuid, path_value, written, IfMatch, Precondition,
    WriteResult,
};
use crate::error::{db_problem, refusal, store_problem, Fields};
use crate::exec::{execute, Written};
use crate::idempotency::RequestContext;
use crate::services::checkout::{self, Buyer, Checkout};
use crate::services::promotions;
use crate::state::AppState;

/// Namespace of cart ids derived from a request's write id.
const CART_NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7263_6174_6f2d_6361_7274_0000_0001);

/// A new cart.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCart {
    /// ISO 4217 code; `EUR` when omitted.
    #[schema(value_type = Option<mercato_web::schema::Currency>)]
    currency: Option<String>,
}

/// A new cart and, for an anonymous cart, its secret token.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CartCreated {
    id: String,
    /// An anonymous cart's key: send it as `Mercato-Cart-Token` on every later request for
    /// this cart. Shown once. A customer's cart has none (their access token opens it).
    #[serde(skip_serializing_if = "Option::is_none")]
    cart_token: Option<String>,
    #[serde(flatten)]
    write: WriteResult,
}

/// A line to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddItem {
    #[schema(value_type = mercato_web::schema::Sku)]
    sku: String,
    #[schema(value_type = mercato_web::schema::Quantity)]
    quantity: u32,
}

/// A line's new quantity.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeItem {
    #[schema(value_type = mercato_web::schema::Quantity)]
    quantity: u32,
}

/// Where to ship and how to pay; a guest also gives an email.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckoutBody {
    shipping_address: AddressDto,
    /// A payment method token (`tok_visa`, ...); never a card number.
    payment_token: String,
    /// A guest's email (required without a customer's token; order updates go there).
    /// Signed-in customers are written to at their account's address and must not send it.
    #[schema(value_type = Option<mercato_web::schema::Email>)]
    email: Option<String>,
    /// The shipping method (`GET /v1/carts/{id}/shipping-options` lists those that ship
    /// the cart to an address); required when the shop has shipping methods.
    shipping_method: Option<String>,
}

/// The order the checkout placed; it proceeds asynchronously.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CheckoutAccepted {
    order_id: String,
    cart_id: String,
    /// `placed`: stock reservation and payment follow.
    status: &'static str,
    /// A guest's key to the order: send it as `Mercato-Order-Token` to read or cancel it and
    /// to request returns. Only for guest checkouts.
    #[serde(skip_serializing_if = "Option::is_none")]
    order_token: Option<String>,
    #[serde(flatten)]
    write: WriteResult,
}

/// Opens a cart (anonymous, or the calling customer's).
#[utoipa::path(post, path = "/v1/carts", operation_id = "create_cart", tag = "carts", request_body(content = Option<CreateCart>, description = "optional"),
    security((), ("bearer" = [])),
    responses((status = 201, body = CartCreated), (status = 401),
              (status = 422)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Extension(req): Extension<RequestContext>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let body: CreateCart = optional_json(&headers, &body)?;
    let mut f = Fields::default();
    let currency = f.check(
        "currency",
        Currency::new(body.currency.as_deref().unwrap_or("EUR")),
    );
    f.finish()?;
    let cart_id = Uuid::new_v5(&CART_NAMESPACE, req.write_id.as_bytes());
    let customer_id = caller.as_ref().and_then(Caller::customer_id);
    // An anonymous cart's token is stored (as a hash) before the cart exists, so the cart is
    // never reachable without it.
    let token = match customer_id {
        Some(_) => None,
        None => Some(
            crate::cart_tokens::issue(&state.stores().pool, cart_id)
                .await
                .map_err(db_problem)?,
        ),
    };
    let command = CartCommand::OpenCart {
        cart_id: CartId::new(cart_id),
        customer_id: customer_id.map(CustomerId::new),
        currency: currency.unwrap(),
    };
    let stores = state.stores();
    let w = execute(
        &stores.carts,
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
        return Err(refusal(
            ErrorKind::NotFound,
            "cart_not_found",
            "no such cart",
        ));
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
    let matches = crate::cart_tokens::matches(&state.stores().pool, cart_id, token)
        .await
        .map_err(db_problem)?;
    if matches {
        Ok(cart)
    } else {
        Err(Problem::forbidden(
            "the cart token does not match this cart",
        ))
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
        &cart_id.to_string(),
        command,
        &context(req, caller),
        expected,
    )
    .await
    .map_err(store_problem)
}

/// Adds units of a product (captures its current name and price).
#[utoipa::path(post, path = "/v1/carts/{id}/items", tag = "carts", request_body = AddItem,
    params(("id" = Uuid, Path), ("Mercato-Cart-Token" = Option<String>, Header), Precondition),
    security((), ("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401),
              (status = 403), (status = 404),
              (status = 409), (status = 422)))]
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
    params(("id" = Uuid, Path), ("sku" = mercato_web::schema::Sku, Path), ("Mercato-Cart-Token" = Option<String>, Header), Precondition),
    security((), ("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401),
              (status = 403), (status = 404),
              (status = 422)))]
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
    params(("id" = Uuid, Path), ("sku" = mercato_web::schema::Sku, Path), ("Mercato-Cart-Token" = Option<String>, Header), Precondition),
    security((), ("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401),
              (status = 403), (status = 404),
              (status = 422)))]
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

/// Checks the cart out into an order: a customer (their cart, or an anonymous one with its
/// token), or a guest (an anonymous cart with its token, and an `email`). Answers 202: stock
/// reservation, payment and confirmation follow in the order process. A guest's answer
/// carries the `order_token` that opens the order to them.
#[utoipa::path(post, path = "/v1/carts/{id}/checkout", tag = "carts", request_body = CheckoutBody,
    params(("id" = Uuid, Path), ("Mercato-Cart-Token" = Option<String>, Header), Precondition), security((), ("bearer" = [])),
    responses((status = 202, body = CheckoutAccepted), (status = 401),
              (status = 403), (status = 404),
              (status = 409), (status = 422)))]
pub(crate) async fn checkout(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    headers: HeaderMap,
    Json(body): Json<CheckoutBody>,
) -> Result<Response, Problem> {
    let cart_id = parse_uuid("id", &id)?;
    if caller.is_none() && !headers.contains_key(MERCATO_CART_TOKEN) {
        return Err(Problem::unauthorized(
            "send a customer's `Authorization: Bearer <token>`, or the cart's `Mercato-Cart-Token` to check out as a guest",
        ));
    }
    let mut f = Fields::default();
    let buyer = match caller.as_ref() {
        Some(c) if c.is_admin() => {
            return Err(Problem::forbidden(
                "the back office cannot check out; customers and guests do",
            ))
        }
        Some(c) => {
            if body.email.is_some() {
                f.push(
                    "email",
                    "email_not_allowed",
                    "a signed-in customer is written to at their account's address",
                );
            }
            c.customer_id().map(Buyer::Customer)
        }
        None => match &body.email {
            Some(email) => f.check("email", Email::new(email.trim())).map(Buyer::Guest),
            None => {
                f.push(
                    "email",
                    "required",
                    "a guest checkout needs an email for the order's updates",
                );
                None
            }
        },
    };
    let address = body.shipping_address.check("shipping_address", &mut f);
    let token = f.check(
        "payment_token",
        PaymentMethodToken::new(&body.payment_token),
    );
    let shipping_method = body
        .shipping_method
        .as_deref()
        .map(|m| f.check("shipping_method", ShippingMethodId::new(m.trim())));
    f.finish()?;
    let cart = authorize(&state, caller.as_ref(), &headers, cart_id).await?;
    if caller.is_none() && cart.customer_id().is_some() {
        return Err(Problem::unauthorized(
            "this cart belongs to a customer; send their token",
        ));
    }
    let buyer = buyer.unwrap();
    let guest = matches!(buyer, Buyer::Guest(_));
    let checkout = Checkout {
        buyer,
        shipping_address: address.unwrap(),
        payment_token: token.unwrap(),
        shipping_method: shipping_method.map(Option::unwrap),
    };
    let ctx = context(&req, caller.as_ref());
    let (order_id, w) =
        checkout::check_out(state.stores(), cart, cart_id, checkout, &ctx, expected).await?;
    Ok(written(
        StatusCode::ACCEPTED,
        CheckoutAccepted {
            order_id: order_id.to_string(),
            cart_id: cart_id.to_string(),
            status: "placed",
            order_token: guest.then(|| state.keys().order_token(order_id.as_uuid())),
            write: WriteResult::from(&w),
        },
        &w,
    ))
}

/// A coupon code to add to a cart.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApplyCouponBody {
    /// The code as the shopper typed it (case-insensitive).
    code: String,
}

/// Adds a coupon code to the cart. The code must name a promotion that is active and running
/// now (422 `unknown_coupon`, 409 `promotion_not_active` / `promotion_not_running` /
/// `promotion_usage_limit_reached` otherwise). The discount shows in the cart's view and is
/// priced, and its use held, at checkout.
#[utoipa::path(post, path = "/v1/carts/{id}/coupons", tag = "carts", request_body = ApplyCouponBody,
    params(("id" = Uuid, Path), ("Mercato-Cart-Token" = Option<String>, Header), Precondition), security((), ("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401), (status = 403), (status = 404),
              (status = 409), (status = 422)))]
pub(crate) async fn apply_coupon(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    headers: HeaderMap,
    Json(body): Json<ApplyCouponBody>,
) -> Result<Response, Problem> {
    let cart_id = parse_uuid("id", &id)?;
    let mut f = Fields::default();
    let code = f.check("code", CouponCode::normalize(&body.code));
    f.finish()?;
    let code = code.unwrap();
    let cart = authorize(&state, caller.as_ref(), &headers, cart_id).await?;
    let stores = state.stores();
    let now = chrono::Utc::now();
    let Some(promotion_id) = promotions::by_code(&stores.pool, &code, now)
        .await
        .map_err(db_problem)?
    else {
        return Err(refusal(
            ErrorKind::Invalid,
            "unknown_coupon",
            format!("no promotion has the code {code}"),
        )
        .with("coupon", code.as_str()));
    };
    let (promotion, _) = stores
        .promotions
        .load(&promotion_id.to_string())
        .await
        .map_err(store_problem)?;
    if let Some(refused) = promotion.refusal(None, cart.customer_id(), now) {
        // A per-customer limit is checked for a guest only at checkout (they may sign in).
        if refused != PromotionError::SignInRequired {
            return Err(refusal(
                refused.kind(),
                refused.code(),
                format!("coupon {code}: {refused}"),
            )
            .with("coupon", code.as_str()));
        }
    }
    let command = CartCommand::ApplyCoupon { code, promotion_id };
    let w = run(&state, &req, caller.as_ref(), cart_id, command, expected).await?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

/// Removes a coupon code from the cart.
#[utoipa::path(delete, path = "/v1/carts/{id}/coupons/{code}", tag = "carts",
    params(("id" = Uuid, Path), ("code" = String, Path), ("Mercato-Cart-Token" = Option<String>, Header), Precondition),
    security((), ("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub(crate) async fn remove_coupon(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Extension(req): Extension<RequestContext>,
    Path((id, code)): Path<(String, String)>,
    IfMatch(expected): IfMatch,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let cart_id = parse_uuid("id", &id)?;
    let code = path_value("code", CouponCode::normalize(&code))?;
    authorize(&state, caller.as_ref(), &headers, cart_id).await?;
    let command = CartCommand::RemoveCoupon { code };
    let w = run(&state, &req, caller.as_ref(), cart_id, command, expected).await?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}
