//! The shopper's account: register, sign in and out, profile, order history, delete.
//! The admin signs in through the same form and lands in the back office.

use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use super::layout::{csrf, field_error, form_error, page, ErrorPage, Money, Shell};
use super::orders::status_label;
use super::{refused, render, see_other};
use crate::client::{ApiError, Auth};
use crate::form::Form;
use crate::session::{Current, Session, SignedIn};
use crate::AppState;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Next {
    #[serde(default)]
    next: String,
}

/// Where to go after signing in: a path of this site only (never another origin). Only
/// visible ASCII: a browser drops tabs and newlines from a `Location`, which would turn
/// `/\t/evil.example` into `//evil.example`.
fn local(next: &str) -> Option<&str> {
    let visible = next.chars().all(|c| c.is_ascii_graphic());
    (visible && next.starts_with('/') && !next.starts_with("//") && !next.contains('\\'))
        .then_some(next)
}

fn sign_in_page(session: &Session, email: &str, next: &str, error: Option<&ApiError>) -> Markup {
    html! {
        h1 { "Sign in" }
        form.stack method="post" action="/account/sign-in" {
            (csrf(session))
            input type="hidden" name="next" value=(next);
            (form_error(error))
            label { "Email" input type="email" name="email" value=(email) required autocomplete="username"; (field_error(error, "email")) }
            label { "Password" input type="password" name="password" required autocomplete="current-password"; (field_error(error, "password")) }
            button type="submit" { "Sign in" }
        }
        p { "New here? " a href="/account/register" { "Create an account" } }
    }
}

