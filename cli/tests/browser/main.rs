//! The storefront and the back office in headless Chromium, against `mercato serve` with
//! real PostgreSQL and NATS: what a shopper and a merchant do, click by click.

mod driver;
// Shared with the cli tests; this binary uses only part of them.
#[allow(dead_code)]
#[path = "../common/guest.rs"]
mod guest;
#[allow(dead_code)]
#[path = "../cli/process.rs"]
mod process;

use std::time::Duration;

use fantoccini::Locator;
use mercato_event_store::testing::TestDatabase;
use mercato_nats::testing::TestNats;
use serde_json::json;

use driver::{Browser, Scripts};
use guest::Shop;
use process::Mercato;

/// `mercato serve` for one test, and its storefront's address.
fn serve(db: &TestDatabase, nats: &TestNats) -> (Mercato, String) {
    let serve = Mercato::start(&["serve"], db, nats);
    let shop = serve
        .storefront_addr
        .clone()
        .expect("serve runs the storefront");
    (serve, shop)
}

/// Products as a merchant set them up through the API: two teapots of two brands, a mug
/// whose name is markup, all published with stock.
async fn stock_catalog(serve: &Mercato) {
    let api = format!("http://{}", serve.command_api_addr.as_ref().unwrap());
    let http = reqwest::Client::new();
    let token = Shop {
        http: http.clone(),
        command: api.clone(),
        query: String::new(),
    }
    .admin_token()
    .await;
    for (sku, name, brand, price) in [
        ("TEA-ACME", "Porcelain Teapot", "Acme", 2500),
        ("TEA-BREW", "Porcelain Teapot Deluxe", "Brewmaster", 4900),
        ("MUG-XSS", "<script>alert(1)</script> Mug", "Acme", 900),
    ] {
        for (path, body) in [
            (
                "/v1/products".to_owned(),
                json!({"sku": sku, "name": name, "brand": brand, "category": ["kitchen", "tea"],
                       "price": {"amount": price, "currency": "EUR"}}),
            ),
            (format!("/v1/products/{sku}/publish"), json!({})),
            (
                format!("/v1/stock/{sku}/receipts"),
                json!({"warehouse": "BER-1", "quantity": 20}),
            ),
        ] {
            let resp = http
                .post(format!("{api}{path}"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
        }
    }
}

/// Fills the checkout form as a guest (`email`) or a signed-in customer (`None`), picks the
/// test card `token` and places the order; returns the order page's URL.
async fn check_out(browser: &Browser, email: Option<&str>, token: &str) -> String {
    browser.click("Check out").await;
    if let Some(email) = email {
        browser.fill("email", email).await;
    }
    browser.fill("name", "Ada Lovelace").await;
    browser.fill("line1", "Unter den Linden 1").await;
    browser.fill("postal_code", "10117").await;
    browser.fill("city", "Berlin").await;
    browser
        .find(&format!("input[name=payment_token][value={token}]"))
        .await
        .click()
        .await
        .unwrap();
    browser.screenshot("checkout").await;
    browser
        .find("form.stack button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    browser.find("#order-status").await;
    browser.url().await
}

/// Search with a typo, narrow by brand, add two, check out as a guest; then the same with a
/// card that is declined.
async fn guest_shops(browser: &Browser, scripts: Scripts) {
    browser.go("/").await;
    browser.screenshot("home").await;
    browser.fill("q", "porcelian teapot").await;
    // Suggestions come as the shopper types, with scripts; without, nothing runs at all.
    match scripts {
        Scripts::On => {
            browser.find("#suggestions option").await;
        }
        Scripts::Off => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let options = browser
                .client
                .find_all(Locator::Css("#suggestions option"))
                .await
                .unwrap();
            assert!(options.is_empty(), "no script ran");
        }
    }
    browser.click("Search").await;
    let results = browser.wait_for_text("2 products").await;
    assert!(results.contains("Porcelain Teapot Deluxe"), "{results}");
    browser.click("Acme (1)").await;
    let narrowed = browser.wait_for_text("1 product").await;
    assert!(
        !narrowed.contains("Deluxe"),
        "the brand filter holds: {narrowed}"
    );
    browser.screenshot("search").await;
    browser.click("Porcelain Teapot").await;
    browser.fill("quantity", "2").await;
    browser.screenshot("product").await;
    browser.click("Add to cart").await;
    let cart = browser.wait_for_text("Added TEA-ACME to your cart").await;
    assert!(
        cart.contains("Total 50.00 EUR"),
        "two units in the cart: {cart}"
    );
    browser.screenshot("cart").await;

    check_out(browser, Some("ada@example.com"), "tok_visa").await;
    let confirmed = browser.wait_for_text("Confirmed").await;
    assert!(confirmed.contains("Charged 50.00 EUR"), "{confirmed}");
    browser.screenshot("order").await;

    // A declined card: the order is cancelled, with the reason, and nothing is charged.
    browser.go("/products/TEA-BREW").await;
    browser.click("Add to cart").await;
    browser.wait_for_text("Added TEA-BREW to your cart").await;
    check_out(browser, Some("ada@example.com"), "tok_decline").await;
    let cancelled = browser.wait_for_text("Cancelled").await;
    assert!(
        cancelled.contains("your card was declined") && cancelled.contains("not been charged"),
        "{cancelled}"
    );
}

#[tokio::test]
async fn a_guest_finds_a_product_with_a_typo_filters_by_brand_and_buys_it() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let (serve, shop) = serve(&db, &nats);
    stock_catalog(&serve).await;
    let browser = Browser::open(&shop, Scripts::On).await;
    guest_shops(&browser, Scripts::On).await;

    // A product name with markup is text, never a script.
    browser.go("/search?q=mug").await;
    let text = browser.wait_for_text("Mug").await;
    assert!(text.contains("<script>alert(1)</script> Mug"), "{text}");
    let scripts = browser
        .client
        .find_all(Locator::Css("main script"))
        .await
        .unwrap();
    assert!(scripts.is_empty(), "no script element in the page body");
    browser.close().await;
}

#[tokio::test]
async fn a_shopper_applies_a_coupon_and_pays_the_priced_total_with_tax_and_shipping() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let (serve, shop) = serve(&db, &nats);
    stock_catalog(&serve).await;
    // The merchant, through the API: 19% VAT on top of prices in DE, and a flat 4.90 EUR
    // shipping method to DE. The coupon comes from the back office below.
    let api = format!("http://{}", serve.command_api_addr.as_ref().unwrap());
    let http = reqwest::Client::new();
    let admin = Shop {
        http: http.clone(),
        command: api.clone(),
        query: String::new(),
    }
    .admin_token()
    .await;
    for (method, path, body) in [
        (
            reqwest::Method::PUT,
            "/v1/tax/settings",
            json!({"prices_include_tax": false}),
        ),
        (
            reqwest::Method::PUT,
            "/v1/tax/rates/DE",
            json!({"rate": 19}),
        ),
        (
            reqwest::Method::PUT,
            "/v1/shipping-methods/standard",
            json!({"name": "Standard", "countries": ["DE"],
            "rate": {"flat": {"amount": 490, "currency": "EUR"}}}),
        ),
    ] {
        let resp = http
            .request(method, format!("{api}{path}"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
    }
    let browser = Browser::open(&shop, Scripts::On).await;
    // The merchant creates 10% off with the code SPRING, 100 uses, in the back office.
    sign_in(&browser, "admin@mercato.test", "admin-password").await;
    browser.go("/admin/promotions").await;
    browser.fill("name", "Spring").await;
    browser.fill("code", "spring").await;
    browser.fill("percent", "10").await;
    browser.fill("usage_limit", "100").await;
    browser.click("Create").await;
    let list = browser.wait_for_text("Promotion created.").await;
    assert!(list.contains("SPRING 10% off 0 / 100"), "{list}");
    sign_out(&browser).await;

    browser.go("/products/TEA-ACME").await;
    browser.fill("quantity", "2").await;
    browser.click("Add to cart").await;
    browser.wait_for_text("Added TEA-ACME to your cart").await;
    browser.fill("code", "spring").await;
    browser.click("Apply").await;
    // 2 x 25.00 less 10%.
    let cart = browser.wait_for_text("applied").await;
    assert!(cart.contains("Spring (SPRING) −5.00 EUR"), "{cart}");
    assert!(cart.contains("Total 45.00 EUR"), "{cart}");
    browser.screenshot("cart-coupon").await;
    // 45.00 + shipping 4.90 + 19% tax on each (8.55 + 0.93): the rows add up to the total.
    let order = check_out(&browser, Some("grace@example.com"), "tok_visa").await;
    let page = reload_until(&browser, &order, "Confirmed").await;
    assert!(page.contains("Shipping: Standard 4.90 EUR"), "{page}");
    assert!(page.contains("Tax (19%) 9.48 EUR"), "{page}");
    assert!(page.contains("Total 59.38 EUR"), "{page}");
    browser.screenshot("order-priced").await;

    // The order holds one of the coupon's uses; the merchant sees it and ends the promotion.
    sign_in(&browser, "admin@mercato.test", "admin-password").await;
    let list = reload_until(
        &browser,
        &format!("http://{shop}/admin/promotions"),
        "1 / 100",
    )
    .await;
    assert!(list.contains("active"), "{list}");
    browser.screenshot("admin-promotions").await;
    browser.click("Deactivate").await;
    let list = browser.wait_for_text("Promotion deactivated.").await;
    assert!(list.contains("inactive"), "{list}");
    browser.close().await;
}

#[tokio::test]
async fn the_core_flow_works_without_javascript() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let (serve, shop) = serve(&db, &nats);
    stock_catalog(&serve).await;
    let browser = Browser::open(&shop, Scripts::Off).await;
    guest_shops(&browser, Scripts::Off).await;
    browser.close().await;
}

/// Signs `email` in through the shared sign-in form.
async fn sign_in(browser: &Browser, email: &str, password: &str) {
    browser.go("/account/sign-in").await;
    browser.fill("email", email).await;
    browser.fill("password", password).await;
    browser
        .find("form.stack button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    browser.by_text("Sign out").await;
}

async fn sign_out(browser: &Browser) {
    browser.click("Sign out").await;
    browser.wait_for_text("You are signed out").await;
}

/// Reloads `url` until its text contains `needle` (another session's write shows up there
/// once the read models have it).
async fn reload_until(browser: &Browser, url: &str, needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        browser.client.goto(url).await.unwrap();
        let text = browser.text().await;
        if text.contains(needle) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} never showed on {url}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_merchant_ships_and_delivers_a_customer_returns_and_is_refunded() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let (_serve, shop) = serve(&db, &nats);
    let browser = Browser::open(&shop, Scripts::On).await;

    // The merchant creates and publishes a product and receives stock.
    sign_in(&browser, "admin@mercato.test", "admin-password").await;
    browser.wait_for_text("Projections").await;
    browser.screenshot("admin-dashboard").await;
    browser.go("/admin/products").await;
    browser.fill("sku", "LAMP-1").await;
    browser.fill("name", "Desk Lamp").await;
    browser.fill("brand", "Lumen").await;
    browser.fill("category", "home/lighting").await;
    browser.fill("price", "39.90").await;
    browser.click("Create draft").await;
    browser.wait_for_text("Draft created").await;
    browser.click("Publish").await;
    browser.wait_for_text("Done: publish").await;
    browser.fill("quantity", "5").await;
    browser.click("Receive stock").await;
    browser.wait_for_text("Received 5 units into BER-1").await;
    browser.screenshot("admin-product").await;
    sign_out(&browser).await;

    // A customer registers and buys it.
    browser.go("/account/register").await;
    browser.fill("name", "Grace Hopper").await;
    browser.fill("email", "grace@example.com").await;
    browser.fill("password", "correct horse battery").await;
    browser.click("Create account").await;
    browser.wait_for_text("Your account is ready").await;
    // Their default address fills the checkout form.
    browser.find("details summary").await.click().await.unwrap();
    browser.fill("recipient", "Grace Hopper").await;
    browser.fill("line1", "Harbour Street 7").await;
    browser.fill("postal_code", "1100-148").await;
    browser.fill("city", "Lisbon").await;
    browser.fill("country", "PT").await;
    browser.click("Save profile").await;
    browser.wait_for_text("Your profile is saved").await;
    browser.go("/products/LAMP-1").await;
    browser.click("Add to cart").await;
    browser.wait_for_text("Added LAMP-1 to your cart").await;
    browser.go("/checkout").await;
    let line1 = browser
        .find("[name=line1]")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(line1.as_deref(), Some("Harbour Street 7"));
    browser.go("/cart").await;
    let order = check_out(&browser, None, "tok_visa").await;
    browser.wait_for_text("Confirmed").await;
    let order_id = order.rsplit('/').next().unwrap().to_owned();
    sign_out(&browser).await;

    // The merchant ships it and marks it delivered.
    sign_in(&browser, "admin@mercato.test", "admin-password").await;
    let admin_order = format!("{}/admin/orders/{order_id}", browser.base);
    reload_until(&browser, &admin_order, "Ship all remaining items (1)").await;
    browser.fill("tracking_number", "TRACK-42").await;
    browser.click("Ship all remaining items (1)").await;
    browser.click("Mark delivered").await;
    browser.wait_for_text("Done: deliver").await;
    browser.screenshot("admin-order").await;
    sign_out(&browser).await;

    // The customer asks to return it.
    sign_in(&browser, "grace@example.com", "correct horse battery").await;
    reload_until(&browser, &order, "Return items").await;
    browser.fill("qty_LAMP-1", "1").await;
    browser.fill("reason", "It flickers").await;
    browser.click("Request a return").await;
    browser.wait_for_text("Your return is requested").await;
    sign_out(&browser).await;

    // The merchant receives it; the refund follows.
    sign_in(&browser, "admin@mercato.test", "admin-password").await;
    let returns = format!("{}/admin/returns", browser.base);
    reload_until(&browser, &returns, "It flickers").await;
    browser.click("Receive all and refund").await;
    browser
        .wait_for_text("Received; the refund is on its way")
        .await;
    sign_out(&browser).await;

    // The customer sees the money back.
    sign_in(&browser, "grace@example.com", "correct horse battery").await;
    let refunded = reload_until(&browser, &order, "Refunded 39.90 EUR").await;
    assert!(refunded.contains("It flickers"), "{refunded}");
    browser.screenshot("order-refunded").await;
    let short_id = order_id[..8].to_uppercase();
    let history = reload_until(&browser, &format!("{}/account", browser.base), &short_id).await;
    assert!(history.contains("Refunded"), "{history}");
    browser.screenshot("account").await;
    browser.close().await;
}

#[tokio::test]
async fn a_form_post_without_the_sessions_csrf_token_is_refused() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let (serve, shop) = serve(&db, &nats);
    stock_catalog(&serve).await;
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{shop}");
    // A session of its own (the cookie), as a victim's browser would have.
    let home = http.get(format!("{base}/")).send().await.unwrap();
    assert!(home.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("HttpOnly; SameSite=Lax"));
    // The token a page of a session carries in its forms.
    let token_of = |page: &str| {
        let start = page.find(r#"name="_csrf" value=""#).expect("a form") + 20;
        page[start..start + page[start..].find('"').unwrap()].to_owned()
    };
    let product = |client: &reqwest::Client| {
        let url = format!("{base}/products/TEA-ACME");
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let mine = token_of(&product(&http).await);
    // An attacker's own session gives them a valid token, of another session.
    let attacker = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let theirs = token_of(&product(&attacker).await);
    assert_ne!(mine, theirs);
    let cart = |client: &reqwest::Client| {
        let url = format!("{base}/cart");
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    for form in [
        vec![("sku", "TEA-ACME"), ("quantity", "1")],
        vec![("_csrf", "forged"), ("sku", "TEA-ACME"), ("quantity", "1")],
        vec![
            ("_csrf", theirs.as_str()),
            ("sku", "TEA-ACME"),
            ("quantity", "1"),
        ],
    ] {
        let refused = http
            .post(format!("{base}/cart/items"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{form:?}");
        let page = refused.text().await.unwrap();
        assert!(page.contains("sent from another site"), "{page}");
    }
    assert!(cart(&http).await.contains("Your cart is empty"));
    // The same post with this session's own token goes through.
    let accepted = http
        .post(format!("{base}/cart/items"))
        .form(&[
            ("_csrf", mine.as_str()),
            ("sku", "TEA-ACME"),
            ("quantity", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 303);
    assert!(cart(&http).await.contains("Porcelain Teapot"));
}

#[tokio::test]
async fn a_malformed_path_is_the_shops_own_not_found_page_with_its_headers() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let (serve, shop) = serve(&db, &nats);
    let http = reqwest::Client::new();
    for path in [
        "/orders/not-an-order",
        "/products/a%20b",
        "/products/..%2F..%2Fv1%2Fadmin%2Fevents",
        "/no/such/page",
    ] {
        let answer = http
            .get(format!("http://{shop}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{path}");
        assert!(answer.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        let page = answer.text().await.unwrap();
        assert!(page.contains("Back to the shop"), "{path}: {page}");
    }
    let style = http
        .get(format!("http://{shop}/assets/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(style.headers()["x-content-type-options"], "nosniff");
    // The storefront's requests are counted by route template, like the APIs'.
    let metrics = http
        .get(format!(
            "http://{}/metrics",
            serve.admin_addr.as_ref().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"http_requests_total{method="GET",route="/products/{sku}",status="404"} 2"#
        ),
        "{metrics}"
    );
}
