//! `mercato seed`: a demo shop filled through the command API, like any client would.
//!
//! Every write goes through `POST /v1/...` of a running command API (so through the same
//! validation, aggregates and the order process as real traffic), with an `Idempotency-Key` derived from
//! the seed and the item, so running the same seed again within a day adds nothing twice.

pub mod catalog;

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use futures::stream::{self, StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::{Client, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

/// `mercato seed`.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Products to create, publish and stock in two warehouses.
    #[arg(long, default_value_t = 200)]
    pub products: usize,
    /// Customers to register (`demo<N>@example.com`, password `demo-password-<N>`).
    #[arg(long, default_value_t = 20)]
    pub customers: usize,
    /// Past orders to place (1-3 items each, paid with the test card `tok_visa`).
    #[arg(long, default_value_t = 50)]
    pub orders: usize,
    /// The command API to fill; by default the one at MERCATO_COMMAND_API_ADDR.
    #[arg(long)]
    pub api_url: Option<String>,
    /// Requests in flight.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Same seed, same shop.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// What a seed run created.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    /// Products created (or already there).
    pub products: usize,
    /// Customers registered (or already there).
    pub customers: usize,
    /// Orders checked out.
    pub orders: usize,
}

const WAREHOUSES: [&str; 2] = ["BER-1", "LIS-1"];

struct Api {
    http: Client,
    base: String,
    seed: u64,
}

impl Api {
    /// Sends one request; `Ok(None)` for an accepted "already done" conflict.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        key: Option<String>,
        body: Option<&Value>,
        accept_conflict: bool,
    ) -> anyhow::Result<Option<Value>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(key) = &key {
                request = request.header("Idempotency-Key", format!("seed-{}-{key}", self.seed));
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .with_context(|| format!("{method} {path}"))?;
            let status = response.status();
            let value: Value = response.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(Some(value));
            }
            if status == StatusCode::CONFLICT && accept_conflict {
                return Ok(None);
            }
            // In flight elsewhere (409 for an idempotency key in use), or busy: try again.
            let retryable = status == StatusCode::CONFLICT
                && value["code"] == "idempotency_key_in_use"
                || status == StatusCode::SERVICE_UNAVAILABLE
                || status == StatusCode::TOO_MANY_REQUESTS;
            if retryable && attempt < 20 {
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                continue;
            }
            bail!("{method} {path} answered {status}: {value}");
        }
    }

    async fn login(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let body = json!({"email": email, "password": password});
        let answer = self
            .call(
                Method::POST,
                "/v1/auth/token",
                None,
                None,
                Some(&body),
                false,
            )
            .await?
            .unwrap_or_default();
        answer["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("the token answer has no access_token")
    }
}

