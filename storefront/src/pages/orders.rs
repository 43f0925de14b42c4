//! An order's page: it shows `placed` and updates itself until the order is settled (htmx
//! polling, or a `<noscript>` refresh), then offers what the shopper may do next.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::layout::{csrf, page, totals, Discount, ErrorPage, Money, Shell, Shipping, Tax};
use super::{see_other, OrderId};
use crate::client::{ApiError, Auth};
use crate::form::Form;
use crate::session::{Current, Session};
use crate::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct OrderLine {
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    #[serde(default)]
    pub shipped_quantity: i32,
    #[serde(default)]
    pub delivered_quantity: i32,
    #[serde(default)]
    pub returned_quantity: i32,
    #[serde(default)]
    pub cancelled_quantity: i32,
    pub unit_price: Money,
    pub line_total: Money,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Payment {
    pub state: String,
    #[serde(default)]
    pub captured: Money,
    #[serde(default)]
    pub refunded: Money,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Parcel {
    pub tracking_number: String,
    #[serde(default)]
    pub carrier: Option<String>,
    #[serde(default)]
    pub delivered_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Refund {
    pub amount: Money,
    pub reason: String,
    pub status: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReturnLine {
    pub sku: String,
    pub quantity: i32,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Return {
    pub return_id: Uuid,
    pub status: String,
    pub reason: String,
    #[serde(default)]
    pub lines: Vec<ReturnLine>,
    #[serde(default)]
    pub refund: Option<Money>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Order {
    pub id: Uuid,
    pub status: String,
    pub lines: Vec<OrderLine>,
    #[serde(default)]
    pub subtotal: Option<Money>,
    #[serde(default)]
    pub discounts: Vec<Discount>,
    #[serde(default)]
    pub tax: Option<Tax>,
    #[serde(default)]
    pub shipping: Option<Shipping>,
    pub total: Money,
    pub payment: Payment,
    #[serde(default)]
    pub shipments: Vec<Parcel>,
    #[serde(default)]
    pub returns: Vec<Return>,
    #[serde(default)]
    pub refunds: Vec<Refund>,
    #[serde(default)]
    pub cancellation_reason: Option<Value>,
    pub placed_at: chrono::DateTime<chrono::Utc>,
}

/// Statuses the order leaves on its own (the page keeps looking).
pub(crate) fn settling(status: &str) -> bool {
    matches!(
        status,
        "placed"
            | "awaiting_payment"
            | "payment_authorized"
            | "payment_declined"
            | "stock_rejected"
    )
}

/// A status as a shopper reads it.
pub(crate) fn status_label(status: &str) -> String {
    match status {
        "placed" | "awaiting_payment" | "payment_authorized" => "Placed, being confirmed".into(),
        "stock_rejected" | "payment_declined" => "Being cancelled".into(),
        other => {
            let words = other.replace('_', " ");
            let mut chars = words.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
                .unwrap_or_default()
        }
    }
}

/// Why an order was cancelled, in words.
fn cancellation(reason: &Value) -> String {
    if let Some(sku) = reason.pointer("/out_of_stock/sku").and_then(Value::as_str) {
        return format!("{sku} was out of stock. You have not been charged.");
    }
    if let Some(why) = reason
        .pointer("/payment_declined/reason")
        .and_then(Value::as_str)
    {
        let why = match why {
            "card_declined" => "your card was declined",
            "insufficient_funds" => "the card has insufficient funds",
            "timeout" | "processor_unavailable" => "the payment could not be processed",
            other => other,
        };
        return format!("The payment failed: {why}. You have not been charged.");
    }
    match reason.as_str() {
        Some("customer_request") => "You cancelled this order.".into(),
        Some("merchant_request") => "The shop cancelled this order.".into(),
        Some("reservation_expired") => "The payment did not complete in time.".into(),
        _ => "This order was cancelled.".into(),
    }
}

/// How this session reads and acts on order `id`: as its customer, or with a guest's token.
fn order_auth(session: &Session, id: Uuid) -> Auth<'_> {
    Auth {
        bearer: session
            .customer
            .as_ref()
            .or(session.admin.as_ref())
            .map(|c| c.token.as_str()),
        order_token: session.guest_orders.get(&id).map(String::as_str),
        min_position: session.position.as_deref(),
        ..Auth::default()
    }
}

async fn load(state: &AppState, session: &Session, id: Uuid) -> Result<Order, ApiError> {
    state
        .api
        .read(&format!("/v1/orders/{id}"), order_auth(session, id))
        .await
}

/// The status badge; while the order settles it reloads itself every second.
fn status_badge(order: &Order) -> Markup {
    let status = &order.status;
    html! {
        @if settling(status) {
            p #order-status hx-get={ "/orders/" (order.id) "/status" } hx-trigger="every 1s" hx-swap="outerHTML" role="status" {
                span class={ "status status-" (status) } { (status_label(status)) }
            }
        } @else {
            p #order-status role="status" {
                span class={ "status status-" (status) } data-status=(status) { (status_label(status)) }
                @if let Some(reason) = &order.cancellation_reason { " " span.cancellation { (cancellation(reason)) } }
            }
        }
    }
}

fn cancellable(status: &str) -> bool {
    matches!(
        status,
        "placed" | "awaiting_payment" | "payment_authorized" | "confirmed" | "partially_shipped"
    )
}

fn order_page(session: &Session, order: &Order) -> Markup {
    // Delivered units not returned yet, nor announced in a return still on its way.
    let pending = |sku: &str| -> i32 {
        order
            .returns
            .iter()
            .filter(|r| r.status == "requested")
            .flat_map(|r| &r.lines)
            .filter(|l| l.sku == sku)
            .map(|l| l.quantity)
            .sum()
    };
    let returnable: Vec<(&OrderLine, i32)> = order
        .lines
        .iter()
        .map(|l| {
            (
                l,
                l.delivered_quantity - l.returned_quantity - pending(&l.sku),
            )
        })
        .filter(|(_, left)| *left > 0)
        .collect();
    html! {
        h1 { "Order " (order.id.simple().to_string()[..8].to_uppercase()) }
        p.muted { "Placed " (order.placed_at.format("%Y-%m-%d %H:%M UTC")) }
        (status_badge(order))
        table {
            caption.visually-hidden { "Items" }
            thead { tr { th { "Product" } th.num { "Price" } th.num { "Quantity" } th.num { "Shipped" } th.num { "Total" } } }
            tbody {
                @for line in &order.lines {
                    tr {
                        td { a href={ "/products/" (line.sku) } { (line.name) } }
                        td.num { (line.unit_price.show()) }
                        td.num { (line.quantity) }
                        td.num { (line.shipped_quantity) }
                        td.num { (line.line_total.show()) }
                    }
                }
            }
            tfoot {
                @let tax = order.tax.as_ref().filter(|t| t.amount.amount > 0);
                (totals(4, 0, order.subtotal.as_ref(), &order.discounts, order.shipping.as_ref(), tax, &order.total))
            }
        }
        h2 { "Payment" }
        p { "Payment " (order.payment.state.replace('_', " ")) "."
            @if order.payment.captured.amount > 0 { " Charged " (order.payment.captured.show()) "." }
            @if order.payment.refunded.amount > 0 { " " strong.refunded { "Refunded " (order.payment.refunded.show()) "." } }
        }
        @if !order.shipments.is_empty() {
            h2 { "Shipments" }
            ul {
                @for parcel in &order.shipments {
                    li { "Tracking " code { (parcel.tracking_number) }
                        @if let Some(carrier) = &parcel.carrier { " with " (carrier) }
                        @if parcel.delivered_at.is_some() { " · delivered" } @else { " · on its way" }
                    }
                }
            }
        }
        @if !order.refunds.is_empty() {
            h2 { "Refunds" }
            ul {
                @for refund in &order.refunds {
                    li { (refund.amount.show()) " for " (refund.reason.replace('_', " ")) " · " (refund.status) }
                }
            }
        }
        @if !order.returns.is_empty() {
            h2 { "Returns" }
            ul {
                @for r in &order.returns {
                    li { "Return " (r.return_id.simple().to_string()[..8].to_uppercase()) " · " (r.status) " · " (r.reason)
                        @if let Some(refund) = &r.refund { " · refund " (refund.show()) }
                    }
                }
            }
        }
        @if cancellable(&order.status) {
            form method="post" action={ "/orders/" (order.id) "/cancel" } {
                (csrf(session))
                button.danger type="submit" { "Cancel order" }
            }
        }
        @if !returnable.is_empty() {
            h2 { "Return items" }
            form.stack method="post" action={ "/orders/" (order.id) "/returns" } {
                (csrf(session))
                @for (line, left) in &returnable {
                    label {
                        (line.name) " (up to " (left) ")"
                        input type="number" name={ "qty_" (line.sku) } min="0" max=(left) value="0";
                    }
                }
                label { "Reason" textarea name="reason" required maxlength="500" {} }
                button type="submit" { "Request a return" }
            }
        }
    }
}

/// `/orders/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    session: Current,
    OrderId(id): OrderId,
) -> Response {
    let s = session.get();
    let order = match load(&state, &s, id).await {
        Ok(o) => o,
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
            return see_other(&format!("/account/sign-in?next=/orders/{id}"))
        }
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let refresh = settling(&order.status).then_some(2);
    page(
        Shell {
            title: "Your order",
            session: &s,
            flash: session.take_flash(),
            refresh,
        },
        order_page(&s, &order),
    )
    .into_response()
}

/// `/orders/{id}/status`: the badge alone, for htmx. Once settled, it asks for the whole
/// page again (`HX-Refresh`), which then offers cancel or return.
pub(crate) async fn status(
    State(state): State<AppState>,
    session: Current,
    OrderId(id): OrderId,
) -> Response {
    let s = session.get();
    match load(&state, &s, id).await {
        Ok(order) if settling(&order.status) => status_badge(&order).into_response(),
        Ok(_) => ([("HX-Refresh", "true")], "").into_response(),
        Err(e) => ErrorPage::from(e).into_response(),
    }
}

/// `POST /orders/{id}/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    session: Current,
    OrderId(id): OrderId,
    Form(_): Form<HashMap<String, String>>,
) -> Response {
    let s = session.get();
    let result = state
        .api
        .write::<Value>(
            Method::POST,
            &format!("/v1/orders/{id}/cancel"),
            None::<&()>,
            order_auth(&s, id),
        )
        .await;
    finish(&session, id, result, "Your order is cancelled.")
}

/// After an action on order `id`: back to its page, with the outcome.
fn finish(
    session: &Current,
    id: Uuid,
    result: Result<crate::client::Written<Value>, ApiError>,
    done: &str,
) -> Response {
    match result {
        Ok(w) => session.update(|s| {
            s.position = w.position.or(s.position.take());
            s.flash = Some(done.to_owned());
        }),
        Err(e) if e.status().is_client_error() => {
            session.update(|s| s.flash = Some(format!("That did not work: {e}")))
        }
        Err(e) => return ErrorPage::from(e).into_response(),
    }
    see_other(&format!("/orders/{id}"))
}

/// `POST /orders/{id}/returns`: `qty_<sku>` per line and a reason.
pub(crate) async fn request_return(
    State(state): State<AppState>,
    session: Current,
    OrderId(id): OrderId,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let s = session.get();
    let lines: Vec<Value> = form
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("qty_")?, v.trim().parse::<u32>().ok()?)))
        .filter(|(_, q)| *q > 0)
        .map(|(sku, quantity)| json!({ "sku": sku, "quantity": quantity }))
        .collect();
    let reason = form.get("reason").cloned().unwrap_or_default();
    let body = json!({ "lines": lines, "reason": reason });
    let result = state
        .api
        .write::<Value>(
            Method::POST,
            &format!("/v1/orders/{id}/returns"),
            Some(&body),
            order_auth(&s, id),
        )
        .await;
    finish(
        &session,
        id,
        result,
        "Your return is requested. Send the items back; the refund follows when they arrive.",
    )
}
