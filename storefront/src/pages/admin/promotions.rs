//! The back office's promotions: the list with the uses each holds, a new promotion (a
//! percentage or an amount off, by code or automatic, with a usage limit and an end), and
//! activating or deactivating one.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{admin_page, done, reads, Admin};
use crate::client::Auth;
use crate::form::Form;
use crate::pages::layout::{csrf, money, parse_money, ErrorPage};
use crate::pages::{see_other, OrderId};
use crate::AppState;

#[derive(Debug, Deserialize)]
struct Promotion {
    id: uuid::Uuid,
    name: String,
    #[serde(default)]
    code: Option<String>,
    discount: Value,
    #[serde(default)]
    usage_limit: Option<u32>,
    #[serde(default)]
    ends_at: Option<chrono::DateTime<chrono::Utc>>,
    active: bool,
    uses: i64,
}

#[derive(Debug, Deserialize)]
struct Promotions {
    items: Vec<Promotion>,
}

/// What a discount takes off, in words.
fn discount(d: &Value) -> Markup {
    html! {
        @if let Some(p) = d.get("percent") {
            (p.as_str().map_or_else(|| p.to_string(), str::to_owned)) "% off"
        } @else if let Some(a) = d.get("amount") {
            (money(a["amount"].as_i64().unwrap_or(0), a["currency"].as_str().unwrap_or(""))) " off"
        } @else if let Some(b) = d.get("buy_x_get_y") {
            "buy " (b["buy"]) " get " (b["get"])
        } @else {
            "free shipping"
        }
    }
}

/// `/admin/promotions`: every promotion, newest first, and a new one's form.
pub(super) async fn promotions(State(state): State<AppState>, admin: Admin) -> Response {
    let Admin { session, s, token } = admin;
    let list: Promotions = match state
        .api
        .read("/v1/promotions?limit=100", reads(&token, &s))
        .await
    {
        Ok(p) => p,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let content = html! {
        h1 { "Promotions" }
        table {
            thead { tr { th { "Name" } th { "Code" } th { "Discount" } th.num { "Uses" } th { "Ends" } th { "State" } th { span.visually-hidden { "Actions" } } } }
            tbody {
                @for p in &list.items {
                    tr {
                        td { (p.name) }
                        td { @if let Some(code) = &p.code { code { (code) } } @else { span.muted { "automatic" } } }
                        td { (discount(&p.discount)) }
                        td.num { (p.uses) @if let Some(limit) = p.usage_limit { " / " (limit) } }
                        td { @if let Some(end) = p.ends_at { (end.format("%Y-%m-%d %H:%M")) } @else { "—" } }
                        td { @if p.active { "active" } @else { "inactive" } }
                        td {
                            form.inline method="post" action={ "/admin/promotions/" (p.id) "/" (if p.active { "deactivate" } else { "activate" }) } {
                                (csrf(&s))
                                button.secondary type="submit" { @if p.active { "Deactivate" } @else { "Activate" } }
                            }
                        }
                    }
                }
            }
        }
        @if list.items.is_empty() { p.muted { "No promotions yet." } }
        h2 { "New promotion" }
        form.stack method="post" action="/admin/promotions" {
            (csrf(&s))
            label { "Name (shown to shoppers)" input name="name" required maxlength="200"; }
            label { "Coupon code (leave empty to apply automatically)" input name="code" maxlength="32" pattern="[A-Za-z0-9_-]{3,32}"; }
            label { "Percent off (e.g. 10 or 12.5)" input name="percent" inputmode="decimal"; }
            label { "Or an amount off (EUR)" input name="amount" inputmode="decimal"; }
            label { "Usage limit (orders, optional)" input name="usage_limit" type="number" min="1"; }
            label { "Ends (optional)" input name="ends_at" type="date"; }
            button type="submit" { "Create" }
        }
    };
    admin_page(&session, &s, "Promotions", content)
}

#[derive(Debug, Deserialize)]
pub(super) struct PromotionForm {
    name: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    percent: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    usage_limit: String,
    #[serde(default)]
    ends_at: String,
}

/// `POST /admin/promotions`: a new, active promotion; the API's refusal shows as the message.
pub(super) async fn create_promotion(
    State(state): State<AppState>,
    admin: Admin,
    Form(form): Form<PromotionForm>,
) -> Response {
    let Admin { session, token, .. } = admin;
    let refuse = |message: String| {
        session.update(|s| s.flash = Some(message));
        see_other("/admin/promotions")
    };
    let discount = match (form.percent.trim(), form.amount.trim()) {
        (p, "") if !p.is_empty() => json!({ "percent": p.replace(',', ".") }),
        ("", a) if !a.is_empty() => match parse_money(a, "EUR") {
            Some(amount) => json!({ "amount": { "amount": amount, "currency": "EUR" } }),
            None => return refuse(format!("“{a}” is not an amount.")),
        },
        _ => return refuse("Give either a percentage or an amount off.".into()),
    };
    let mut body = json!({ "name": form.name, "discount": discount });
    if !form.code.trim().is_empty() {
        body["code"] = json!(form.code.trim());
    }
    if !form.usage_limit.trim().is_empty() {
        match form.usage_limit.trim().parse::<u32>() {
            Ok(limit) => body["usage_limit"] = json!(limit),
            Err(_) => return refuse(format!("“{}” is not a number of orders.", form.usage_limit)),
        }
    }
    if !form.ends_at.trim().is_empty() {
        match chrono::NaiveDate::parse_from_str(form.ends_at.trim(), "%Y-%m-%d") {
            // The end of that day, UTC.
            Ok(day) => body["ends_at"] = json!(format!("{day}T23:59:59Z")),
            Err(_) => return refuse(format!("“{}” is not a date.", form.ends_at)),
        }
    }
    let result = state
        .api
        .post("/v1/promotions", Some(&body), Auth::bearer(&token))
        .await;
    done(&session, result, "Promotion created.", "/admin/promotions")
}

/// `POST /admin/promotions/{id}/activate` or `.../deactivate`.
pub(super) async fn promotion_action(
    State(state): State<AppState>,
    admin: Admin,
    OrderId(id): OrderId,
    Path((_, action)): Path<(String, String)>,
) -> Response {
    let Admin { session, token, .. } = admin;
    if !matches!(action.as_str(), "activate" | "deactivate") {
        return ErrorPage::not_found("There is no such page.").into_response();
    }
    let result = state
        .api
        .post(
            &format!("/v1/promotions/{id}/{action}"),
            None::<&()>,
            Auth::bearer(&token),
        )
        .await;
    done(
        &session,
        result,
        &format!("Promotion {action}d."),
        "/admin/promotions",
    )
}
