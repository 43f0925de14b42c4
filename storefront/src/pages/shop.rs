//! Browsing: the home page, search with facets and suggestions, a product's page.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped};
use serde::{Deserialize, Serialize};

use super::layout::{self, csrf, money, page, ErrorPage, Money, Shell};
use super::{render, Sku};
use crate::client::Auth;
use crate::session::Current;
use crate::AppState;

/// The shop's currency for price filters typed in major units.
const SHOP_CURRENCY: &str = "EUR";

/// A product as the query API shows it.
#[derive(Debug, Deserialize)]
pub(crate) struct Product {
    pub sku: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub brand: String,
    #[serde(default)]
    pub category: Vec<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub images: Vec<String>,
    pub price: Money,
    pub status: String,
    #[serde(default)]
    pub available: i64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ProductPage {
    pub items: Vec<Product>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Hit {
    sku: String,
    name: String,
    brand: String,
    price: Money,
    available: u64,
    #[serde(default)]
    highlights: Highlights,
}

#[derive(Debug, Default, Deserialize)]
struct Highlights {
    /// HTML-escaped by the query API, matches in `<b>`.
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct Facets {
    #[serde(default)]
    category: BTreeMap<String, u64>,
    #[serde(default)]
    brand: BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize)]
struct Results {
    hits: Vec<Hit>,
    facets: Facets,
    total: u64,
    next_cursor: Option<String>,
}

/// What the search page was asked; the same names as the query API's, prices in major units.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub(crate) struct SearchForm {
    #[serde(default)]
    q: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    brand: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    category: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    min_price: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    max_price: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    in_stock: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    sort: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    cursor: String,
}

impl SearchForm {
    /// This search's page URL with `change` applied (facet links, paging).
    fn link(&self, change: impl FnOnce(&mut SearchForm)) -> String {
        let mut next = self.clone();
        next.cursor.clear();
        change(&mut next);
        format!(
            "/search?{}",
            serde_urlencoded::to_string(&next).unwrap_or_default()
        )
    }

