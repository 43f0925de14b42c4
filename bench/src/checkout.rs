//! `checkout`: concurrent shoppers through the real command API over HTTP (relay and order
//! process in-process), beside the same checkout as one plain SQL transaction, and a `hot-sku`
//! variant where every shopper buys the same SKU (with a no-oversell check).
//!
//! A shopper opens a cart, adds 1-3 lines, checks out and waits until the order is confirmed
//! (or cancelled), as seen on the order's events on NATS; then starts over. Throughput counts
//! confirmed checkouts over the whole run; command latency is each HTTP write as the client
//! sees it; time to confirmed runs from the checkout's `202` to `OrderConfirmed`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use hdrhistogram::Histogram;
use mercato_aggregates::stock::Stock;
use mercato_command_api::{CommandApi, CommandApiConfig, Deps, OrderProcessWorker, ProcessConfig};
use mercato_event_store::{AggregateStore, SnapshotPolicy};
use mercato_nats::{headers, Relay, RelayConfig};
use rand::seq::IndexedRandom;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::report::{histogram, percentiles, ratio, record};
use crate::setup::BenchEnv;

/// Options of the `checkout` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent shoppers.
    #[arg(long, default_value_t = 16)]
    shoppers: usize,
    /// Checkouts per variant (shared among the shoppers).
    #[arg(long, default_value_t = 200)]
    checkouts: usize,
    /// Products of the catalog (10,000 units each, the most one stock receipt may add).
    #[arg(long, default_value_t = 50)]
    products: usize,
    /// Units of the hot SKU (default: half the checkouts, so that half must be refused).
    #[arg(long)]
    hot_stock: Option<u32>,
}

/// One variant's results.
struct Outcome {
    elapsed: Duration,
    confirmed: usize,
    cancelled: usize,
    commands: Histogram<u64>,
    to_confirmed: Histogram<u64>,
    /// Statements PostgreSQL ran on the bench's database during the variant (every part:
    /// carts, checkouts, the order process, the relay), when pg_stat_statements is loaded.
    statements: Option<u64>,
}

impl Outcome {
    fn confirmed_per_second(&self) -> f64 {
        self.confirmed as f64 / self.elapsed.as_secs_f64()
    }
}

