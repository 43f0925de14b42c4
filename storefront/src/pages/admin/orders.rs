//! The back office's orders: the newest by status, an order with ship, deliver and refund,
//! and the returns to receive.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{admin_page, done, reads, Admin, ListQuery};
use crate::client::Auth;
use crate::form::Form;
use crate::pages::layout::{csrf, money, parse_money, ErrorPage, Money};
use crate::pages::orders::{status_label, Order};
use crate::pages::{see_other, OrderId};
use crate::AppState;

#[derive(Debug, Deserialize)]
struct OrderSummary {
    id: Uuid,
    status: String,
    total: Money,
    placed_at: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    customer_id: Option<Uuid>,
}

#[derive(Debug, Deserialize)]
struct OrderList {
    items: Vec<OrderSummary>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// What the order list filters by, in the order an order goes through them.
const ORDER_STATUSES: [&str; 10] = [
    "placed",
    "awaiting_payment",
    "confirmed",
    "partially_shipped",
    "shipped",
    "delivered",
    "partially_refunded",
    "refunded",
    "cancelled",
    "payment_declined",
];

/// `/admin/orders?status=&cursor=`: orders newest first, by status, 50 a page.
pub(super) async fn orders(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<ListQuery>,
) -> Response {
    let Admin { session, s, token } = admin;
    let token: &str = &token;
    let list: OrderList = match state
        .api
        .read(&format!("/v1/orders?{}", query.api(50)), reads(token, &s))
        .await
    {
        Ok(l) => l,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let content = html! {
        h1 { "Orders" }
        nav.pager aria-label="Order states" {
            a href="/admin/orders" aria-current=[query.status.is_empty().then_some("page")] { "all" }
            @for status in ORDER_STATUSES {
                a href={ "/admin/orders?status=" (status) } aria-current=[(query.status == status).then_some("page")] { (status_label(status)) }
            }
        }
        @if list.items.is_empty() { p.muted { "No orders here." } }
        table {
            thead { tr { th { "Order" } th { "Placed" } th { "Buyer" } th { "Status" } th.num { "Total" } } }
            tbody {
                @for o in &list.items {
                    tr {
                        td { a href={ "/admin/orders/" (o.id) } { (o.id.simple().to_string()[..8].to_uppercase()) } }
                        td { (o.placed_at.format("%Y-%m-%d %H:%M")) }
                        td { @if o.customer_id.is_some() { "customer" } @else { "guest" } }
                        td { span class={ "status status-" (o.status) } { (status_label(&o.status)) } }
                        td.num { (o.total.show()) }
                    }
                }
            }
        }
        @if let Some(cursor) = &list.next_cursor {
            nav.pager aria-label="Pages" { a href=(query.next("/admin/orders", cursor)) rel="next" { "Older orders" } }
        }
    };
    admin_page(&session, &s, "Orders", content)
}

/// `/admin/orders/{id}`: the order with ship, deliver and refund.
pub(super) async fn order(
    State(state): State<AppState>,
    admin: Admin,
    OrderId(id): OrderId,
) -> Response {
    let Admin { session, s, token } = admin;
    let token: &str = &token;
    let o: Order = match state
        .api
        .read(&format!("/v1/orders/{id}"), reads(token, &s))
        .await
    {
        Ok(o) => o,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let unshipped: i32 = o
        .lines
        .iter()
        .map(|l| l.quantity - l.shipped_quantity - l.cancelled_quantity)
        .sum();
    let undelivered = o.shipments.iter().any(|p| p.delivered_at.is_none());
    let refundable = o.payment.captured.amount - o.payment.refunded.amount;
    let content = html! {
        h1 { "Order " (o.id.simple().to_string()[..8].to_uppercase()) " " span class={ "status status-" (o.status) } data-status=(o.status) { (status_label(&o.status)) } }
        table {
            thead { tr { th { "SKU" } th { "Product" } th.num { "Ordered" } th.num { "Shipped" } th.num { "Delivered" } th.num { "Returned" } } }
            tbody {
                @for l in &o.lines {
                    tr { td { (l.sku) } td { (l.name) } td.num { (l.quantity) } td.num { (l.shipped_quantity) } td.num { (l.delivered_quantity) } td.num { (l.returned_quantity) } }
                }
            }
        }
        p { "Total " (o.total.show()) " · payment " (o.payment.state) " · captured " (o.payment.captured.show()) " · refunded " (o.payment.refunded.show()) }
        @if unshipped > 0 && matches!(o.status.as_str(), "confirmed" | "partially_shipped") {
            h2 { "Ship" }
            form.inline method="post" action={ "/admin/orders/" (o.id) "/ship" } {
                (csrf(&s))
                label { "Tracking number " input name="tracking_number" required pattern="[A-Za-z0-9-]{1,64}"; }
                label { "Carrier " input name="carrier" value="DHL"; }
                button type="submit" { "Ship all remaining items (" (unshipped) ")" }
            }
        }
        @if undelivered {
            h2 { "Delivery" }
            form method="post" action={ "/admin/orders/" (o.id) "/deliver" } {
                (csrf(&s))
                button type="submit" { "Mark delivered" }
            }
        }
        @if refundable > 0 {
            h2 { "Refund" }
            form.inline method="post" action={ "/admin/orders/" (o.id) "/refund" } {
                (csrf(&s))
                label { "Amount (" (o.payment.captured.currency) ", up to " (money(refundable, &o.payment.captured.currency)) ") " input name="amount" required inputmode="decimal"; }
                button.danger type="submit" { "Refund" }
            }
        }
        @if !o.returns.is_empty() {
            p { a href="/admin/returns" { "Returns of this order" } }
        }
    };
    admin_page(&session, &s, "Order", content)
}

#[derive(Debug, Deserialize)]
pub(super) struct OrderActionForm {
    #[serde(default)]
    tracking_number: String,
    #[serde(default)]
    carrier: String,
    #[serde(default)]
    amount: String,
}

/// `POST /admin/orders/{id}/{ship|deliver|refund}`.
pub(super) async fn order_action(
    State(state): State<AppState>,
    admin: Admin,
    OrderId(id): OrderId,
    Path((_, action)): Path<(String, String)>,
    Form(form): Form<OrderActionForm>,
) -> Response {
    let Admin { session, s, token } = admin;
    let token: &str = &token;
    let to = format!("/admin/orders/{id}");
    let auth = Auth::bearer(token);
    let result = match action.as_str() {
        "ship" => {
            let o: Order = match state
                .api
                .read(&format!("/v1/orders/{id}"), reads(token, &s))
                .await
            {
                Ok(o) => o,
                Err(e) => return ErrorPage::from(e).into_response(),
            };
            let lines: Vec<Value> = o
                .lines
                .iter()
                .filter(|l| l.quantity > l.shipped_quantity + l.cancelled_quantity)
                .map(|l| json!({ "sku": l.sku, "quantity": l.quantity - l.shipped_quantity - l.cancelled_quantity }))
                .collect();
            let mut body = json!({ "tracking_number": form.tracking_number, "lines": lines });
            if !form.carrier.trim().is_empty() {
                body["carrier"] = json!(form.carrier);
            }
            state
                .api
                .post(&format!("/v1/orders/{id}/shipments"), Some(&body), auth)
                .await
        }
        "deliver" => {
            state
                .api
                .post(&format!("/v1/orders/{id}/deliveries"), None::<&()>, auth)
                .await
        }
        "refund" => {
            let o: Order = match state
                .api
                .read(&format!("/v1/orders/{id}"), reads(token, &s))
                .await
            {
                Ok(o) => o,
                Err(e) => return ErrorPage::from(e).into_response(),
            };
            let currency = o.payment.captured.currency;
            let Some(amount) = parse_money(&form.amount, &currency) else {
                session.update(|s| s.flash = Some(format!("“{}” is not an amount.", form.amount)));
                return see_other(&to);
            };
            let body = json!({ "amount": { "amount": amount, "currency": currency } });
            state
                .api
                .post(&format!("/v1/orders/{id}/refunds"), Some(&body), auth)
                .await
        }
        _ => return ErrorPage::not_found("There is no such action.").into_response(),
    };
    done(&session, result, &format!("Done: {action}."), &to)
}

#[derive(Debug, Deserialize)]
struct ReturnLine {
    sku: String,
    quantity: u32,
    #[serde(default)]
    received: u32,
}

#[derive(Debug, Deserialize)]
struct ReturnView {
    return_id: Uuid,
    order_id: Uuid,
    status: String,
    reason: String,
    lines: Vec<ReturnLine>,
    #[serde(default)]
    refund: Option<Money>,
}

#[derive(Debug, Deserialize)]
struct ReturnList {
    items: Vec<ReturnView>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// `/admin/returns`: requested returns first, with the receive form.
pub(super) async fn returns(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<ListQuery>,
) -> Response {
    let Admin { session, s, token } = admin;
    let token: &str = &token;
    let list: ReturnList = match state
        .api
        .read(
            &format!("/v1/admin/returns?{}", query.api(50)),
            reads(token, &s),
        )
        .await
    {
        Ok(l) => l,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let content = html! {
        h1 { "Returns" }
        nav.pager aria-label="Return states" {
            a href="/admin/returns" aria-current=[query.status.is_empty().then_some("page")] { "all" }
            @for status in ["requested", "received", "refunded"] {
                a href={ "/admin/returns?status=" (status) } aria-current=[(query.status == status).then_some("page")] { (status) }
            }
        }
        @if list.items.is_empty() { p.muted { "No returns here." } }
        @for r in &list.items {
            section.card {
                h2 { "Return " (r.return_id.simple().to_string()[..8].to_uppercase()) " · " (r.status) }
                p { "Order " a href={ "/admin/orders/" (r.order_id) } { (r.order_id.simple().to_string()[..8].to_uppercase()) } " · “" (r.reason) "”"
                    @if let Some(refund) = &r.refund { " · refunded " (refund.show()) } }
                ul { @for l in &r.lines { li { (l.quantity) " × " (l.sku) @if l.received > 0 { " (" (l.received) " received)" } } } }
                @if r.status == "requested" {
                    form.inline method="post" action={ "/admin/returns/" (r.return_id) "/receive" } {
                        (csrf(&s))
                        @for l in &r.lines {
                            input type="hidden" name={ "qty_" (l.sku) } value=(l.quantity);
                        }
                        label { "Warehouse " input name="warehouse" value="BER-1" required size="8"; }
                        label { input type="checkbox" name="restock" value="yes" checked; " back on sale" }
                        button type="submit" { "Receive all and refund" }
                    }
                }
            }
        }
        @if let Some(cursor) = &list.next_cursor {
            nav.pager aria-label="Pages" { a href=(query.next("/admin/returns", cursor)) rel="next" { "Older returns" } }
        }
    };
    admin_page(&session, &s, "Returns", content)
}

/// `POST /admin/returns/{id}/receive`: every announced unit arrived. The form names them
/// (`qty_<sku>`), with the warehouse and whether they go back on sale.
pub(super) async fn receive_return(
    State(state): State<AppState>,
    admin: Admin,
    OrderId(id): OrderId,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Admin { session, token, .. } = admin;
    let restock = form.get("restock").is_some_and(|v| v == "yes");
    let lines: Vec<Value> = form
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("qty_")?, v.trim().parse::<u32>().ok()?)))
        .map(|(sku, quantity)| json!({ "sku": sku, "quantity": quantity, "restock": restock }))
        .collect();
    let warehouse = form.get("warehouse").cloned().unwrap_or_default();
    let body = json!({ "warehouse": warehouse, "lines": lines });
    let result = state
        .api
        .post(
            &format!("/v1/returns/{id}/receive"),
            Some(&body),
            Auth::bearer(&token),
        )
        .await;
    done(
        &session,
        result,
        "Received; the refund is on its way.",
        "/admin/returns",
    )
}