    /// The query API's parameters; a price that is not a price is reported, not sent.
    fn api_query(&self) -> Result<String, String> {
        let mut params: Vec<(&str, String)> = vec![("q", self.q.clone()), ("limit", "24".into())];
        for (name, value) in [
            ("brand", &self.brand),
            ("category", &self.category),
            ("sort", &self.sort),
            ("cursor", &self.cursor),
        ] {
            if !value.is_empty() {
                params.push((name, value.clone()));
            }
        }
        for (name, value) in [
            ("min_price", &self.min_price),
            ("max_price", &self.max_price),
        ] {
            if value.trim().is_empty() {
                continue;
            }
            let minor = layout::parse_money(value, SHOP_CURRENCY)
                .ok_or_else(|| format!("“{value}” is not a price"))?;
            params.push((name, minor.to_string()));
        }
        if !self.in_stock.is_empty() {
            params.push(("in_stock", "true".into()));
        }
        Ok(serde_urlencoded::to_string(&params).unwrap_or_default())
    }
}

fn product_card(sku: &str, name: Markup, brand: &str, price: &Money, available: i64) -> Markup {
    html! {
        li.card {
            h3 { a href={ "/products/" (sku) } { (name) } }
            span.muted { (brand) }
            span.price { (price.show()) }
            (availability(available))
        }
    }
}

fn availability(available: i64) -> Markup {
    html! {
        @if available > 0 {
            span.stock-in { "In stock" }
        } @else {
            span.stock-out { "Out of stock" }
        }
    }
}

/// `/`: featured (in stock, best first) and the newest products.
pub(crate) async fn home(State(state): State<AppState>, session: Current) -> Response {
    let s = session.get();
    let featured: Result<Results, _> = state
        .api
        .read("/v1/search?q=&in_stock=true&limit=8", Auth::default())
        .await;
    let newest: Result<ProductPage, _> = state
        .api
        .read("/v1/products?sort=newest&limit=8", Auth::default())
        .await;
    let (featured, newest) = match (featured, newest) {
        (Ok(f), Ok(n)) => (f, n.items),
        (Err(e), _) | (_, Err(e)) => return ErrorPage::from(e).into_response(),
    };
    let content = html! {
        h1 { "Welcome to the shop" }
        h2 { "Featured" }
        ul.grid {
            @for hit in &featured.hits {
                (product_card(&hit.sku, html!{ (hit.name) }, &hit.brand, &hit.price, hit.available as i64))
            }
        }
        h2 { "New arrivals" }
        ul.grid {
            @for p in &newest {
                (product_card(&p.sku, html!{ (p.name) }, &p.brand, &p.price, p.available))
            }
        }
        p { a href="/search" { "Browse all products" } }
    };
    let flash = session.take_flash();
    page(
        Shell {
            title: "Shop",
            session: &s,
            flash,
            refresh: None,
        },
        content,
    )
    .into_response()
}

/// `/search`: results with facets (category, brand, price range, in stock) and their counts.
pub(crate) async fn search(
    State(state): State<AppState>,
    session: Current,
    Query(form): Query<SearchForm>,
) -> Response {
    let s = session.get();
    let (results, problem) = match form.api_query() {
        Ok(query) => {
            let auth = Auth {
                min_position: s.position.as_deref(),
                ..Auth::default()
            };
            match state
                .api
                .read::<Results>(&format!("/v1/search?{query}"), auth)
                .await
            {
                Ok(r) => (Some(r), None),
                Err(e) if e.status().is_client_error() => (None, Some(e.to_string())),
                Err(e) => return ErrorPage::from(e).into_response(),
            }
        }
        Err(message) => (None, Some(message)),
    };
    let title = if form.q.is_empty() {
        "All products".to_owned()
    } else {
        format!("Results for “{}”", form.q)
    };
    let content = html! {
        h1 { (title) }
        div.layout-search {
            form.facets action="/search" method="get" aria-label="Filters" {
                input type="hidden" name="q" value=(form.q);
                @if !form.brand.is_empty() { input type="hidden" name="brand" value=(form.brand); }
                @if !form.category.is_empty() { input type="hidden" name="category" value=(form.category); }
                @if let Some(r) = &results {
                    fieldset {
                        legend { "Category" }
                        @if !form.category.is_empty() {
                            a href=(form.link(|f| f.category.clear())) { "All categories" }
                        }
                        @for (path, count) in &r.facets.category {
                            a.facet href=(form.link(|f| f.category = path.clone())) {
                                (path.rsplit('/').next().unwrap_or(path)) " " span.count { "(" (count) ")" }
                            }
                            br;
                        }
                    }
                    fieldset {
                        legend { "Brand" }
                        @if !form.brand.is_empty() {
                            a href=(form.link(|f| f.brand.clear())) { "All brands" } br;
                        }
                        @for (brand, count) in &r.facets.brand {
                            a.facet href=(form.link(|f| f.brand = brand.clone())) aria-current=[(form.brand == *brand).then_some("true")] {
                                (brand) " " span.count { "(" (count) ")" }
                            }
                            br;
                        }
                    }
                }
                fieldset {
                    legend { "Price (" (SHOP_CURRENCY) ")" }
                    label { "From" input name="min_price" inputmode="decimal" size="6" value=(form.min_price); }
                    label { "To" input name="max_price" inputmode="decimal" size="6" value=(form.max_price); }
                }
                label { input type="checkbox" name="in_stock" value="1" checked[!form.in_stock.is_empty()]; "In stock only" }
                label { "Sort"
                    select name="sort" {
                        option value="" selected[form.sort.is_empty()] { "Best match" }
                        option value="price_asc" selected[form.sort == "price_asc"] { "Price, low to high" }
                        option value="price_desc" selected[form.sort == "price_desc"] { "Price, high to low" }
                    }
                }
                button type="submit" { "Apply filters" }
            }
            section aria-label="Results" {
                @if let Some(message) = &problem {
                    p.error role="alert" { (message) }
                }
                @if let Some(r) = &results {
                    p.muted { (r.total) @if r.total == 1 { " product" } @else { " products" } }
                    @if r.hits.is_empty() {
                        p { "Nothing matches. Try fewer words or other filters." }
                    }
                    ul.grid {
                        @for hit in &r.hits {
                            // The highlight is HTML the query API escaped, with matches in <b>.
                            (product_card(&hit.sku, highlighted(hit), &hit.brand, &hit.price, hit.available as i64))
                        }
                    }
                    @if let Some(cursor) = &r.next_cursor {
                        nav.pager aria-label="Pages" {
                            a href={ (form.link(|_| ())) "&cursor=" (cursor) } rel="next" { "More results" }
                        }
                    }
                }
            }
        }
    };
    render(&session, &title, content)
}

/// A hit's name with its matches in bold: the query API escaped the text and added only
/// `<b>` tags; anything else is escaped again.
fn highlighted(hit: &Hit) -> Markup {
    let html = &hit.highlights.name;
    let safe = !html.is_empty()
        && html
            .replace("<b>", "")
            .replace("</b>", "")
            .chars()
            .all(|c| c != '<' && c != '>');
    if safe {
        PreEscaped(html.clone())
    } else {
        html! { (hit.name) }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Suggest {
    #[serde(default)]
    q: String,
}

/// `/search/suggest?q=`: names of the best matches as the shopper types (a `datalist`).
pub(crate) async fn suggest(State(state): State<AppState>, Query(query): Query<Suggest>) -> Markup {
    let q = query.q.trim();
    let names: Vec<String> = if q.len() < 2 {
        Vec::new()
    } else {
        let params = serde_urlencoded::to_string([("q", q), ("limit", "6")]).unwrap_or_default();
        match state
            .api
            .read::<Results>(&format!("/v1/search?{params}"), Auth::default())
            .await
        {
            Ok(r) => r.hits.into_iter().map(|h| h.name).collect(),
            Err(_) => Vec::new(),
        }
    };
    html! {
        datalist #suggestions {
            @for name in &names { option value=(name) {} }
        }
    }
}

/// `/products/{sku}`: price, availability, images, attributes, and the add-to-cart form.
pub(crate) async fn product(
    State(state): State<AppState>,
    session: Current,
    Sku(sku): Sku,
) -> Response {
    let s = session.get();
    // The catalog is public: only the admin's token goes with it (to preview drafts).
    let auth = Auth {
        bearer: s.admin.as_ref().map(|a| a.token.as_str()),
        min_position: s.position.as_deref(),
        ..Auth::default()
    };
    let p: Product = match state.api.read(&format!("/v1/products/{sku}"), auth).await {
        Ok(p) => p,
        Err(e) => return ErrorPage::from(e).into_response(),
    };
    // Recommendations are a nicety: the page shows without them when they cannot be read.
    let recommended = state
        .api
        .read::<RecommendedList>(
            &format!("/v1/products/{sku}/recommendations?limit=4"),
            Auth::default(),
        )
        .await
        .map(|r| r.items)
        .unwrap_or_default();
    let content = html! {
        article.product {
            div {
                @if let Some(image) = p.images.first() {
                    img src=(image) alt={ "Picture of " (p.name) };
                } @else {
                    p.muted { "No picture yet" }
                }
            }
            div {
                p.muted { (p.category.join(" › ")) }
                h1 { (p.name) }
                p.muted { (p.brand) }
                p.price { (money(p.price.amount, &p.price.currency)) }
                @if p.status != "published" {
                    p.error { "Not on sale (" (p.status) ")" }
                }
                p { (availability(p.available)) @if p.available > 0 { " · " (p.available) " available" } }
                @if p.status == "published" && p.available > 0 {
                    form.inline method="post" action="/cart/items" {
                        (csrf(&s))
                        input type="hidden" name="sku" value=(p.sku);
                        label { "Quantity " input type="number" name="quantity" value="1" min="1" max=(p.available.min(999)) required; }
                        button type="submit" { "Add to cart" }
                    }
                }
                @if !p.description.is_empty() { p { (p.description) } }
                @if !p.attributes.is_empty() {
                    h2 { "Details" }
                    dl {
                        @for (key, value) in &p.attributes { dt { (key) } dd { (value) } }
                    }
                }
                p.muted { "SKU " (p.sku) }
            }
        }
        @if !recommended.is_empty() {
            section aria-labelledby="recommended-title" {
                h2 #recommended-title { "You may also like" }
                ul.recommendations {
                    @for r in &recommended {
                        li {
                            a href={ "/products/" (r.sku) } { (r.name) } " · " (money(r.price.amount, &r.price.currency))
                            span.muted { @if r.reason == "bought_together" { " · bought together" } @else { " · popular in this category" } }
                        }
                    }
                }
            }
        }
    };
    render(&session, &p.name, content)
}

/// A product recommended beside another.
#[derive(Debug, Deserialize)]
struct Recommended {
    sku: String,
    name: String,
    price: Money,
    reason: String,
}

#[derive(Debug, Deserialize)]
struct RecommendedList {
    items: Vec<Recommended>,
}
