//! `checkout`: concurrent shoppers through the real command API over HTTP (relay and order
//! process in-process), beside the same checkout as one plain SQL transaction, and a `hot-sku`
//! variant where every shopper buys the same SKU (with a no-oversell check).
//!
//! A shopper opens a cart, adds 1-3 lines, checks out and waits until the order is confirmed
//! (or cancelled), as seen on the order's events on NATS; then starts over. Throughput counts
//! confirmed checkouts over the whole run; command latency is each HTTP write as the client
//! sees it; time to confirmed runs from the checkout's `202` to `OrderConfirmed`.

use std::time::Duration;

use futures::StreamExt;
use hdrhistogram::Histogram;
use mercato_aggregates::stock::Stock;
use mercato_event_store::{AggregateStore, SnapshotPolicy};
use rand::seq::IndexedRandom;
use serde_json::{json, Value};

mod plain;
mod stack;

use crate::report::{percentiles, ratio};
use crate::setup::BenchEnv;
use crate::statements::StatementCounter;
use plain::plain_sql;
use stack::Stack;

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
    let plain = counted(&counter, plain_sql(env, args, &skus, None)).await?;
    let plain_hot = counted(&counter, plain_sql(env, args, &skus, Some(hot_stock))).await?;

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
    let ours = counted(&counter, stack.shop(args, &shoppers, &skus, false, None)).await;
    let ours_hot = match ours {
        Ok(_) => counted(&counter, stack.shop(args, &shoppers, &skus, true, None)).await,
        Err(_) => Err(anyhow::anyhow!("skipped")),
    };
    // Last, since the tax rate applies to every checkout from now on: the same shopping with
    // a coupon on every cart (each checkout holds one of its uses) and VAT on every order.
    let ours_priced = match &ours_hot {
        Ok(_) => {
            let priced = async {
                let admin = stack.admin().await?;
                stack.pricing(&admin, "BENCH10", args.checkouts * 2).await?;
                stack
                    .shop(args, &shoppers, &skus, false, Some("BENCH10"))
                    .await
            };
            counted(&counter, priced).await
        }
        Err(_) => Err(anyhow::anyhow!("skipped")),
    };
    let available = AggregateStore::<Stock>::new(env.pool.clone(), (), &SnapshotPolicy::never())
        .load("HOT-1")
        .await
        .map(|(s, _)| s.total_available());
    stack.stop().await;
    let (ours, ours_hot, ours_priced, available) = (ours?, ours_hot?, ours_priced?, available?);

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
        (
            "command API + relay + order process, 10% coupon and 20% VAT",
            &ours_priced,
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
    println!(
        "\nA coupon and VAT on every checkout: {} the confirmed checkouts per second of the same run without them.",
        ratio(ours_priced.confirmed_per_second(), ours.confirmed_per_second())
    );
    if !counter.counting() {
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

/// `variant`'s outcome with the statements that ran while it did.
async fn counted(
    counter: &StatementCounter,
    variant: impl std::future::Future<Output = anyhow::Result<Outcome>>,
) -> anyhow::Result<Outcome> {
    let (mut outcome, statements) = counter.count(variant).await?;
    outcome.statements = statements;
    Ok(outcome)
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
