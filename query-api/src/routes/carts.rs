//! Carts.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use mercato_web::{Caller, Path, Problem, MERCATO_CART_TOKEN};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{db, MoneyDto, ReadHeaders};
use crate::consistency::{wait, Source};
use crate::respond::{cached, PRIVATE_CACHE};
use crate::AppState;

/// A cart line.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CartLineView {
    sku: String,
    name: String,
    quantity: i32,
    unit_price: MoneyDto,
    line_total: MoneyDto,
}

/// A cart.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CartView {
    id: Uuid,
    customer_id: Option<Uuid>,
    /// `open` or `checked_out`.
    status: String,
    lines: Vec<CartLineView>,
    total: MoneyDto,
    order_id: Option<Uuid>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

/// A customer's cart (its owner or the admin), or an anonymous cart (its `Mercato-Cart-Token`).
#[utoipa::path(get, path = "/v1/carts/{id}", tag = "carts", params(("id" = Uuid, Path), ReadHeaders),
    security(("bearer" = [])),
    responses((status = 200, body = CartView), (status = 304), (status = 401), (status = 403), (status = 404), (status = 503)))]
#[tracing::instrument(skip(state, headers, caller))]
pub(crate) async fn get_cart(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Option<Caller>,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    wait(&state, &headers, Source::Tables(&["carts"])).await?;
    let Some(row) = sqlx::query(
        "SELECT customer_id, status, currency, total_amount, order_id, updated_at FROM read.carts WHERE cart_id = $1",
    )
    .bind(id)
    .fetch_optional(&state.pool)
    .await
    .map_err(db)?
    else {
        return Err(Problem::not_found("cart_not_found", format!("no cart {id}")));
    };
    let customer_id: Option<Uuid> = row.try_get("customer_id").map_err(db)?;
    authorize(&state, &headers, caller.as_ref(), id, customer_id).await?;
    let currency: String = row.try_get("currency").map_err(db)?;
    let lines = sqlx::query(
        "SELECT sku, name, quantity, unit_price_amount, line_total_amount FROM read.cart_lines \
         WHERE cart_id = $1 ORDER BY added_at, sku",
    )
    .bind(id)
    .fetch_all(&state.pool)
    .await
    .map_err(db)?
    .iter()
    .map(|r| {
        Ok(CartLineView {
            sku: r.try_get("sku")?,
            name: r.try_get("name")?,
            quantity: r.try_get("quantity")?,
            unit_price: MoneyDto::new(r.try_get("unit_price_amount")?, &currency),
            line_total: MoneyDto::new(r.try_get("line_total_amount")?, &currency),
        })
    })
    .collect::<Result<_, sqlx::Error>>()
    .map_err(db)?;
    let view = CartView {
        id,
        customer_id,
        status: row.try_get("status").map_err(db)?,
        lines,
        total: MoneyDto::new(row.try_get("total_amount").map_err(db)?, &currency),
        order_id: row.try_get("order_id").map_err(db)?,
        updated_at: row.try_get("updated_at").map_err(db)?,
    };
    cached(&headers, &view, PRIVATE_CACHE)
}

/// The admin and the owning customer may read a customer's cart. An anonymous cart is read
/// with its secret token, whose SHA-256 the command API keeps in `command.cart_tokens` (the
/// token is not in the events).
async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    caller: Option<&Caller>,
    cart_id: Uuid,
    owner: Option<Uuid>,
) -> Result<(), Problem> {
    if let Some(caller) = caller {
        if caller.is_admin() {
            return Ok(());
        }
        if let Some(owner) = owner {
            return caller.require_owner_or_admin(owner);
        }
    }
    if let Some(token) = headers
        .get(MERCATO_CART_TOKEN)
        .and_then(|v| v.to_str().ok())
    {
        if owner.is_none() {
            let hash = hex::encode(Sha256::digest(token.as_bytes()));
            let known = sqlx::query(
                "SELECT 1 FROM command.cart_tokens WHERE cart_id = $1 AND token_hash = $2",
            )
            .bind(cart_id)
            .bind(hash)
            .fetch_optional(&state.pool)
            .await;
            match known {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => {}
                // No command schema in this database: the token cannot be checked.
                Err(e) => tracing::warn!(error = %e, "cannot verify a cart token"),
            }
        }
        return Err(Problem::forbidden(
            "this cart token does not open this cart",
        ));
    }
    match caller {
        Some(_) => Err(Problem::forbidden("this cart belongs to someone else")),
        None => Err(Problem::unauthorized(
            "send `Authorization: Bearer <token>` or the cart's Mercato-Cart-Token",
        )),
    }
}
