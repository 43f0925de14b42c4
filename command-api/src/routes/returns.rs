//! Receiving returns (admin).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use mercato_aggregates::order::ReceivedLine;
use mercato_aggregates::values::{Quantity, Sku, WarehouseId};
use mercato_web::{Caller, Json, Path, Problem};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{context, parse_uuid, written, IfMatch, Precondition, WriteResult};
use crate::error::Fields;
use crate::idempotency::RequestContext;
use crate::services::orders;
use crate::state::AppState;

/// Units of one line that arrived.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReceivedLineDto {
    #[schema(value_type = mercato_web::schema::Sku)]
    sku: String,
    #[schema(value_type = mercato_web::schema::Quantity)]
    quantity: u32,
    /// Put back on hand (sellable); otherwise written off.
    restock: bool,
}

/// What arrived of a return.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Receive {
    /// The warehouse the units arrived at.
    #[schema(value_type = mercato_web::schema::WarehouseId)]
    warehouse: String,
    lines: Vec<ReceivedLineDto>,
}

/// A return received.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReturnReceived {
    return_id: String,
    order_id: String,
    /// `received`: the units' value is being refunded.
    status: &'static str,
    #[serde(flatten)]
    write: WriteResult,
}

/// Records what arrived of a return (admin): the received units are refunded, and those
/// marked `restock` go back on hand in `warehouse`. A return is received once; units it
/// announced that never arrived stay with the customer.
#[utoipa::path(post, path = "/v1/returns/{id}/receive", operation_id = "receive_return", tag = "returns", request_body = Receive,
    params(("id" = Uuid, Path), Precondition), security(("bearer" = [])),
    responses((status = 200, body = ReturnReceived), (status = 401),
              (status = 403), (status = 404),
              (status = 409), (status = 422)))]
pub(crate) async fn receive(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    Json(body): Json<Receive>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let return_id = parse_uuid("id", &id)?;
    let mut f = Fields::default();
    let warehouse = f.check("warehouse", WarehouseId::new(&body.warehouse));
    let lines: Vec<ReceivedLine> = body
        .lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let sku = f.check(&format!("lines[{i}].sku"), Sku::new(&l.sku));
            let quantity = f.check(&format!("lines[{i}].quantity"), Quantity::new(l.quantity));
            Some(ReceivedLine {
                sku: sku?,
                quantity: quantity?,
                restock: l.restock,
            })
        })
        .collect();
    f.finish()?;
    let ctx = context(&req, Some(&caller));
    let (w, order_id) = orders::receive_return(
        state.stores(),
        return_id,
        warehouse.unwrap(),
        lines,
        &ctx,
        expected,
    )
    .await?;
    Ok(written(
        StatusCode::OK,
        ReturnReceived {
            return_id: return_id.to_string(),
            order_id: order_id.to_string(),
            status: "received",
            write: WriteResult::from(&w),
        },
        &w,
    ))
}
