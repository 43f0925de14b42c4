//! The back office (`/admin`): products (drafts too), stock per warehouse, orders by status
//! (ship, deliver, refund), returns (receive), projections, and sales by day as an SVG chart.
//! Every page needs the admin's sign-in; everything goes through the APIs with their token.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::layout::{csrf, money, page, parse_money, ErrorPage, Money, Shell};
use super::orders::{status_label, Order};
use super::see_other;
use super::shop::{Product, ProductPage};
use crate::client::{ApiError, Auth, Written};
use crate::form::Form;
use crate::session::{Current, Session};
use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/products", get(products).post(create_product))
        .route("/admin/products/{sku}", get(product).post(update_product))
        .route("/admin/products/{sku}/{action}", post(product_action))
        .route("/admin/stock/{sku}", post(stock))
        .route("/admin/orders", get(orders))
        .route("/admin/orders/{id}", get(order))
        .route("/admin/orders/{id}/{action}", post(order_action))
        .route("/admin/returns", get(returns))
        .route("/admin/returns/{id}/receive", post(receive_return))
}

/// The admin's token, if the admin signed in.
fn admin(session: &Session) -> Option<&str> {
    session.admin.as_ref().map(|a| a.token.as_str())
}

fn to_sign_in() -> Response {
    see_other("/account/sign-in?next=/admin")
}

fn reads<'a>(token: &'a str, session: &'a Session) -> Auth<'a> {
    Auth {
        bearer: Some(token),
        min_position: session.position.as_deref(),
        ..Auth::default()
    }
}

fn admin_page(session: &Current, s: &Session, title: &str, content: Markup) -> Response {
    let content = html! {
        nav.admin-nav aria-label="Back office" {
            a href="/admin" { "Dashboard" }
            a href="/admin/products" { "Products" }
            a href="/admin/orders" { "Orders" }
            a href="/admin/returns" { "Returns" }
        }
        (content)
    };
    page(
        Shell {
            title,
            session: s,
            flash: session.take_flash(),
            refresh: None,
        },
        content,
    )
    .into_response()
}

/// After a back-office action: back to `to` with the outcome as a message.
fn done(
    session: &Current,
    result: Result<Written<Value>, ApiError>,
    ok: &str,
    to: &str,
) -> Response {
    match result {
        Ok(w) => session.update(|s| {
            s.position = w.position.or(s.position.take());
            s.flash = Some(ok.to_owned());
        }),
        Err(e) if e.status().is_client_error() => {
            session.update(|s| s.flash = Some(format!("Refused: {e}")))
        }
        Err(e) => return ErrorPage::from(e).into_response(),
    }
    see_other(to)
}

#[derive(Debug, Deserialize)]
struct Day {
    day: chrono::NaiveDate,
    orders: i64,
    net: Money,
}

#[derive(Debug, Deserialize)]
struct Sales {
    days: Vec<Day>,
    #[serde(default)]
    orders_by_status: BTreeMap<String, i64>,
}

#[derive(Debug, Deserialize)]
struct Projection {
    name: String,
    state: String,
    lag_events: i64,
    lag_seconds: f64,
    #[serde(default)]
    parked: i64,
    #[serde(default)]
    rebuild: Option<Value>,
}

/// Net sales per day as bars, scaled to the best day (integers only).
fn sales_chart(from: chrono::NaiveDate, days: &[Day]) -> Markup {
    const DAYS: i64 = 30;
    const WIDTH: i64 = 600;
    const HEIGHT: i64 = 160;
    let bar = WIDTH / DAYS;
    let currency = days
        .first()
        .map(|d| d.net.currency.clone())
        .unwrap_or_default();
    let mut per_day = [0i64; DAYS as usize];
    for d in days.iter().filter(|d| d.net.currency == currency) {
        let i = (d.day - from).num_days();
        if (0..DAYS).contains(&i) {
            per_day[i as usize] += d.net.amount.max(0);
        }
    }
    let best = per_day.iter().copied().max().unwrap_or(0).max(1);
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT + 20) } role="img" aria-labelledby="sales-title" {
                title #sales-title { "Net sales per day, last 30 days" }
                @for (i, amount) in per_day.iter().enumerate() {
                    @let h = amount * HEIGHT / best;
                    rect.bar x=(i as i64 * bar + 1) y=(HEIGHT - h) width=(bar - 2) height=(h) {
                        title { ((from + chrono::Duration::days(i as i64)).format("%Y-%m-%d")) ": " (money(*amount, &currency)) }
                    }
                }
                text x="0" y=(HEIGHT + 15) { (from.format("%b %d")) }
                text x=(WIDTH - 40) y=(HEIGHT + 15) { "today" }
            }
            figcaption { "Net sales per day (" (if currency.is_empty() { "no sales yet".to_owned() } else { format!("best day {}", money(best, &currency)) }) ")" }
        }
    }
}

