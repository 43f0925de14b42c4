//! The pages: the shop (`/`, `/search`, `/products/{sku}`), the cart and checkout, orders, the
//! account, and the back office (`/admin`).

pub(crate) mod account;
pub(crate) mod admin;
pub(crate) mod cart;
pub(crate) mod layout;
pub(crate) mod orders;
pub(crate) mod shop;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use axum::http::StatusCode;
use maud::Markup;

use crate::client::Auth;
use crate::session::{Current, Session};
use crate::AppState;

/// Every page and form.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(shop::home))
        .route("/search", get(shop::search))
        .route("/search/suggest", get(shop::suggest))
        .route("/products/{sku}", get(shop::product))
        .route("/cart", get(cart::show))
        .route("/cart/items", post(cart::add))
        .route("/cart/items/{sku}", post(cart::change))
        .route("/cart/coupons", post(cart::apply_coupon))
        .route("/cart/coupons/remove", post(cart::remove_coupon))
        .route("/checkout", get(cart::checkout_form).post(cart::checkout))
        .route("/orders/{id}", get(orders::show))
        .route("/orders/{id}/status", get(orders::status))
        .route("/orders/{id}/cancel", post(orders::cancel))
        .route("/orders/{id}/returns", post(orders::request_return))
        .route("/account", get(account::show))
        .route(
            "/account/sign-in",
            get(account::sign_in_form).post(account::sign_in),
        )
        .route(
            "/account/register",
            get(account::register_form).post(account::register),
        )
        .route("/account/sign-out", post(account::sign_out))
        .route("/account/profile", post(account::update_profile))
        .route("/account/delete", post(account::delete))
        .merge(admin::router())
        .fallback(|| async { layout::ErrorPage::not_found("There is no such page.") })
}

const STYLE: &str = include_str!("../../assets/style.css");
/// htmx 2.0.11 from its npm package (`htmx.org`, Zero-Clause BSD), vendored: no CDN.
const HTMX: &str = include_str!("../../assets/htmx.min.js");

/// The stylesheet and htmx, cached by browsers for a day.
pub(crate) fn assets() -> Router {
    fn asset(body: &'static str, kind: &'static str) -> Response {
        (
            [
                (CONTENT_TYPE, kind),
                (CACHE_CONTROL, "public, max-age=86400"),
            ],
            body,
        )
            .into_response()
    }
    Router::new()
        .route(
            "/assets/style.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route(
            "/assets/htmx.min.js",
            get(|| async { asset(HTMX, "text/javascript; charset=utf-8") }),
        )
}

/// How this session reads: as its customer (or admin) if signed in, waiting for its last
/// write.
pub(crate) fn reader(session: &Session) -> Auth<'_> {
    Auth {
        bearer: session.customer.as_ref().map(|c| c.token.as_str()),
        min_position: session.position.as_deref(),
        ..Auth::default()
    }
}

/// The `{name}` segment of the request's path.
async fn path_param<S: Send + Sync>(parts: &mut Parts, state: &S, name: &str) -> Option<String> {
    let params = RawPathParams::from_request_parts(parts, state).await.ok()?;
    params
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// The `{sku}` of the path, in the API's SKU grammar: anything else is a page that does not
/// exist, and never reaches an API's URL.
pub(crate) struct Sku(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Sku {
    type Rejection = layout::ErrorPage;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_param(parts, state, "sku")
            .await
            .filter(|sku| {
                (1..=64).contains(&sku.len())
                    && sku
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            })
            .map(Sku)
            .ok_or_else(|| layout::ErrorPage::not_found("There is no such product."))
    }
}

/// The order `{id}` of the path; anything but a UUID is a page that does not exist.
pub(crate) struct OrderId(pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for OrderId {
    type Rejection = layout::ErrorPage;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_param(parts, state, "id")
            .await
            .and_then(|id| id.parse().ok())
            .map(OrderId)
            .ok_or_else(|| layout::ErrorPage::not_found("There is no such page."))
    }
}

/// A page of this session, with its message from the last action, if any.
pub(crate) fn render(session: &Current, title: &str, content: Markup) -> Response {
    let s = session.get();
    let shell = layout::Shell {
        title,
        session: &s,
        flash: session.take_flash(),
        refresh: None,
    };
    layout::page(shell, content).into_response()
}

/// A form shown again under the API's refusal (its status, its message in the content).
pub(crate) fn refused(s: &Session, title: &str, content: Markup, status: StatusCode) -> Response {
    let shell = layout::Shell {
        title,
        session: s,
        flash: None,
        refresh: None,
    };
    (status, layout::page(shell, content)).into_response()
}

/// After a form: to `to`, with a message for the next page.
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}