/// Fills the shop; needs the admin's credentials to create the catalog.
pub async fn seed(
    args: SeedArgs,
    api_url: String,
    admin_email: &str,
    admin_password: &SecretString,
) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let api = Api {
        http: Client::builder().timeout(Duration::from_secs(30)).build()?,
        base: api_url.trim_end_matches('/').to_owned(),
        seed: args.seed,
    };
    wait_until_ready(&api).await?;
    let admin = api
        .login(admin_email, admin_password.expose_secret())
        .await
        .context("cannot log in as the admin (MERCATO_ADMIN_EMAIL / MERCATO_ADMIN_PASSWORD)")?;
    let concurrency = usize::from(args.concurrency);
    let total = args.products + args.customers + args.orders;
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} {bar:40} {pos}/{len}  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    bar.set_message("products");
    let products = catalog::products(args.products, args.seed);
    stream::iter(products.iter().enumerate())
        .map(|(i, product)| {
            let (api, admin, bar) = (&api, admin.as_str(), &bar);
            async move {
                let sku = &product.sku;
                api.call(
                    Method::POST,
                    "/v1/products",
                    Some(admin),
                    Some(format!("product-{sku}")),
                    Some(&product.body()),
                    true,
                )
                .await?;
                api.call(
                    Method::POST,
                    &format!("/v1/products/{sku}/publish"),
                    Some(admin),
                    Some(format!("publish-{sku}")),
                    None,
                    true,
                )
                .await?;
                let mut rng = StdRng::seed_from_u64(args.seed ^ ((i as u64) << 8));
                for warehouse in WAREHOUSES {
                    // A few products are sold out in one warehouse, as in a real shop.
                    let quantity = if rng.random_ratio(1, 10) {
                        0
                    } else {
                        rng.random_range(5..=120)
                    };
                    if quantity == 0 {
                        continue;
                    }
                    let body = json!({"warehouse": warehouse, "quantity": quantity});
                    api.call(
                        Method::POST,
                        &format!("/v1/stock/{sku}/receipts"),
                        Some(admin),
                        Some(format!("receipt-{sku}-{warehouse}")),
                        Some(&body),
                        false,
                    )
                    .await?;
                }
                bar.inc(1);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;

    bar.set_message("customers");
    let tokens: Vec<String> = stream::iter(0..args.customers)
        .map(|i| {
            let (api, bar, admin) = (&api, &bar, admin.as_str());
            async move {
                let (first, last) = catalog::person(i);
                let email = format!("demo{i}@example.com");
                let password = format!("demo-password-{i}");
                let body = json!({"email": email, "name": format!("{first} {last}"), "password": password});
                // As the back office: a shop's own registrations are not throttled.
                api.call(Method::POST, "/v1/customers", Some(admin), Some(format!("customer-{i}")), Some(&body), true)
                    .await?;
                let token = api.login(&email, &password).await?;
                bar.inc(1);
                anyhow::Ok(token)
            }
        })
        .buffered(concurrency)
        .try_collect()
        .await?;

    bar.set_message("orders");
    if !tokens.is_empty() && !products.is_empty() {
        stream::iter(0..args.orders)
            .map(|k| {
                let (api, bar, tokens, products) = (&api, &bar, &tokens, &products);
                async move {
                    place_order(api, k, &tokens[k % tokens.len()], products).await?;
                    bar.inc(1);
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(concurrency)
            .try_collect::<()>()
            .await?;
    }
    bar.finish_and_clear();
    let seeded = Seeded {
        products: args.products,
        customers: args.customers,
        orders: if tokens.is_empty() { 0 } else { args.orders },
    };
    tracing::info!(
        products = seeded.products,
        customers = seeded.customers,
        orders = seeded.orders,
        seconds = started.elapsed().as_secs_f64(),
        "demo shop seeded"
    );
    Ok(seeded)
}

async fn place_order(
    api: &Api,
    k: usize,
    token: &str,
    products: &[catalog::DemoProduct],
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(api.seed.wrapping_mul(31).wrapping_add(k as u64));
    let cart = api
        .call(
            Method::POST,
            "/v1/carts",
            Some(token),
            Some(format!("cart-{k}")),
            Some(&json!({"currency": "EUR"})),
            false,
        )
        .await?
        .unwrap_or_default();
    let cart_id = cart["id"]
        .as_str()
        .context("the cart answer has no id")?
        .to_owned();
    let lines = rng.random_range(1..=3);
    let picked: Vec<_> = products.choose_multiple(&mut rng, lines).collect();
    for product in picked {
        let body = json!({"sku": product.sku, "quantity": rng.random_range(1..=2)});
        api.call(
            Method::POST,
            &format!("/v1/carts/{cart_id}/items"),
            Some(token),
            Some(format!("item-{k}-{}", product.sku)),
            Some(&body),
            false,
        )
        .await?;
    }
    let (first, last) = catalog::person(k);
    let city = ["Berlin", "Lisbon", "Vienna", "Lyon"][k % 4];
    let country = ["DE", "PT", "AT", "FR"][k % 4];
    let body = json!({
        "shipping_address": {
            "name": format!("{first} {last}"),
            "line1": format!("{} Market Street", 1 + k % 200),
            "line2": null,
            "city": city,
            "postal_code": format!("{:05}", 10_000 + k % 80_000),
            "country": country,
        },
        // Mostly good cards; some declines so the shop shows cancelled orders too.
        "payment_token": if k % 10 == 7 { "tok_decline" } else { "tok_visa" },
    });
    api.call(
        Method::POST,
        &format!("/v1/carts/{cart_id}/checkout"),
        Some(token),
        Some(format!("checkout-{k}")),
        Some(&body),
        false,
    )
    .await?;
    Ok(())
}

async fn wait_until_ready(api: &Api) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = api
            .http
            .get(format!("{}/readyz", api.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the command API at {} is not ready; start it with `mercato serve`",
                api.base
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
