//! The back office (`/admin`): products (drafts too), stock per warehouse, orders by status
//! (ship, deliver, refund), returns (receive), promotions (create, activate, deactivate),
//! projections, and sales by day as an SVG chart.
//! Every page needs the admin's sign-in ([`Admin`]); everything goes through the APIs with
//! their token.

mod catalog;
mod orders;
mod promotions;

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::layout::{money, page, ErrorPage, Money, Shell};
use super::orders::status_label;
use super::see_other;
use crate::client::{ApiError, Auth, Written};
use crate::session::{Current, Session};
use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard))
        .route(
            "/admin/products",
            get(catalog::products).post(catalog::create_product),
        )
        .route(
            "/admin/products/{sku}",
            get(catalog::product).post(catalog::update_product),
        )
        .route(
            "/admin/products/{sku}/{action}",
            post(catalog::product_action),
        )
        .route("/admin/stock/{sku}", post(catalog::stock))
        .route("/admin/orders", get(orders::orders))
        .route("/admin/orders/{id}", get(orders::order))
        .route("/admin/orders/{id}/{action}", post(orders::order_action))
        .route("/admin/returns", get(orders::returns))
        .route("/admin/returns/{id}/receive", post(orders::receive_return))
        .route(
            "/admin/promotions",
            get(promotions::promotions).post(promotions::create_promotion),
        )
        .route(
            "/admin/promotions/{id}/{action}",
            post(promotions::promotion_action),
        )
}

/// A request of the signed-in admin: their session and token. Anyone else is sent to the
/// sign-in form.
pub(crate) struct Admin {
    pub session: Current,
    pub s: Session,
    pub token: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Ok(session) = Current::from_request_parts(parts, state).await;
        let s = session.get();
        let Some(token) = s.admin.as_ref().map(|a| a.token.clone()) else {
            return Err(see_other("/account/sign-in?next=/admin"));
        };
        Ok(Self { session, s, token })
    }
}

pub(crate) fn reads<'a>(token: &'a str, session: &'a Session) -> Auth<'a> {
    Auth {
        bearer: Some(token),
        min_position: session.position.as_deref(),
        ..Auth::default()
    }
}

pub(crate) fn admin_page(session: &Current, s: &Session, title: &str, content: Markup) -> Response {
    let content = html! {
        nav.admin-nav aria-label="Back office" {
            a href="/admin" { "Dashboard" }
            a href="/admin/products" { "Products" }
            a href="/admin/orders" { "Orders" }
            a href="/admin/returns" { "Returns" }
            a href="/admin/promotions" { "Promotions" }
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
pub(crate) fn done(
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

/// A list page's filter and position.
#[derive(Debug, Default, Deserialize, Serialize)]
pub(crate) struct ListQuery {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cursor: String,
}

impl ListQuery {
    /// The API's query string for this page of `limit` items.
    pub(crate) fn api(&self, limit: u32) -> String {
        let mut params = vec![("limit", limit.to_string())];
        if !self.status.is_empty() {
            params.push(("status", self.status.clone()));
        }
        if !self.cursor.is_empty() {
            params.push(("cursor", self.cursor.clone()));
        }
        serde_urlencoded::to_string(params).unwrap_or_default()
    }

    /// The next page of `path` after `cursor`, with the same filter.
    pub(crate) fn next(&self, path: &str, cursor: &str) -> String {
        let next = ListQuery {
            status: self.status.clone(),
            cursor: cursor.to_owned(),
        };
        format!(
            "{path}?{}",
            serde_urlencoded::to_string(&next).unwrap_or_default()
        )
    }
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
async fn dashboard(State(state): State<AppState>, admin: Admin) -> Response {
    let Admin { session, s, token } = admin;
    let token: &str = &token;
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