pub async fn run(env: &BenchEnv, args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.shoppers > 0 && args.checkouts > 0 && args.products > 0,
        "shoppers, checkouts and products must be positive"
    );
    let hot_stock = args.hot_stock.unwrap_or((args.checkouts / 2) as u32);
    let skus: Vec<String> = (0..args.products).map(|i| format!("BENCH-{i}")).collect();

    let counter = StatementCounter::new(env).await;
    // Baselines first, on tables of their own.
    let plain = counter.count(plain_sql(env, args, &skus, None)).await?;
    let plain_hot = counter
        .count(plain_sql(env, args, &skus, Some(hot_stock)))
        .await?;

    let stack = Stack::start(env).await?;
    let setup = async {
        let admin = stack.admin().await?;
        for (i, sku) in skus.iter().enumerate() {
            stack.product(&admin, sku, 1000 + i as u64, 10_000).await?;
        }
        stack
            .product(&admin, "HOT-1", 1500, hot_stock.into())
            .await?;
        let shoppers: Vec<String> = futures::stream::iter(0..args.shoppers)
            .map(|i| stack.shopper(i))
            .buffer_unordered(4)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        anyhow::Ok(shoppers)
    };
    let shoppers = setup.await?;
    let ours = counter
        .count(stack.shop(args, &shoppers, &skus, false))
        .await;
    let ours_hot = match ours {
        Ok(_) => {
            counter
                .count(stack.shop(args, &shoppers, &skus, true))
                .await
        }
        Err(_) => Err(anyhow::anyhow!("skipped")),
    };
    let available = AggregateStore::<Stock>::new(env.pool.clone(), (), &SnapshotPolicy::never())
        .load("HOT-1")
        .await
        .map(|(s, _)| s.total_available());
    stack.stop().await;
    let (ours, ours_hot, available) = (ours?, ours_hot?, available?);

    println!(
        "## checkout: {} shoppers, {} checkouts per variant, {} products\n",
        args.shoppers, args.checkouts, args.products
    );
    println!("| variant | confirmed checkouts/s | ratio | confirmed / cancelled | command p50 / p99 (ms) | time to confirmed p50 / p99 (ms) | statements per checkout |");
    println!("|---|---|---|---|---|---|---|");
    let base = plain.confirmed_per_second();
    for (name, o, confirmation) in [
        ("plain SQL transaction (baseline)", &plain, false),
        ("command API + relay + order process", &ours, true),
        ("plain SQL transaction, hot SKU", &plain_hot, false),
        (
            "command API + relay + order process, hot SKU",
            &ours_hot,
            true,
        ),
    ] {
        let (c50, c99, _) = percentiles(&o.commands);
        let confirmed = if confirmation {
            let (t50, t99, _) = percentiles(&o.to_confirmed);
            format!("{t50:.1} / {t99:.1}")
        } else {
            "(in the transaction)".to_owned()
        };
        let statements = o.statements.map_or("(not counted)".to_owned(), |n| {
            format!(
                "{:.1}",
                n as f64 / (o.confirmed + o.cancelled).max(1) as f64
            )
        });
        println!(
            "| {name} | {:.1} | {} | {} / {} | {c50:.1} / {c99:.1} | {confirmed} | {statements} |",
            o.confirmed_per_second(),
            ratio(o.confirmed_per_second(), base),
            o.confirmed,
            o.cancelled,
        );
    }
    if counter.0.is_none() {
        println!("\nStatements are counted with pg_stat_statements, which is not loaded: add it to the server's `shared_preload_libraries` and restart it to count them.");
    }

    println!(
        "\n## checkout: hot SKU, {hot_stock} units, {} buyers of one unit each\n",
        args.checkouts
    );
    println!("| variant | units sold | available after | expected sold | oversell |");
    println!("|---|---|---|---|---|");
    let expected = (hot_stock as usize).min(args.checkouts);
    let plain_left: i64 =
        sqlx::query_scalar("SELECT available FROM bench_hot_stock WHERE sku = 'HOT-1'")
            .fetch_one(&env.pool)
            .await?;
    for (name, sold, left) in [
        ("plain SQL", plain_hot.confirmed, plain_left as u64),
        ("command API + order process", ours_hot.confirmed, available),
    ] {
        let oversold = sold > hot_stock as usize || sold as u64 + left != u64::from(hot_stock);
        println!(
            "| {name} | {sold} | {left} | {expected} | {} |",
            if oversold { "**yes**" } else { "none" }
        );
    }
    Ok(())
}