/// `/admin`: sales by day, orders by status, projections and their lag.
async fn dashboard(State(state): State<AppState>, session: Current) -> Response {
    let s = session.get();
    let Some(token) = admin(&s) else {
        return to_sign_in();
    };
    let today = chrono::Utc::now().date_naive();
    let from = today - chrono::Duration::days(29);
    let sales: Result<Sales, _> = state
        .api
        .read(
            &format!("/v1/admin/sales?from={from}&to={today}&granularity=day"),
            Auth::bearer(token),
        )
        .await;
    let projections: Result<Vec<Projection>, _> = state
        .api
        .read("/v1/admin/projections", Auth::bearer(token))
        .await;
    let (sales, projections) = match (sales, projections) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return ErrorPage::from(e).into_response(),
    };
    let confirmed: i64 = sales.days.iter().map(|d| d.orders).sum();
    let content = html! {
        h1 { "Back office" }
        (sales_chart(from, &sales.days))
        p { (confirmed) " confirmed orders in the last 30 days." }
        h2 { "Orders by status" }
        ul {
            @for (status, count) in &sales.orders_by_status {
                li { a href={ "/admin/orders?status=" (status) } { (status_label(status)) } ": " (count) }
            }
        }
        h2 { "Projections" }
        p.muted { "Rebuild one without downtime with " code { "mercato projections rebuild <name>" } "; its progress shows here." }
        table {
            thead { tr { th { "Read model" } th { "State" } th.num { "Lag (events)" } th.num { "Lag (s)" } th.num { "Parked" } th { "Rebuild" } } }
            tbody {
                @for p in &projections {
                    tr {
                        td { (p.name) }
                        td { (p.state) }
                        td.num { (p.lag_events) }
                        td.num { (format!("{:.1}", p.lag_seconds)) }
                        td.num { (p.parked) }
                        td { @if let Some(r) = &p.rebuild {
                            @if r["running"].as_bool() == Some(true) { "running, " } "v" (r["version"]) ", " (r["lag_events"]) " events behind"
                        } }
                    }
                }
            }
        }
    };
    admin_page(&session, &s, "Back office", content)
}

#[derive(Debug, Deserialize)]
struct ProductsQuery {
    #[serde(default)]
    status: String,
}

