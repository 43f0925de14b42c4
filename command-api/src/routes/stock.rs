//! Stock receipts and adjustments (admin only).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use mercato_aggregates::stock::{AdjustmentReason, StockCommand};
use mercato_aggregates::values::{Quantity, WarehouseId};
use mercato_web::{Caller, Json, Path, Problem};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{context, parse_sku, written, IfMatch, Precondition, WriteResult};
use crate::error::{store_problem, Fields};
use crate::exec::execute;
use crate::idempotency::RequestContext;
use crate::state::AppState;

/// Goods received into a warehouse.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReceiveStock {
    #[schema(value_type = mercato_web::schema::WarehouseId)]
    warehouse: String,
    #[schema(value_type = mercato_web::schema::Quantity)]
    quantity: u32,
}

/// A correction of a warehouse's on-hand quantity.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdjustStock {
    #[schema(value_type = mercato_web::schema::WarehouseId)]
    warehouse: String,
    /// Non-zero; negative removes units.
    delta: i64,
    /// `damaged`, `lost`, `found`, `cycle_count`, `returned` or `correction`.
    #[schema(value_type = String, pattern = "^(damaged|lost|found|cycle_count|returned|correction)$")]
    reason: AdjustmentReason,
}

/// Records received stock (admin).
#[utoipa::path(post, path = "/v1/stock/{sku}/receipts", operation_id = "receive_stock", tag = "stock", request_body = ReceiveStock,
    params(("sku" = mercato_web::schema::Sku, Path), Precondition), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401),
              (status = 403), (status = 422)))]
pub(crate) async fn receive(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(sku): Path<String>,
    IfMatch(expected): IfMatch,
    Json(body): Json<ReceiveStock>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let sku = parse_sku(&sku)?;
    let mut f = Fields::default();
    let warehouse = f.check("warehouse", WarehouseId::new(&body.warehouse));
    let quantity = f.check("quantity", Quantity::new(body.quantity));
    f.finish()?;
    let command = StockCommand::ReceiveStock {
        sku: sku.clone(),
        warehouse: warehouse.unwrap(),
        quantity: quantity.unwrap(),
    };
    let stores = state.stores();
    let w = execute(
        &stores.stock,
        sku.as_str(),
        command,
        &context(&req, Some(&caller)),
        expected,
    )
    .await
    .map_err(store_problem)?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

/// Adjusts stock (admin).
#[utoipa::path(post, path = "/v1/stock/{sku}/adjustments", tag = "stock", request_body = AdjustStock,
    params(("sku" = mercato_web::schema::Sku, Path), Precondition), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401),
              (status = 403), (status = 422)))]
pub(crate) async fn adjust(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(sku): Path<String>,
    IfMatch(expected): IfMatch,
    Json(body): Json<AdjustStock>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let sku = parse_sku(&sku)?;
    let mut f = Fields::default();
    let warehouse = f.check("warehouse", WarehouseId::new(&body.warehouse));
    f.finish()?;
    let command = StockCommand::AdjustStock {
        sku: sku.clone(),
        warehouse: warehouse.unwrap(),
        delta: body.delta,
        reason: body.reason,
    };
    let stores = state.stores();
    let w = execute(
        &stores.stock,
        sku.as_str(),
        command,
        &context(&req, Some(&caller)),
        expected,
    )
    .await
    .map_err(store_problem)?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}