/// The baseline: one transaction per checkout (decrement each line's stock where it suffices,
/// insert the order), `shoppers` at a time. `hot` buys one unit of one SKU with that stock.
async fn plain_sql(
    env: &BenchEnv,
    args: &Args,
    skus: &[String],
    hot: Option<u32>,
) -> anyhow::Result<Outcome> {
    let (stock, orders) = if hot.is_some() {
        ("bench_hot_stock", "bench_hot_orders")
    } else {
        ("bench_stock", "bench_orders")
    };
    sqlx::raw_sql(&format!(
        "CREATE TABLE {stock} (sku text PRIMARY KEY, available bigint NOT NULL CHECK (available >= 0)); \
         CREATE TABLE {orders} (order_id uuid PRIMARY KEY, customer_id uuid NOT NULL, lines jsonb NOT NULL, \
           total bigint NOT NULL, shipping_address jsonb NOT NULL, payment_token text NOT NULL, \
           status text NOT NULL, placed_at timestamptz NOT NULL DEFAULT now());"
    ))
    .execute(&env.pool)
    .await?;
    match hot {
        Some(units) => {
            sqlx::query(&format!(
                "INSERT INTO {stock} (sku, available) VALUES ('HOT-1', $1)"
            ))
            .bind(i64::from(units))
            .execute(&env.pool)
            .await?;
        }
        None => {
            sqlx::query(&format!(
                "INSERT INTO {stock} (sku, available) SELECT unnest($1::text[]), 10000"
            ))
            .bind(skus)
            .execute(&env.pool)
            .await?;
        }
    }
    let commands = Arc::new(Mutex::new(histogram()));
    let confirmed = Arc::new(Mutex::new(0usize));
    let start = Instant::now();
    let per_shopper = shares(args.checkouts, args.shoppers);
    let mut tasks = Vec::new();
    for share in per_shopper {
        let pool = env.pool.clone();
        let skus = skus.to_vec();
        let (commands, confirmed) = (commands.clone(), confirmed.clone());
        let insert = format!(
            "INSERT INTO {orders} (order_id, customer_id, lines, total, shipping_address, payment_token, status) \
             VALUES ($1, $2, $3, $4, $5, 'tok_visa', 'confirmed')"
        );
        let decrement = format!(
            "UPDATE {stock} SET available = available - $2 WHERE sku = $1 AND available >= $2"
        );
        tasks.push(tokio::spawn(async move {
            let customer = Uuid::new_v4();
            for _ in 0..share {
                let mut lines = if hot.is_some() {
                    vec![("HOT-1".to_owned(), 1i64, 1500i64)]
                } else {
                    pick_lines(&skus)
                        .into_iter()
                        .map(|(sku, price)| (sku, 1i64, price as i64))
                        .collect()
                };
                // A fixed lock order: concurrent carts never deadlock.
                lines.sort();
                let t = Instant::now();
                let mut tx = pool.begin().await?;
                let mut ok = true;
                for (sku, quantity, _) in &lines {
                    let done = sqlx::query(&decrement)
                        .bind(sku)
                        .bind(quantity)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        ok = false;
                        break;
                    }
                }
                if ok {
                    let total: i64 = lines.iter().map(|(_, q, p)| q * p).sum();
                    let body: Vec<Value> = lines
                        .iter()
                        .map(|(sku, q, p)| json!({"sku": sku, "quantity": q, "unit_price": p}))
                        .collect();
                    sqlx::query(&insert)
                        .bind(Uuid::new_v4())
                        .bind(customer)
                        .bind(Value::Array(body))
                        .bind(total)
                        .bind(address())
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    *confirmed.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                } else {
                    tx.rollback().await?;
                }
                record(
                    &mut commands.lock().unwrap_or_else(|p| p.into_inner()),
                    t.elapsed(),
                );
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed();
    let confirmed = *confirmed.lock().unwrap_or_else(|p| p.into_inner());
    let commands = commands.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(Outcome {
        elapsed,
        confirmed,
        cancelled: args.checkouts - confirmed,
        commands,
        to_confirmed: histogram(),
        statements: None,
    })
}

/// `total` split into `parts` nearly equal shares.
fn shares(total: usize, parts: usize) -> Vec<usize> {
    (0..parts)
        .map(|i| total / parts + usize::from(i < total % parts))
        .collect()
}

/// 1-3 distinct products with their prices (`BENCH-i` costs `1000 + i`).
fn pick_lines(skus: &[String]) -> Vec<(String, u64)> {
    let mut rng = rand::rng();
    let n = rand::Rng::random_range(&mut rng, 1..=3usize).min(skus.len());
    skus.choose_multiple(&mut rng, n)
        .map(|sku| {
            let i: u64 = sku.trim_start_matches("BENCH-").parse().unwrap_or_default();
            (sku.clone(), 1000 + i)
        })
        .collect()
}

fn address() -> Value {
    json!({"name": "Ada Lovelace", "line1": "1 Main St", "line2": null,
           "city": "London", "postal_code": "N1 9GU", "country": "GB"})
}

/// Who waits for which order's outcome (`true`: confirmed).
type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<bool>>>>;

/// The command API, the relay and the order process in this process, on a fresh stream, and a
/// subscriber that tells shoppers when their order is settled.
struct Stack {
    base: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    waiters: Waiters,
}

impl Stack {
    async fn start(env: &BenchEnv) -> anyhow::Result<Self> {
        mercato_command_api::migrate(&env.pool).await?;
        let stream = env.fresh_stream().await?;
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let relay = Relay::new(
            env.pool.clone(),
            env.database.clone(),
            env.js.clone(),
            stream.clone(),
            RelayConfig {
                name: "bench-checkout".into(),
                ..RelayConfig::default()
            },
        );
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = relay.run(stop).await {
                tracing::error!(error = %e, "relay stopped");
            }
        }));

        // Shoppers learn of their order's outcome from its events on the bus.
        let waiters: Waiters = Arc::default();
        let mut events = env
            .client
            .subscribe(stream.aggregate_type_wildcard("Order"))
            .await?;
        env.client.flush().await?;
        let w = waiters.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(message) = events.next().await {
                let Some(h) = message.headers.as_ref() else {
                    continue;
                };
                let confirmed = match h.get(headers::EVENT_TYPE).map(|v| v.as_str()) {
                    Some("OrderConfirmed") => true,
                    Some("OrderCancelled") => false,
                    _ => continue,
                };
                let Some(order_id) = h.get(headers::AGGREGATE_ID) else {
                    continue;
                };
                let waiter = w
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(order_id.as_str());
                if let Some(tx) = waiter {
                    let _ = tx.send(confirmed);
                }
            }
        }));

        // Production settings except: port 0, a known admin, cheap password hashing (shoppers
        // register during setup, which is not measured).
        let config = CommandApiConfig {
            consumer_prefix: format!("bench-{}", Uuid::new_v4().simple()),
            ..CommandApiConfig::for_tests()
        };
        let deps = Deps {
            pool: env.pool.clone(),
            nats_client: env.client.clone(),
            js: env.js.clone(),
            nats: stream,
            snapshots: SnapshotPolicy::default(),
        };
        let api = CommandApi::build(config.clone(), deps.clone()).await?;
        let base = format!("http://127.0.0.1:{}", api.port());
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = api.run(stop).await {
                tracing::error!(error = %e, "command api stopped");
            }
        }));
        let process_config = ProcessConfig::from_config(&config);
        let process = OrderProcessWorker::with_gateway(
            process_config,
            &deps,
            Arc::new(mercato_command_api::TestCardGateway::new(
                config.payment_timeout,
            )),
        );
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = process.run(stop).await {
                tracing::error!(error = %e, "order process stopped");
            }
        }));
        Ok(Self {
            base,
            http: reqwest::Client::new(),
            shutdown,
            tasks,
            waiters,
        })
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }

    /// POSTs JSON; fails on anything but a 2xx.
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.with_context(|| format!("POST {path}"))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "POST {path}: {status} {body}");
        Ok(body)
    }

    async fn admin(&self) -> anyhow::Result<String> {
        let b = self
            .post(
                "/v1/auth/token",
                None,
                json!({"email": "admin@mercato.test", "password": "admin-password"}),
            )
            .await?;
        Ok(b["access_token"].as_str().unwrap_or_default().to_owned())
    }

    async fn product(&self, admin: &str, sku: &str, price: u64, units: u64) -> anyhow::Result<()> {
        self.post(
            "/v1/products",
            Some(admin),
            json!({"sku": sku, "name": format!("Product {sku}"), "description": "A benchmark product",
                   "brand": "Acme", "category": ["bench"], "price": {"amount": price, "currency": "EUR"},
                   "attributes": {}, "images": []}),
        )
        .await?;
        self.post(
            &format!("/v1/products/{sku}/publish"),
            Some(admin),
            json!({}),
        )
        .await?;
        self.post(
            &format!("/v1/stock/{sku}/receipts"),
            Some(admin),
            json!({"warehouse": "main", "quantity": units}),
        )
        .await?;
        Ok(())
    }

    /// Registers and logs in shopper `i`: the access token.
    async fn shopper(&self, i: usize) -> anyhow::Result<String> {
        let email = format!("shopper{i}@bench.test");
        self.post(
            "/v1/customers",
            None,
            json!({"email": email, "name": "Bench Shopper", "password": "correct horse battery"}),
        )
        .await?;
        let b = self
            .post(
                "/v1/auth/token",
                None,
                json!({"email": email, "password": "correct horse battery"}),
            )
            .await?;
        Ok(b["access_token"].as_str().unwrap_or_default().to_owned())
    }

    /// Every shopper checks out its share of the checkouts, one after the other.
    async fn shop(
        &self,
        args: &Args,
        shoppers: &[String],
        skus: &[String],
        hot: bool,
    ) -> anyhow::Result<Outcome> {
        let start = Instant::now();
        let runs = shoppers
            .iter()
            .zip(shares(args.checkouts, shoppers.len()))
            .map(|(token, share)| self.shopper_run(token, share, skus, hot));
        let mut commands = histogram();
        let mut to_confirmed = histogram();
        let (mut confirmed, mut cancelled) = (0, 0);
        for r in futures::future::join_all(runs).await {
            let r = r?;
            commands.add(&r.commands)?;
            to_confirmed.add(&r.to_confirmed)?;
            confirmed += r.confirmed;
            cancelled += r.cancelled;
        }
        Ok(Outcome {
            elapsed: start.elapsed(),
            confirmed,
            cancelled,
            commands,
            to_confirmed,
            statements: None,
        })
    }

    async fn shopper_run(
        &self,
        token: &str,
        share: usize,
        skus: &[String],
        hot: bool,
    ) -> anyhow::Result<Outcome> {
        let start = Instant::now();
        let mut commands = histogram();
        let mut to_confirmed = histogram();
        let (mut confirmed, mut cancelled) = (0, 0);
        for _ in 0..share {
            let t = Instant::now();
            let cart = self
                .post("/v1/carts", Some(token), json!({"currency": "EUR"}))
                .await?;
            record(&mut commands, t.elapsed());
            let cart = cart["id"].as_str().unwrap_or_default().to_owned();
            let lines: Vec<String> = if hot {
                vec!["HOT-1".to_owned()]
            } else {
                pick_lines(skus).into_iter().map(|(sku, _)| sku).collect()
            };
            for sku in lines {
                let t = Instant::now();
                self.post(
                    &format!("/v1/carts/{cart}/items"),
                    Some(token),
                    json!({"sku": sku, "quantity": 1}),
                )
                .await?;
                record(&mut commands, t.elapsed());
            }
            let order_id = mercato_command_api::order_id_for(cart.parse()?).to_string();
            let (tx, rx) = oneshot::channel();
            self.waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(order_id.clone(), tx);
            let t = Instant::now();
            self.post(
                &format!("/v1/carts/{cart}/checkout"),
                Some(token),
                json!({"shipping_address": address(), "payment_token": "tok_visa"}),
            )
            .await?;
            let accepted = Instant::now();
            record(&mut commands, accepted - t);
            let outcome = tokio::time::timeout(Duration::from_secs(120), rx)
                .await
                .with_context(|| format!("order {order_id} did not settle"))??;
            if outcome {
                confirmed += 1;
                record(&mut to_confirmed, accepted.elapsed());
            } else {
                cancelled += 1;
            }
        }
        Ok(Outcome {
            elapsed: start.elapsed(),
            confirmed,
            cancelled,
            commands,
            to_confirmed,
            statements: None,
        })
    }
}

