//! The back office's catalog: products by state, a product's details, price and state, and
//! its stock per warehouse.

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{admin_page, done, reads, Admin, ListQuery};
use crate::client::Auth;
use crate::form::Form;
use crate::pages::layout::{csrf, money, parse_money, ErrorPage};
use crate::pages::shop::{Product, ProductPage};
use crate::pages::{see_other, Sku};
use crate::AppState;

/// `/admin/products?status=&cursor=`: products by state (drafts first), 50 a page, and a
/// new product's form.
pub(super) async fn products(
    State(state): State<AppState>,
    admin: Admin,
    Query(mut query): Query<ListQuery>,
) -> Response {
    let Admin { session, s, token } = admin;
    let token: &str = &token;
    if query.status.is_empty() {
        query.status = "draft".into();
    }
    let status = query.status.as_str();
    let list: ProductPage = match state
        .api
        .read(&format!("/v1/products?{}", query.api(50)), reads(token, &s))
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
        @if let Some(cursor) = &list.next_cursor {
            nav.pager aria-label="Pages" { a href=(query.next("/admin/products", cursor)) rel="next" { "More products" } }
        }
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
pub(super) struct ProductForm {
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
pub(super) async fn create_product(
    State(state): State<AppState>,
    admin: Admin,
    Form(form): Form<ProductForm>,
) -> Response {
    let Admin { session, token, .. } = admin;
    let token: &str = &token;
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
pub(super) async fn product(
    State(state): State<AppState>,
    admin: Admin,
    Sku(sku): Sku,
) -> Response {
    let Admin { session, s, token } = admin;
    let token: &str = &token;
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
pub(super) async fn update_product(
    State(state): State<AppState>,
    admin: Admin,
    Sku(sku): Sku,
    Form(form): Form<ProductForm>,
) -> Response {
    let Admin { session, s, token } = admin;
    let token: &str = &token;
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
pub(super) async fn product_action(
    State(state): State<AppState>,
    admin: Admin,
    Sku(sku): Sku,
    Path((_, action)): Path<(String, String)>,
    Form(_): Form<Value>,
) -> Response {
    let Admin { session, token, .. } = admin;
    let token: &str = &token;
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
pub(super) struct StockForm {
    kind: String,
    warehouse: String,
    quantity: i64,
    #[serde(default)]
    reason: String,
}

/// `POST /admin/stock/{sku}`: a receipt or an adjustment.
pub(super) async fn stock(
    State(state): State<AppState>,
    admin: Admin,
    Sku(sku): Sku,
    Form(form): Form<StockForm>,
) -> Response {
    let Admin { session, token, .. } = admin;
    let token: &str = &token;
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
