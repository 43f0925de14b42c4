//! The page shell, shared pieces (money, field errors, forms) and error pages.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use crate::client::ApiError;
use crate::session::Session;

/// Money as the APIs send it: minor units and an ISO 4217 code.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Money {
    pub amount: i64,
    pub currency: String,
}

/// Minor units per major unit of `currency` (ISO 4217 exponent).
fn exponent(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "CLP" | "ISK" | "VND" | "XAF" | "XOF" | "XPF" | "UGX" | "PYG" => 0,
        "KWD" | "BHD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
        _ => 2,
    }
}

/// `1234` EUR as `12.34 EUR`, integers only.
pub(crate) fn money(amount: i64, currency: &str) -> String {
    let digits = exponent(currency);
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    if digits == 0 {
        return format!("{sign}{abs} {currency}");
    }
    let unit = 10u64.pow(digits);
    format!(
        "{sign}{}.{:0width$} {currency}",
        abs / unit,
        abs % unit,
        width = digits as usize
    )
}

/// A price the shopper types (`12.5`, `12,50`) in minor units of `currency`.
pub(crate) fn parse_money(text: &str, currency: &str) -> Option<i64> {
    let digits = exponent(currency) as usize;
    let text = text.trim().replace(',', ".");
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !fraction.chars().all(|c| c.is_ascii_digit())
        || fraction.len() > digits
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<digits$}").parse().ok()?
    };
    whole
        .checked_mul(10i64.pow(digits as u32))?
        .checked_add(fraction)
}

impl Money {
    pub(crate) fn show(&self) -> String {
        money(self.amount, &self.currency)
    }
}

/// What the shell needs from the session.
pub(crate) struct Shell<'a> {
    pub title: &'a str,
    pub session: &'a Session,
    pub flash: Option<String>,
    /// Re-render the page this often without JavaScript (`<noscript>` refresh).
    pub refresh: Option<u32>,
}

/// The shopper's page: header with search, cart and account; the content; a footer.
pub(crate) fn page(shell: Shell<'_>, content: Markup) -> Markup {
    let s = shell.session;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // htmx may not inject styles or evaluate strings (the CSP forbids both).
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;
                @if let Some(seconds) = shell.refresh {
                    noscript { meta http-equiv="refresh" content=(seconds); }
                }
                title { (shell.title) " · Mercato" }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/htmx.min.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.site {
                    a.brand href="/" { "Mercato" }
                    form.search role="search" action="/search" method="get" {
                        label.visually-hidden for="q" { "Search products" }
                        input #q type="search" name="q" placeholder="Search products" autocomplete="off"
                            list="suggestions"
                            hx-get="/search/suggest" hx-trigger="input changed delay:250ms"
                            hx-target="#suggestions" hx-swap="outerHTML";
                        datalist #suggestions {}
                        button type="submit" { "Search" }
                    }
                    nav aria-label="Account" {
                        a href="/cart" { "Cart" }
                        @if let Some(customer) = &s.customer {
                            a href="/account" { "Account (" (customer.email) ")" }
                        } @else if s.admin.is_none() {
                            a href="/account/sign-in" { "Sign in" }
                        }
                        @if s.admin.is_some() {
                            a href="/admin" { "Back office" }
                        }
                        @if s.customer.is_some() || s.admin.is_some() {
                            form.sign-out method="post" action="/account/sign-out" {
                                (csrf(s))
                                button.secondary type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main {
                    @if let Some(flash) = &shell.flash {
                        p.flash role="status" { (flash) }
                    }
                    (content)
                }
                footer.site {
                    p { "Mercato demo shop · pay with a test card token, never a real card number" }
                }
            }
        }
    }
}

/// A hidden CSRF field for a form of this session.
pub(crate) fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="_csrf" value=(session.csrf); }
}

/// The API's message about `field`, beside the input it concerns.
pub(crate) fn field_error(error: Option<&ApiError>, field: &str) -> Markup {
    html! {
        @if let Some(message) = error.and_then(|e| e.field(field)) {
            span.field-error id={ (field.replace('.', "-")) "-error" } { (message) }
        }
    }
}

/// A problem shown above a form.
pub(crate) fn form_error(error: Option<&ApiError>) -> Markup {
    html! {
        @if let Some(e) = error {
            p.error role="alert" { (e) }
        }
    }
}

/// An error page in the shop's look.
pub(crate) struct ErrorPage {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl ErrorPage {
    pub(crate) fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            title,
            message: message.into(),
        }
    }

    pub(crate) fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form cannot be accepted",
            "It expired or was sent from another site. Go back, reload the page and try again.",
        )
    }

    pub(crate) fn bad_request(message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Bad request", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found", message)
    }
}