/// `/admin/products?status=`: products by state (drafts first), and a new product's form.
async fn products(
    State(state): State<AppState>,
    session: Current,
    Query(query): Query<ProductsQuery>,
) -> Response {
    let s = session.get();
    let Some(token) = admin(&s) else {
        return to_sign_in();
    };
    let status = match query.status.as_str() {
        "" => "draft",
        other => other,
    };
    let list: ProductPage = match state
        .api
        .read(
            &format!("/v1/products?status={status}&limit=100"),
            reads(token, &s),
        )
        .await
    {
        Ok(p) => p,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let content = html! {
        h1 { "Products" }
        nav.pager aria-label="Product states" {
            @for st in ["draft", "published", "unpublished", "discontinued"] {
                a href={ "/admin/products?status=" (st) } aria-current=[(st == status).then_some("page")] { (st) }
            }
        }
        table {
            thead { tr { th { "SKU" } th { "Name" } th.num { "Price" } th.num { "Available" } } }
            tbody {
                @for p in &list.items {
                    tr {
                        td { a href={ "/admin/products/" (p.sku) } { (p.sku) } }
                        td { (p.name) }
                        td.num { (p.price.show()) }
                        td.num { (p.available) }
                    }
                }
            }
        }
        @if list.items.is_empty() { p.muted { "No " (status) " products." } }
        @if list.next_cursor.is_some() { p.muted { "Showing the first 100." } }
        h2 { "New product" }
        form.stack method="post" action="/admin/products" {
            (csrf(&s))
            label { "SKU" input name="sku" required pattern="[A-Za-z0-9._-]{1,64}"; }
            label { "Name" input name="name" required; }
            label { "Brand" input name="brand" required; }
            label { "Category (e.g. apparel/shirts)" input name="category" required; }
            label { "Price (EUR)" input name="price" required inputmode="decimal"; }
            label { "Description" textarea name="description" {} }
            button type="submit" { "Create draft" }
        }
    };
    admin_page(&session, &s, "Products", content)
}

#[derive(Debug, Deserialize)]
struct ProductForm {
    #[serde(default)]
    sku: String,
    name: String,
    brand: String,
    category: String,
    price: String,
    #[serde(default)]
    description: String,
}

/// `POST /admin/products`: a new draft.
async fn create_product(
    State(state): State<AppState>,
    session: Current,
    Form(form): Form<ProductForm>,
) -> Response {
    let s = session.get();
    let Some(token) = admin(&s) else {
        return to_sign_in();
    };
    let Some(amount) = parse_money(&form.price, "EUR") else {
        session.update(|s| s.flash = Some(format!("“{}” is not a price.", form.price)));
        return see_other("/admin/products");
    };
    let body = json!({
        "sku": form.sku, "name": form.name, "brand": form.brand, "category": form.category,
        "description": form.description, "price": { "amount": amount, "currency": "EUR" },
    });
    let result = state
        .api
        .post("/v1/products", Some(&body), Auth::bearer(token))
        .await;
    let to = format!("/admin/products/{}", form.sku);
    match result {
        Ok(_) => done(
            &session,
            result,
            "Draft created. Publish it when it is ready.",
            &to,
        ),
        Err(_) => done(&session, result, "", "/admin/products"),
    }
}

/// `/admin/products/{sku}`: edit, price, publish / unpublish / discontinue, stock.
async fn product(
    State(state): State<AppState>,
    session: Current,
    Path(sku): Path<String>,
) -> Response {
    let s = session.get();
    let Some(token) = admin(&s) else {
        return to_sign_in();
    };
    let p: Product = match state
        .api
        .read(&format!("/v1/products/{sku}"), reads(token, &s))
        .await
    {
        Ok(p) => p,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let stock: Option<Value> = state
        .api
        .read(&format!("/v1/stock/{sku}"), reads(token, &s))
        .await
        .ok();
    let major = money(p.price.amount, &p.price.currency);
    let content = html! {
        h1 { (p.name) " " span class={ "status status-" (p.status) } { (p.status) } }
        p { a href={ "/products/" (p.sku) } { "See it in the shop" } }
        div.pager {
            @for (action, label, shown) in [
                ("publish", "Publish", p.status == "draft" || p.status == "unpublished"),
                ("unpublish", "Unpublish", p.status == "published"),
                ("discontinue", "Discontinue", p.status != "discontinued"),
            ] {
                @if shown {
                    form method="post" action={ "/admin/products/" (p.sku) "/" (action) } {
                        (csrf(&s))
                        button type="submit" class=[(action == "discontinue").then_some("danger")] { (label) }
                    }
                }
            }
        }
        h2 { "Details" }
        form.stack method="post" action={ "/admin/products/" (p.sku) } {
            (csrf(&s))
            label { "Name" input name="name" value=(p.name) required; }
            label { "Brand" input name="brand" value=(p.brand) required; }
            label { "Category" input name="category" value=(p.category.join("/")) required; }
            label { "Price (" (p.price.currency) ", now " (major) ")" input name="price" required inputmode="decimal"
                value=(major.split(' ').next().unwrap_or_default()); }
            label { "Description" textarea name="description" { (p.description) } }
            button type="submit" { "Save" }
        }
        h2 { "Stock" }
        @if let Some(stock) = &stock {
            table {
                thead { tr { th { "Warehouse" } th.num { "On hand" } th.num { "Reserved" } th.num { "Available" } } }
                tbody {
                    @for w in stock["warehouses"].as_array().into_iter().flatten() {
                        tr { td { (w["warehouse"].as_str().unwrap_or_default()) } td.num { (w["on_hand"]) } td.num { (w["reserved"]) } td.num { (w["available"]) } }
                    }
                }
            }
        } @else {
            p.muted { "No stock received yet." }
        }
        form.inline method="post" action={ "/admin/stock/" (p.sku) } {
            (csrf(&s))
            input type="hidden" name="kind" value="receipt";
            label { "Warehouse " input name="warehouse" value="BER-1" required size="8"; }
            label { "Units " input type="number" name="quantity" min="1" max="10000" value="10" required; }
            button type="submit" { "Receive stock" }
        }
        form.inline method="post" action={ "/admin/stock/" (p.sku) } {
            (csrf(&s))
            input type="hidden" name="kind" value="adjustment";
            label { "Warehouse " input name="warehouse" value="BER-1" required size="8"; }
            label { "Change (±) " input type="number" name="quantity" required; }
            label { "Reason "
                select name="reason" {
                    @for r in ["damaged", "lost", "found", "cycle_count", "returned", "correction"] { option value=(r) { (r.replace('_', " ")) } }
                }
            }
            button.secondary type="submit" { "Adjust" }
        }
    };
    admin_page(&session, &s, &p.name, content)
}

/// `POST /admin/products/{sku}`: saves the details and, when it changed, the price.
async fn update_product(
    State(state): State<AppState>,
    session: Current,
    Path(sku): Path<String>,
    Form(form): Form<ProductForm>,
) -> Response {
    let s = session.get();
    let Some(token) = admin(&s) else {
        return to_sign_in();
    };
    let to = format!("/admin/products/{sku}");
    let current: Product = match state
        .api
        .read(&format!("/v1/products/{sku}"), reads(token, &s))
        .await
    {
        Ok(p) => p,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let Some(amount) = parse_money(&form.price, &current.price.currency) else {
        session.update(|s| s.flash = Some(format!("“{}” is not a price.", form.price)));
        return see_other(&to);
    };
    let body = json!({ "name": form.name, "brand": form.brand, "category": form.category, "description": form.description });
    let result = state
        .api
        .write::<Value>(
            Method::PATCH,
            &format!("/v1/products/{sku}"),
            Some(&body),
            Auth::bearer(token),
        )
        .await;
    let result = match result {
        Ok(_) if amount != current.price.amount => {
            let price =
                json!({ "price": { "amount": amount, "currency": current.price.currency } });
            state
                .api
                .post(
                    &format!("/v1/products/{sku}/price"),
                    Some(&price),
                    Auth::bearer(token),
                )
                .await
        }
        other => other,
    };
    done(&session, result, "Saved.", &to)
}

/// `POST /admin/products/{sku}/{publish|unpublish|discontinue}`.
async fn product_action(
    State(state): State<AppState>,
    session: Current,
    Path((sku, action)): Path<(String, String)>,
    Form(_): Form<Value>,
) -> Response {
    let s = session.get();
    let Some(token) = admin(&s) else {
        return to_sign_in();
    };
    if !matches!(action.as_str(), "publish" | "unpublish" | "discontinue") {
        return ErrorPage::not_found("There is no such action.").into_response();
    }
    let result = state
        .api
        .post(
            &format!("/v1/products/{sku}/{action}"),
            None::<&()>,
            Auth::bearer(token),
        )
        .await;
    done(
        &session,
        result,
        &format!("Done: {action}."),
        &format!("/admin/products/{sku}"),
    )
}

#[derive(Debug, Deserialize)]
struct StockForm {
    kind: String,
    warehouse: String,
    quantity: i64,
    #[serde(default)]
    reason: String,
}

/// `POST /admin/stock/{sku}`: a receipt or an adjustment.
async fn stock(
    State(state): State<AppState>,
    session: Current,
    Path(sku): Path<String>,
    Form(form): Form<StockForm>,
) -> Response {
    let s = session.get();
    let Some(token) = admin(&s) else {
        return to_sign_in();
    };
    let (path, body, ok) = if form.kind == "receipt" {
        (
            format!("/v1/stock/{sku}/receipts"),
            json!({ "warehouse": form.warehouse, "quantity": form.quantity }),
            format!("Received {} units into {}.", form.quantity, form.warehouse),
        )
    } else {
        (
            format!("/v1/stock/{sku}/adjustments"),
            json!({ "warehouse": form.warehouse, "delta": form.quantity, "reason": form.reason }),
            format!("Adjusted {} by {}.", form.warehouse, form.quantity),
        )
    };
    let result = state
        .api
        .post(&path, Some(&body), Auth::bearer(token))
        .await;
    done(&session, result, &ok, &format!("/admin/products/{sku}"))
}

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
}

/// `/admin/orders?status=`: the newest orders, by status.
async fn orders(
    State(state): State<AppState>,
    session: Current,
    Query(query): Query<ProductsQuery>,
) -> Response {
    let s = session.get();
    let Some(token) = admin(&s) else {
        return to_sign_in();
    };
    let list: OrderList = match state
        .api
        .read("/v1/orders?limit=100", reads(token, &s))
        .await
    {
        Ok(l) => l,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &list.items {
        *counts.entry(o.status.as_str()).or_default() += 1;
    }
    let shown: Vec<&OrderSummary> = list
        .items
        .iter()
        .filter(|o| query.status.is_empty() || o.status == query.status)
        .collect();
    let content = html! {
        h1 { "Orders" }
        nav.pager aria-label="Order states" {
            a href="/admin/orders" aria-current=[query.status.is_empty().then_some("page")] { "all (" (list.items.len()) ")" }
            @for (status, count) in &counts {
                a href={ "/admin/orders?status=" (status) } aria-current=[(query.status == *status).then_some("page")] { (status_label(status)) " (" (count) ")" }
            }
        }
        table {
            thead { tr { th { "Order" } th { "Placed" } th { "Buyer" } th { "Status" } th.num { "Total" } } }
            tbody {
                @for o in &shown {
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
        p.muted { "The newest 100 orders." }
    };
    admin_page(&session, &s, "Orders", content)
}

/// `/admin/orders/{id}`: the order with ship, deliver and refund.
async fn order(State(state): State<AppState>, session: Current, Path(id): Path<Uuid>) -> Response {
    let s = session.get();
    let Some(token) = admin(&s) else {
        return to_sign_in();
    };
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
        .map(|l| l.quantity - l.shipped_quantity)
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
struct OrderActionForm {
    #[serde(default)]
    tracking_number: String,
    #[serde(default)]
    carrier: String,
    #[serde(default)]
    amount: String,
}

/// `POST /admin/orders/{id}/{ship|deliver|refund}`.
async fn order_action(
    State(state): State<AppState>,
    session: Current,
    Path((id, action)): Path<(Uuid, String)>,
    Form(form): Form<OrderActionForm>,
) -> Response {
    let s = session.get();
    let Some(token) = admin(&s) else {
        return to_sign_in();
    };
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
                .filter(|l| l.quantity > l.shipped_quantity)
                .map(|l| json!({ "sku": l.sku, "quantity": l.quantity - l.shipped_quantity }))
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
}

/// `/admin/returns`: requested returns first, with the receive form.
async fn returns(State(state): State<AppState>, session: Current) -> Response {
    let s = session.get();
    let Some(token) = admin(&s) else {
        return to_sign_in();
    };
    let list: ReturnList = match state
        .api
        .read("/v1/admin/returns?limit=100", reads(token, &s))
        .await
    {
        Ok(l) => l,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let content = html! {
        h1 { "Returns" }
        @if list.items.is_empty() { p.muted { "No returns." } }
        @for r in &list.items {
            section.card {
                h2 { "Return " (r.return_id.simple().to_string()[..8].to_uppercase()) " · " (r.status) }
                p { "Order " a href={ "/admin/orders/" (r.order_id) } { (r.order_id.simple().to_string()[..8].to_uppercase()) } " · “" (r.reason) "”"
                    @if let Some(refund) = &r.refund { " · refunded " (refund.show()) } }
                ul { @for l in &r.lines { li { (l.quantity) " × " (l.sku) @if l.received > 0 { " (" (l.received) " received)" } } } }
                @if r.status == "requested" {
                    form.inline method="post" action={ "/admin/returns/" (r.return_id) "/receive" } {
                        (csrf(&s))
                        label { "Warehouse " input name="warehouse" value="BER-1" required size="8"; }
                        label { input type="checkbox" name="restock" value="yes" checked; " back on sale" }
                        button type="submit" { "Receive all and refund" }
                    }
                }
            }
        }
    };
    admin_page(&session, &s, "Returns", content)
}

#[derive(Debug, Deserialize)]
struct ReceiveForm {
    warehouse: String,
    #[serde(default)]
    restock: String,
}

/// `POST /admin/returns/{id}/receive`: every announced unit arrived.
async fn receive_return(
    State(state): State<AppState>,
    session: Current,
    Path(id): Path<Uuid>,
    Form(form): Form<ReceiveForm>,
) -> Response {
    let s = session.get();
    let Some(token) = admin(&s) else {
        return to_sign_in();
    };
    let list: ReturnList = match state
        .api
        .read(
            "/v1/admin/returns?status=requested&limit=100",
            reads(token, &s),
        )
        .await
    {
        Ok(l) => l,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let Some(r) = list.items.iter().find(|r| r.return_id == id) else {
        session.update(|s| s.flash = Some("That return is no longer waiting.".into()));
        return see_other("/admin/returns");
    };
    let restock = form.restock == "yes";
    let lines: Vec<Value> = r
        .lines
        .iter()
        .map(|l| json!({ "sku": l.sku, "quantity": l.quantity, "restock": restock }))
        .collect();
    let body = json!({ "warehouse": form.warehouse, "lines": lines });
    let result = state
        .api
        .post(
            &format!("/v1/returns/{id}/receive"),
            Some(&body),
            Auth::bearer(token),
        )
        .await;
    done(
        &session,
        result,
        "Received; the refund is on its way.",
        "/admin/returns",
    )
}
