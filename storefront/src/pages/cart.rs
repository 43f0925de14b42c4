//! The cart (change a quantity, remove a line) and the checkout, as a guest or signed in.

use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::account::Me;
use super::layout::{csrf, field_error, form_error, totals, Discount, ErrorPage, Money, Tax};
use super::{reader, refused, render, see_other, Sku};
use crate::client::{ApiError, Auth};
use crate::form::Form;
use crate::session::{CartRef, Current, Session};
use crate::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct CartLine {
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    pub unit_price: Money,
    pub line_total: Money,
}

/// A coupon code in the cart, and whether it takes something off now.
#[derive(Debug, Deserialize)]
pub(crate) struct Coupon {
    pub code: String,
    pub applied: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CartView {
    pub status: String,
    pub lines: Vec<CartLine>,
    #[serde(default)]
    pub subtotal: Option<Money>,
    #[serde(default)]
    pub discounts: Vec<Discount>,
    #[serde(default)]
    pub coupons: Vec<Coupon>,
    #[serde(default)]
    pub tax: Option<Tax>,
    pub total: Money,
}

/// A way to ship the cart, priced by the query API.
#[derive(Debug, Deserialize)]
struct ShippingOption {
    method_id: String,
    name: String,
    total: Money,
    cart_total: Money,
}

#[derive(Debug, Deserialize)]
struct ShippingOptions {
    options: Vec<ShippingOption>,
}

/// Why a coupon in the cart takes nothing off, in words.
fn coupon_reason(reason: &str) -> &'static str {
    match reason {
        "promotion_not_running" => "it is not running now",
        "promotion_usage_limit_reached" => "it has been used up",
        "promotion_requires_sign_in" => "sign in to use it",
        "promotion_not_active" => "it is not active",
        "minimum_subtotal" => "your cart is below its minimum",
        "no_eligible_lines" => "nothing in your cart qualifies",
        "not_combinable" => "a better offer applies instead",
        _ => "it does not apply",
    }
}

/// How this session writes to and reads its cart.
fn cart_auth<'a>(session: &'a Session, cart: &'a CartRef) -> Auth<'a> {
    Auth {
        bearer: session.customer.as_ref().map(|c| c.token.as_str()),
        cart_token: cart.token.as_deref(),
        min_position: session.position.as_deref(),
        ..Auth::default()
    }
}

/// The session's open cart as the query API has it (after this session's last write). A
/// cart that is checked out, gone, or not this shopper's any more is forgotten: the next
/// item opens a new one.
async fn load(state: &AppState, session: &Current) -> Result<Option<CartView>, ApiError> {
    load_to(state, session, None).await
}

/// The cart priced with the tax of `destination` (country, postal code).
async fn load_to(
    state: &AppState,
    session: &Current,
    destination: Option<(&str, &str)>,
) -> Result<Option<CartView>, ApiError> {
    let s = session.get();
    let Some(cart) = &s.cart else {
        return Ok(None);
    };
    let query = destination.map_or(String::new(), |(country, postal)| {
        let mut q = form_urlencoded::Serializer::new(String::from("?"));
        q.append_pair("country", country)
            .append_pair("postal_code", postal);
        q.finish()
    });
    let read = state
        .api
        .read::<CartView>(
            &format!("/v1/carts/{}{query}", cart.id),
            cart_auth(&s, cart),
        )
        .await;
    let forget = match &read {
        Ok(view) => view.status != "open",
        Err(e) => matches!(e.status().as_u16(), 403 | 404),
    };
    if forget {
        session.update(|s| s.cart = None);
        return Ok(None);
    }
    read.map(Some)
}