/// `/account/sign-in`.
pub(crate) async fn sign_in_form(session: Current, Query(next): Query<Next>) -> Response {
    let s = session.get();
    render(&session, "Sign in", sign_in_page(&s, "", &next.next, None))
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignInForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

#[derive(Debug, Deserialize)]
struct Token {
    access_token: String,
    role: String,
    customer_id: Option<String>,
    expires_in: u64,
}

/// Signs `email` in; the session moves to a new id.
async fn sign_in_as(
    state: &AppState,
    session: &Current,
    email: &str,
    password: &str,
) -> Result<String, ApiError> {
    let body = json!({ "email": email, "password": password });
    let token = state
        .api
        .write::<Token>(Method::POST, "/v1/auth/token", Some(&body), Auth::default())
        .await?
        .body;
    session.renew();
    // A little before the token does, so no page is rendered with a token about to fail.
    let lifetime = Duration::from_secs(token.expires_in.saturating_sub(30));
    let signed_in = SignedIn {
        token: token.access_token,
        email: email.trim().to_lowercase(),
        customer_id: token.customer_id,
        expires: Instant::now() + lifetime,
    };
    let role = token.role;
    session.update(|s| {
        if role == "admin" {
            s.admin = Some(signed_in);
        } else {
            // A cart opened as a guest stays usable (its token still opens it); another
            // customer's cart does not.
            let switching =
                s.customer.as_ref().map(|c| &c.customer_id) != Some(&signed_in.customer_id);
            if switching && s.cart.as_ref().is_some_and(|c| c.token.is_none()) {
                s.cart = None;
            }
            s.customer = Some(signed_in);
        }
    });
    Ok(role)
}

/// `POST /account/sign-in`.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    session: Current,
    Form(form): Form<SignInForm>,
) -> Response {
    match sign_in_as(&state, &session, &form.email, &form.password).await {
        Ok(role) => {
            let fallback = if role == "admin" {
                "/admin"
            } else {
                "/account"
            };
            see_other(local(&form.next).unwrap_or(fallback))
        }
        Err(e) if e.status().is_client_error() => {
            let s = session.get();
            let content = sign_in_page(&s, &form.email, &form.next, Some(&e));
            refused(&s, "Sign in", content, e.status())
        }
        Err(e) => ErrorPage::from(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RegisterForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

fn register_page(session: &Session, form: &RegisterForm, error: Option<&ApiError>) -> Markup {
    html! {
        h1 { "Create an account" }
        form.stack method="post" action="/account/register" {
            (csrf(session))
            (form_error(error))
            label { "Name" input name="name" value=(form.name) required autocomplete="name"; (field_error(error, "name")) }
            label { "Email" input type="email" name="email" value=(form.email) required autocomplete="email"; (field_error(error, "email")) }
            label { "Password (at least 10 characters)" input type="password" name="password" required minlength="10" autocomplete="new-password"; (field_error(error, "password")) }
            button type="submit" { "Create account" }
        }
    }
}

/// `/account/register`.
pub(crate) async fn register_form(session: Current) -> Response {
    let s = session.get();
    page(
        Shell {
            title: "Create an account",
            session: &s,
            flash: None,
            refresh: None,
        },
        register_page(&s, &RegisterForm::default(), None),
    )
    .into_response()
}

/// `POST /account/register`: registers, then signs in.
pub(crate) async fn register(
    State(state): State<AppState>,
    session: Current,
    Form(form): Form<RegisterForm>,
) -> Response {
    let body = json!({ "name": form.name, "email": form.email, "password": form.password });
    let registered = state
        .api
        .post("/v1/customers", Some(&body), Auth::default())
        .await;
    let result = match registered {
        Ok(w) => {
            session.update(|s| s.position = w.position);
            sign_in_as(&state, &session, &form.email, &form.password).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => {
            session.update(|s| s.flash = Some("Welcome! Your account is ready.".into()));
            see_other("/account")
        }
        Err(e) if e.status().is_client_error() => {
            let s = session.get();
            let content = register_page(&s, &form, Some(&e));
            refused(&s, "Create an account", content, e.status())
        }
        Err(e) => ErrorPage::from(e).into_response(),
    }
}

/// A customer's default shipping address as the query API shows it.
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct Address {
    #[serde(default)]
    pub recipient: String,
    #[serde(default)]
    pub line1: String,
    #[serde(default)]
    pub line2: Option<String>,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub postal_code: String,
    #[serde(default)]
    pub country: String,
}

/// The signed-in customer as the query API shows them.
#[derive(Debug, Deserialize)]
pub(crate) struct Me {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub address: Option<Address>,
}

#[derive(Debug, Deserialize)]
struct OrderSummary {
    id: uuid::Uuid,
    status: String,
    total: Money,
    placed_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Deserialize)]
struct OrderPage {
    items: Vec<OrderSummary>,
}

/// `/account`: profile and order history.
pub(crate) async fn show(State(state): State<AppState>, session: Current) -> Response {
    let s = session.get();
    let Some(customer) = &s.customer else {
        return see_other("/account/sign-in?next=/account");
    };
    let auth = Auth {
        bearer: Some(&customer.token),
        min_position: s.position.as_deref(),
        ..Auth::default()
    };
    let me: Result<Me, _> = state.api.read("/v1/customers/me", auth).await;
    let orders: Result<OrderPage, _> = state.api.read("/v1/orders?limit=50", auth).await;
    let (me, orders) = match (me, orders) {
        (Ok(me), Ok(orders)) => (me, orders.items),
        (Err(e), _) | (_, Err(e)) if e.status() == axum::http::StatusCode::UNAUTHORIZED => {
            // The token expired or was revoked: sign in again.
            session.update(|s| s.customer = None);
            return see_other("/account/sign-in?next=/account");
        }
        (Err(e), _) | (_, Err(e)) => return ErrorPage::from(e).into_response(),
    };
    let address = me.address.clone().unwrap_or_default();
    let content = html! {
        h1 { "Your account" }
        p { (me.name.clone().unwrap_or_default()) " · " (me.email.clone().unwrap_or_default()) }
        details {
            summary { "Profile and default shipping address" }
            form.stack method="post" action="/account/profile" {
                (csrf(&s))
                label { "Name" input name="name" value=(me.name.clone().unwrap_or_default()) required autocomplete="name"; }
                label { "Phone (optional)" input type="tel" name="phone" value=(me.phone.clone().unwrap_or_default()) autocomplete="tel"; }
                fieldset {
                    legend { "Default shipping address (optional)" }
                    label { "Recipient" input name="recipient" value=(address.recipient) autocomplete="name"; }
                    label { "Address" input name="line1" value=(address.line1) autocomplete="address-line1"; }
                    label { "Address line 2" input name="line2" value=(address.line2.clone().unwrap_or_default()) autocomplete="address-line2"; }
                    label { "Postal code" input name="postal_code" value=(address.postal_code) autocomplete="postal-code"; }
                    label { "City" input name="city" value=(address.city) autocomplete="address-level2"; }
                    label { "Country (two letters)" input name="country" value=(address.country) maxlength="2" autocomplete="country"; }
                }
                button type="submit" { "Save profile" }
            }
        }
        h2 { "Your orders" }
        @if orders.is_empty() {
            p { "No orders yet." }
        } @else {
            table {
                thead { tr { th { "Order" } th { "Placed" } th { "Status" } th.num { "Total" } } }
                tbody {
                    @for o in &orders {
                        tr {
                            td { a href={ "/orders/" (o.id) } { (o.id.simple().to_string()[..8].to_uppercase()) } }
                            td { (o.placed_at.format("%Y-%m-%d")) }
                            td { span class={ "status status-" (o.status) } { (status_label(&o.status)) } }
                            td.num { (o.total.show()) }
                        }
                    }
                }
            }
        }
        h2 { "Delete your account" }
        p { "Your name, email, addresses and login are erased for good; orders stay, without your personal data." }
        form method="post" action="/account/delete" {
            (csrf(&s))
            label { input type="checkbox" name="confirm" value="yes" required; " I understand this cannot be undone" }
            " "
            button.danger type="submit" { "Delete my account" }
        }
    };
    render(&session, "Your account", content)
}

#[derive(Debug, Deserialize)]
pub(crate) struct ProfileForm {
    name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    recipient: String,
    #[serde(default)]
    line1: String,
    #[serde(default)]
    line2: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    postal_code: String,
    #[serde(default)]
    country: String,
}

/// `POST /account/profile`: name, phone and (when given) the default shipping address.
pub(crate) async fn update_profile(
    State(state): State<AppState>,
    session: Current,
    Form(form): Form<ProfileForm>,
) -> Response {
    let s = session.get();
    let Some(customer) = s.customer.clone() else {
        return see_other("/account/sign-in?next=/account");
    };
    let Some(id) = customer.customer_id.clone() else {
        return see_other("/account");
    };
    let mut body = json!({ "name": form.name, "phone": form.phone.trim() });
    if !form.line1.trim().is_empty() {
        let mut address = json!({
            "name": form.recipient, "line1": form.line1, "city": form.city,
            "postal_code": form.postal_code, "country": form.country.trim().to_uppercase(),
        });
        if !form.line2.trim().is_empty() {
            address["line2"] = json!(form.line2);
        }
        body["address"] = address;
    }
    let result = state
        .api
        .write::<Value>(
            Method::PATCH,
            &format!("/v1/customers/{id}"),
            Some(&body),
            Auth::bearer(&customer.token),
        )
        .await;
    match result {
        Ok(w) => session.update(|s| {
            s.position = w.position.or(s.position.take());
            s.flash = Some("Your profile is saved.".into());
        }),
        Err(e) if e.status().is_client_error() => {
            session.update(|s| s.flash = Some(format!("Your profile was not saved: {e}")))
        }
        Err(e) => return ErrorPage::from(e).into_response(),
    }
    see_other("/account")
}

/// `POST /account/sign-out`: forgets both sign-ins (and the cart of the account).
pub(crate) async fn sign_out(session: Current, Form(_): Form<Value>) -> Response {
    // Nothing of this visit stays for the next person at this browser: not the cart, not
    // the orders placed as a guest.
    session.update(|s| {
        s.cart = None;
        s.guest_orders.clear();
        s.customer = None;
        s.admin = None;
        s.position = None;
        s.flash = Some("You are signed out.".into());
    });
    session.renew();
    see_other("/")
}

#[derive(Debug, Deserialize)]
pub(crate) struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

/// `POST /account/delete`: erases the customer (the API revokes every token).
pub(crate) async fn delete(
    State(state): State<AppState>,
    session: Current,
    Form(form): Form<DeleteForm>,
) -> Response {
    let s = session.get();
    let Some(customer) = s.customer.clone() else {
        return see_other("/account/sign-in");
    };
    if form.confirm != "yes" {
        session.update(|s| s.flash = Some("Tick the box to confirm.".into()));
        return see_other("/account");
    }
    let Some(id) = customer.customer_id.clone() else {
        return ErrorPage::bad_request("This account cannot be deleted here.").into_response();
    };
    let result = state
        .api
        .write::<Value>(
            Method::DELETE,
            &format!("/v1/customers/{id}"),
            None::<&()>,
            Auth::bearer(&customer.token),
        )
        .await;
    match result {
        Ok(_) => {
            session.update(|s| {
                s.customer = None;
                s.cart = None;
                s.flash = Some("Your account is deleted.".into());
            });
            session.renew();
            see_other("/")
        }
        Err(e) => ErrorPage::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::local;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local("/checkout"), Some("/checkout"));
        assert_eq!(local("//evil.example/"), None);
        assert_eq!(local("https://evil.example/"), None);
        assert_eq!(local("/\\evil.example"), None);
        assert_eq!(local("/\t/evil.example"), None);
        assert_eq!(local("/\n/evil.example"), None);
        assert_eq!(local("/caf\u{e9}"), None);
        assert_eq!(local(""), None);
    }
}