impl From<ApiError> for ErrorPage {
    fn from(e: ApiError) -> Self {
        match e.status() {
            StatusCode::NOT_FOUND => Self::not_found(e.to_string()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Self::new(e.status(), "Not allowed", e.to_string())
            }
            s if s.is_client_error() => Self::new(s, "That did not work", e.to_string()),
            _ => {
                tracing::warn!(error = %e, "an API call failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The shop is busy",
                    "Please try again in a moment.",
                )
            }
        }
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        let body = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (self.title) " · Mercato" }
                    link rel="stylesheet" href="/assets/style.css";
                }
                body {
                    header.site { a.brand href="/" { "Mercato" } }
                    main #main.error-page {
                        h1 { (self.title) }
                        p { (self.message) }
                        p { a href="/" { "Back to the shop" } }
                    }
                }
            }
        };
        (self.status, body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_shows_each_currency_exponent() {
        assert_eq!(money(1234, "EUR"), "12.34 EUR");
        assert_eq!(money(5, "EUR"), "0.05 EUR");
        assert_eq!(money(1234, "JPY"), "1234 JPY");
        assert_eq!(money(1234, "KWD"), "1.234 KWD");
        assert_eq!(money(-250, "EUR"), "-2.50 EUR");
    }

    #[test]
    fn typed_prices_become_minor_units_or_nothing() {
        assert_eq!(parse_money("12.5", "EUR"), Some(1250));
        assert_eq!(parse_money("12,50", "EUR"), Some(1250));
        assert_eq!(parse_money("7", "JPY"), Some(7));
        assert_eq!(parse_money("1.5", "JPY"), None);
        assert_eq!(parse_money("0.001", "EUR"), None);
        assert_eq!(parse_money("-1", "EUR"), None);
        assert_eq!(parse_money("", "EUR"), None);
        assert_eq!(parse_money("1e3", "EUR"), None);
    }

    #[test]
    fn text_is_escaped() {
        let markup = html! { p { ("<script>alert(1)</script>") } };
        assert_eq!(
            markup.into_string(),
            "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
        );
    }
}

/// A promotion taken off a cart or an order, as the APIs show it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Discount {
    pub name: String,
    #[serde(default)]
    pub code: Option<String>,
    pub amount: Money,
    #[serde(default)]
    pub free_shipping: bool,
}

/// The tax inside or on top of the prices.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Tax {
    pub amount: Money,
    #[serde(default)]
    pub rate: Option<String>,
    #[serde(default)]
    pub prices_include_tax: Option<bool>,
}

/// The shipping charged.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Shipping {
    pub name: String,
    /// What the method charged.
    pub amount: Money,
    /// Taken off by a free-shipping promotion.
    pub discount: Money,
}

impl Shipping {
    /// The charge less its discount: before tax when prices exclude it (the tax row adds
    /// the shipping's tax), with it inside when they include it; so the rows add up.
    fn charged(&self) -> Money {
        Money {
            amount: self.amount.amount - self.discount.amount,
            currency: self.amount.currency.clone(),
        }
    }
}

/// The summary rows under a table of lines: subtotal, each promotion, shipping, tax, total.
/// `span` is how many columns the labels take; `trailing` adds empty cells after the amount.
pub(crate) fn totals(
    span: u32,
    trailing: u32,
    subtotal: Option<&Money>,
    discounts: &[Discount],
    shipping: Option<&Shipping>,
    tax: Option<&Tax>,
    total: &Money,
) -> Markup {
    let row = |label: Markup, amount: Markup| {
        html! {
            tr {
                th colspan=(span) { (label) }
                td.num { (amount) }
                @for _ in 0..trailing { td {} }
            }
        }
    };
    html! {
        @if !discounts.is_empty() {
            @if let Some(subtotal) = subtotal { (row(html! { "Subtotal" }, html! { (subtotal.show()) })) }
            @for d in discounts {
                @if !d.free_shipping {
                    (row(html! { (d.name) @if let Some(code) = &d.code { " (" code { (code) } ")" } },
                         html! { "−" (d.amount.show()) }))
                }
            }
        }
        @if let Some(s) = shipping {
            (row(html! { "Shipping: " (s.name) @if s.discount.amount > 0 { " (free)" } },
                 html! { (s.charged().show()) }))
        }
        @if let Some(t) = tax {
            @let rate = t.rate.as_deref().unwrap_or("0");
            @if t.prices_include_tax == Some(true) {
                (row(html! { "Includes tax (" (rate) "%)" }, html! { (t.amount.show()) }))
            } @else {
                (row(html! { "Tax (" (rate) "%)" }, html! { (t.amount.show()) }))
            }
        }
        (row(html! { "Total" }, html! { strong { (total.show()) } }))
    }
}