/// Counts the statements PostgreSQL runs on the bench's database (`pg_stat_statements`, which
/// must be in the server's `shared_preload_libraries`; without it nothing is counted). Each
/// statement is one round trip from the client (sqlx sends parse, bind and execute together),
/// `BEGIN` and `COMMIT` included.
struct StatementCounter(Option<sqlx::PgPool>);

impl StatementCounter {
    async fn new(env: &BenchEnv) -> Self {
        let loaded = sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&env.pool)
            .await
            .is_ok();
        let counter = Self(loaded.then(|| env.pool.clone()));
        match counter.total().await {
            Some(_) => counter,
            None => Self(None),
        }
    }

    /// Statements run on this database so far.
    async fn total(&self) -> Option<u64> {
        let pool = self.0.as_ref()?;
        let calls: Result<i64, sqlx::Error> = sqlx::query_scalar(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(pool)
        .await;
        calls.ok().map(|c| c as u64)
    }

    /// `variant`'s outcome with the statements that ran while it did.
    async fn count(
        &self,
        variant: impl std::future::Future<Output = anyhow::Result<Outcome>>,
    ) -> anyhow::Result<Outcome> {
        let before = self.total().await;
        let mut outcome = variant.await?;
        outcome.statements = before
            .zip(self.total().await)
            .map(|(b, a)| a.saturating_sub(b));
        Ok(outcome)
    }
}