fn lines_table(session: &Session, cart: &CartView, editable: bool) -> Markup {
    html! {
        table {
            caption.visually-hidden { "Items in your cart" }
            thead { tr { th { "Product" } th.num { "Price" } th.num { "Quantity" } th.num { "Total" } @if editable { th { span.visually-hidden { "Actions" } } } } }
            tbody {
                @for line in &cart.lines {
                    tr {
                        td { a href={ "/products/" (line.sku) } { (line.name) } }
                        td.num { (line.unit_price.show()) }
                        td.num {
                            @if editable {
                                form.inline method="post" action={ "/cart/items/" (line.sku) } {
                                    (csrf(session))
                                    label.visually-hidden for={ "qty-" (line.sku) } { "Quantity of " (line.name) }
                                    input id={ "qty-" (line.sku) } type="number" name="quantity" min="0" max="999" value=(line.quantity) size="3";
                                    button.secondary type="submit" { "Update" }
                                }
                            } @else {
                                (line.quantity)
                            }
                        }
                        td.num { (line.line_total.show()) }
                        @if editable {
                            td {
                                form method="post" action={ "/cart/items/" (line.sku) } {
                                    (csrf(session))
                                    input type="hidden" name="quantity" value="0";
                                    button.secondary type="submit" aria-label={ "Remove " (line.name) } { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
            tfoot {
                @let tax = cart.tax.as_ref().filter(|t| t.amount.amount > 0);
                (totals(3, u32::from(editable), cart.subtotal.as_ref(), &cart.discounts, None, tax, &cart.total))
            }
        }
    }
}

/// `/cart`.
pub(crate) async fn show(State(state): State<AppState>, session: Current) -> Response {
    let cart = match load(&state, &session).await {
        Ok(c) => c,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let s = session.get();
    let content = html! {
        h1 { "Your cart" }
        @match &cart {
            Some(cart) if !cart.lines.is_empty() => {
                (lines_table(&s, cart, true))
                (coupons(&s, cart))
                p { a.button href="/checkout" { "Check out" } }
            }
            _ => { p { "Your cart is empty. " a href="/search" { "Find something you like" } "." } }
        }
    };
    render(&session, "Cart", content)
}

/// The cart's coupon codes (each with a remove button) and the form to add one.
fn coupons(session: &Session, cart: &CartView) -> Markup {
    html! {
        section.coupons aria-labelledby="coupons-title" {
            h2 #coupons-title { "Coupon" }
            @if !cart.coupons.is_empty() {
                ul {
                    @for c in &cart.coupons {
                        li {
                            code { (c.code) } " "
                            @if c.applied {
                                span.ok { "applied" }
                            } @else {
                                span.muted { "not applied: " (coupon_reason(c.reason.as_deref().unwrap_or(""))) }
                            }
                            form.inline method="post" action="/cart/coupons/remove" {
                                (csrf(session))
                                input type="hidden" name="code" value=(c.code);
                                button.secondary type="submit" aria-label={ "Remove coupon " (c.code) } { "Remove" }
                            }
                        }
                    }
                }
            }
            form.inline method="post" action="/cart/coupons" {
                (csrf(session))
                label { "Code " input name="code" required maxlength="32" autocomplete="off"; }
                button.secondary type="submit" { "Apply" }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct CouponForm {
    code: String,
}

/// `POST /cart/coupons`: adds a code; a refusal shows as the page's message.
pub(crate) async fn apply_coupon(
    State(state): State<AppState>,
    session: Current,
    Form(form): Form<CouponForm>,
) -> Response {
    coupon_write(
        &state,
        &session,
        Method::POST,
        "",
        Some(json!({ "code": form.code.trim() })),
    )
    .await
}

/// `POST /cart/coupons/remove`: removes a code.
pub(crate) async fn remove_coupon(
    State(state): State<AppState>,
    session: Current,
    Form(form): Form<CouponForm>,
) -> Response {
    let code: String = form
        .code
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    coupon_write(&state, &session, Method::DELETE, &format!("/{code}"), None).await
}

async fn coupon_write(
    state: &AppState,
    session: &Current,
    method: Method,
    suffix: &str,
    body: Option<serde_json::Value>,
) -> Response {
    let s = session.get();
    let Some(cart) = s.cart.clone() else {
        return see_other("/cart");
    };
    let path = format!("/v1/carts/{}/coupons{suffix}", cart.id);
    let result = state
        .api
        .write::<serde_json::Value>(method, &path, body.as_ref(), cart_auth(&s, &cart))
        .await;
    match result {
        Ok(w) => session.update(|s| s.position = w.position.or(s.position.take())),
        Err(e) if e.status().is_client_error() => {
            session.update(|s| s.flash = Some(format!("Coupon: {e}")))
        }
        Err(e) => return ErrorPage::from(e).into_response(),
    }
    see_other("/cart")
}

#[derive(Debug, Deserialize)]
pub(crate) struct AddForm {
    sku: String,
    quantity: u32,
}

#[derive(Debug, Deserialize)]
struct CartCreated {
    id: Uuid,
    cart_token: Option<String>,
}

/// The session's cart, opened on first use (the customer's own when signed in).
async fn open_cart(state: &AppState, session: &Current) -> Result<CartRef, ApiError> {
    let s = session.get();
    if let Some(cart) = s.cart {
        return Ok(cart);
    }
    let auth = Auth {
        bearer: s.customer.as_ref().map(|c| c.token.as_str()),
        ..Auth::default()
    };
    let created = state
        .api
        .write::<CartCreated>(Method::POST, "/v1/carts", Some(&json!({})), auth)
        .await?;
    let cart = CartRef {
        id: created.body.id,
        token: created.body.cart_token,
    };
    session.update(|s| {
        s.cart = Some(cart.clone());
        s.position = created.position.or(s.position.take());
    });
    Ok(cart)
}

/// `POST /cart/items`: adds units of a product.
pub(crate) async fn add(
    State(state): State<AppState>,
    session: Current,
    Form(form): Form<AddForm>,
) -> Response {
    let result = async {
        let cart = open_cart(&state, &session).await?;
        let s = session.get();
        let body = json!({ "sku": form.sku, "quantity": form.quantity });
        state
            .api
            .post(
                &format!("/v1/carts/{}/items", cart.id),
                Some(&body),
                cart_auth(&s, &cart),
            )
            .await
    }
    .await;
    match result {
        Ok(w) => {
            session.update(|s| {
                s.position = w.position.or(s.position.take());
                s.flash = Some(format!("Added {} to your cart.", form.sku));
            });
            see_other("/cart")
        }
        // A cart that was checked out elsewhere (or expired): start a new one next time.
        Err(e) if e.code() == "cart_checked_out" || e.code() == "cart_not_found" => {
            session.update(|s| {
                s.cart = None;
                s.flash = Some("Your previous cart is closed; please add the item again.".into());
            });
            see_other(&format!("/products/{}", form.sku))
        }
        Err(e) if e.status().is_client_error() => {
            session.update(|s| s.flash = Some(format!("Could not add {}: {e}", form.sku)));
            see_other(&format!("/products/{}", form.sku))
        }
        Err(e) => ErrorPage::from(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChangeForm {
    quantity: u32,
}

/// `POST /cart/items/{sku}`: a new quantity; 0 removes the line.
pub(crate) async fn change(
    State(state): State<AppState>,
    session: Current,
    Sku(sku): Sku,
    Form(form): Form<ChangeForm>,
) -> Response {
    let s = session.get();
    let Some(cart) = s.cart.clone() else {
        return see_other("/cart");
    };
    let path = format!("/v1/carts/{}/items/{sku}", cart.id);
    let auth = cart_auth(&s, &cart);
    let result = if form.quantity == 0 {
        state
            .api
            .write::<serde_json::Value>(Method::DELETE, &path, None::<&()>, auth)
            .await
    } else {
        let body = json!({ "quantity": form.quantity });
        state
            .api
            .write(Method::PATCH, &path, Some(&body), auth)
            .await
    };
    match result {
        Ok(w) => session.update(|s| s.position = w.position.or(s.position.take())),
        Err(e) if e.status().is_client_error() => {
            session.update(|s| s.flash = Some(format!("Could not change {sku}: {e}")))
        }
        Err(e) => return ErrorPage::from(e).into_response(),
    }
    see_other("/cart")
}

/// What the checkout form holds (kept when the API refuses it, to show it again).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub(crate) struct CheckoutForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
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
    #[serde(default)]
    payment_token: String,
    #[serde(default)]
    shipping_method: String,
    /// This attempt's idempotency key: a double-submitted checkout places one order.
    #[serde(default, rename = "_key")]
    key: String,
}

/// The documented test tokens of the test payment gateway.
const TEST_TOKENS: [(&str, &str); 4] = [
    ("tok_visa", "Test Visa (approved)"),
    ("tok_mastercard", "Test Mastercard (approved)"),
    ("tok_decline", "Test card that is declined"),
    ("tok_insufficient_funds", "Test card without funds"),
];

const COUNTRIES: [(&str, &str); 8] = [
    ("DE", "Germany"),
    ("AT", "Austria"),
    ("FR", "France"),
    ("NL", "Netherlands"),
    ("PT", "Portugal"),
    ("ES", "Spain"),
    ("IT", "Italy"),
    ("GB", "United Kingdom"),
];

fn checkout_page(
    session: &Session,
    cart: &CartView,
    shipping: &[ShippingOption],
    form: &CheckoutForm,
    error: Option<&ApiError>,
) -> Markup {
    let guest = session.customer.is_none();
    let text = |name: &'static str,
                label: &'static str,
                value: &str,
                field: &'static str,
                required: bool,
                autocomplete: &'static str| {
        html! {
            label {
                (label)
                input name=(name) value=(value) required[required] autocomplete=(autocomplete)
                    aria-describedby=[error.and_then(|e| e.field(field)).map(|_| format!("{}-error", field.replace('.', "-")))];
                (field_error(error, field))
            }
        }
    };
    html! {
        h1 { "Checkout" }
        (lines_table(session, cart, false))
        form.stack method="post" action="/checkout" {
            (csrf(session))
            input type="hidden" name="_key" value=(form.key);
            (form_error(error))
            @if guest {
                p.muted { "Checking out as a guest. " a href="/account/sign-in?next=/checkout" { "Sign in" } " to see the order in your account." }
                label {
                    "Email (for your order updates)"
                    input type="email" name="email" value=(form.email) required autocomplete="email";
                    (field_error(error, "email"))
                }
            }
            fieldset {
                legend { "Shipping address" }
                (text("name", "Full name", &form.name, "shipping_address.name", true, "name"))
                (text("line1", "Address", &form.line1, "shipping_address.line1", true, "address-line1"))
                (text("line2", "Address line 2 (optional)", &form.line2, "shipping_address.line2", false, "address-line2"))
                (text("postal_code", "Postal code", &form.postal_code, "shipping_address.postal_code", true, "postal-code"))
                (text("city", "City", &form.city, "shipping_address.city", true, "address-level2"))
                label {
                    "Country"
                    select name="country" autocomplete="country" {
                        @for (code, name) in COUNTRIES {
                            option value=(code) selected[form.country == code] { (name) }
                        }
                    }
                    (field_error(error, "shipping_address.country"))
                }
            }
            @if !shipping.is_empty() {
                fieldset {
                    legend { "Shipping to " (form.country) }
                    @for (i, option) in shipping.iter().enumerate() {
                        label {
                            input type="radio" name="shipping_method" value=(option.method_id)
                                checked[form.shipping_method == option.method_id || (form.shipping_method.is_empty() && i == 0)];
                            (option.name) " · " (option.total.show()) span.muted { " (order total " (option.cart_total.show()) ")" }
                        }
                    }
                    (field_error(error, "shipping_method"))
                }
            }
            fieldset {
                legend { "Payment" }
                p.muted { "This demo takes test card tokens only; no card number is ever asked for or stored." }
                @for (token, label) in TEST_TOKENS {
                    label {
                        input type="radio" name="payment_token" value=(token) checked[form.payment_token == token || (form.payment_token.is_empty() && token == "tok_visa")];
                        (label) " " code { (token) }
                    }
                }
                (field_error(error, "payment_token"))
            }
            button type="submit" { "Place order" @if shipping.is_empty() { " · " (cart.total.show()) } }
        }
    }
}

/// `/checkout`.
pub(crate) async fn checkout_form(State(state): State<AppState>, session: Current) -> Response {
    let cart = match load(&state, &session).await {
        Ok(Some(c)) if !c.lines.is_empty() => c,
        Ok(_) => return see_other("/cart"),
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    let s = session.get();
    let mut form = CheckoutForm {
        key: Uuid::new_v4().to_string(),
        country: "DE".into(),
        ..CheckoutForm::default()
    };
    // A customer's default address fills the form (they may change it for this order).
    if s.customer.is_some() {
        if let Ok(me) = state.api.read::<Me>("/v1/customers/me", reader(&s)).await {
            if let Some(a) = me.address {
                form.name = a.recipient;
                form.line1 = a.line1;
                form.line2 = a.line2.unwrap_or_default();
                form.city = a.city;
                form.postal_code = a.postal_code;
                form.country = a.country;
            }
        }
    }
    let (cart, shipping) = priced_for(&state, &session, &form, cart).await;
    render(
        &session,
        "Checkout",
        checkout_page(&s, &cart, &shipping, &form, None),
    )
}

/// The cart priced with the tax of the form's address, and the ways it ships there (the
/// unpriced cart, and no options, when the query API cannot say).
async fn priced_for(
    state: &AppState,
    session: &Current,
    form: &CheckoutForm,
    cart: CartView,
) -> (CartView, Vec<ShippingOption>) {
    let destination = (form.country.as_str(), form.postal_code.as_str());
    let cart = match load_to(state, session, Some(destination)).await {
        Ok(Some(priced)) => priced,
        _ => cart,
    };
    let s = session.get();
    let Some(cart_ref) = &s.cart else {
        return (cart, Vec::new());
    };
    // The serializer is not `Send`: it must not live across the read below.
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("country", &form.country)
        .append_pair("postal_code", &form.postal_code)
        .finish();
    let path = format!("/v1/carts/{}/shipping-options?{query}", cart_ref.id);
    let options = state
        .api
        .read::<ShippingOptions>(&path, cart_auth(&s, cart_ref))
        .await
        .map(|o| o.options)
        .unwrap_or_default();
    (cart, options)
}

#[derive(Debug, Deserialize)]
struct CheckoutAccepted {
    order_id: Uuid,
    order_token: Option<String>,
}

/// `POST /checkout`: places the order and shows it (it confirms on its own page).
pub(crate) async fn checkout(
    State(state): State<AppState>,
    session: Current,
    Form(form): Form<CheckoutForm>,
) -> Response {
    let s = session.get();
    let Some(cart) = s.cart.clone() else {
        return see_other("/cart");
    };
    let mut body = json!({
        "shipping_address": {
            "name": form.name, "line1": form.line1, "city": form.city,
            "postal_code": form.postal_code, "country": form.country,
        },
        "payment_token": form.payment_token,
    });
    if !form.line2.trim().is_empty() {
        body["shipping_address"]["line2"] = json!(form.line2);
    }
    if s.customer.is_none() {
        body["email"] = json!(form.email);
    }
    if !form.shipping_method.is_empty() {
        body["shipping_method"] = json!(form.shipping_method);
    }
    let key = (!form.key.is_empty()).then_some(form.key.as_str());
    let auth = Auth {
        idempotency_key: key,
        ..cart_auth(&s, &cart)
    };
    let result = state
        .api
        .write::<CheckoutAccepted>(
            Method::POST,
            &format!("/v1/carts/{}/checkout", cart.id),
            Some(&body),
            auth,
        )
        .await;
    match result {
        Ok(w) => {
            let order = w.body;
            session.update(|s| {
                s.cart = None;
                s.position = w.position.or(s.position.take());
                if let Some(token) = order.order_token {
                    s.guest_orders.insert(order.order_id, token);
                }
                s.flash = Some("Thank you! Your order is placed.".into());
            });
            see_other(&format!("/orders/{}", order.order_id))
        }
        Err(e) if e.status().is_client_error() => {
            let cart = match load(&state, &session).await {
                Ok(Some(c)) => c,
                // Checked out meanwhile (a second tab, a double submission): its order is in
                // the account, or was shown to the guest.
                Ok(None) => return see_other("/cart"),
                Err(e) => return ErrorPage::from(e).into_response(),
            };
            // The API keeps a refused answer under its key: the corrected form needs a new
            // one (unless the first attempt is still running).
            let mut form = form;
            if e.code() != "idempotency_key_in_use" {
                form.key = Uuid::new_v4().to_string();
            }
            let (cart, shipping) = priced_for(&state, &session, &form, cart).await;
            let content = checkout_page(&s, &cart, &shipping, &form, Some(&e));
            refused(&s, "Checkout", content, e.status())
        }
        Err(e) => ErrorPage::from(e).into_response(),
    }
}
