//! `catalog-read`: product detail and product list requests through the real query API over
//! HTTP, beside `pgbench -S`-style primary-key selects of the same rows in the same run.
//!
//! The catalog is the demo catalog (see `catalog_data`), its read models built by the
//! projections' own apply path from the log. Every variant runs `clients` closed-loop clients
//! in this process (so the load generator shares the two cores with the server, for the
//! baseline as for the API).

use std::sync::Arc;
use std::time::Duration;

use mercato_projections::projection::find;
use mercato_projections::{catch_up, READ_SCHEMA};
use rand::Rng;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::catalog_data;
use crate::load::closed_loop;
use crate::report::ratio;
use crate::setup::BenchEnv;

/// Options of the `catalog-read` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Products in the catalog.
    #[arg(long, default_value_t = 10_000)]
    products: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds each variant runs (after a one-second warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

pub async fn run(env: &BenchEnv, args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.products > 0 && args.clients > 0,
        "products and clients must be positive"
    );
    mercato_projections::migrate(&env.pool).await?;
    let products = mercato_cli::seed::catalog::products(args.products, 42);
    let events = catalog_data::load(env, &products).await?;
    for name in ["catalog", "stock"] {
        catch_up(&env.pool, &*find(name)?, READ_SCHEMA, 10_000).await?;
    }
    sqlx::query("VACUUM ANALYZE read.products, read.stock")
        .execute(&env.pool)
        .await?;
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM read.products WHERE status = 'published'")
            .fetch_one(&env.pool)
            .await?;
    anyhow::ensure!(
        rows as usize == args.products,
        "{rows} of {} products projected",
        args.products
    );
    let skus: Arc<Vec<String>> = Arc::new(products.iter().map(|p| p.sku.clone()).collect());
    let categories: Arc<Vec<String>> = Arc::new({
        let mut c: Vec<String> = products.iter().map(|p| p.category.join("/")).collect();
        c.sort();
        c.dedup();
        c
    });

    let shutdown = CancellationToken::new();
    let index_dir = std::env::temp_dir().join(format!("mercato-bench-{}", Uuid::new_v4()));
    let api = env.query_api(&index_dir).await?;
    let base = Arc::new(format!("http://127.0.0.1:{}", api.port()));
    let server = tokio::spawn(api.run(shutdown.clone()));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;

    let warmup = Duration::from_secs(1);
    let secs = Duration::from_secs(args.seconds);
    let pick = |skus: &[String]| skus[rand::rng().random_range(0..skus.len())].clone();

    let pool = env.pool.clone();
    let s = skus.clone();
    let pk_select = closed_loop(args.clients, warmup, secs, move |_, _| {
        let (pool, sku) = (pool.clone(), pick(&s));
        async move {
            let _: (String, String, i64) =
                sqlx::query_as("SELECT sku, name, price_amount FROM read.products WHERE sku = $1")
                    .bind(sku)
                    .fetch_one(&pool)
                    .await?;
            Ok(())
        }
    })
    .await?;

    let (h, b, s) = (http.clone(), base.clone(), skus.clone());
    let detail = closed_loop(args.clients, warmup, secs, move |_, _| {
        let (http, url) = (h.clone(), format!("{b}/v1/products/{}", pick(&s)));
        async move { get(&http, &url).await }
    })
    .await?;

    let (h, b, c) = (http.clone(), base.clone(), categories.clone());
    let list = closed_loop(args.clients, warmup, secs, move |_, n| {
        let category = &c[n as usize % c.len()];
        let (http, url) = (
            h.clone(),
            format!("{b}/v1/products?limit=20&category={category}"),
        );
        async move { get(&http, &url).await }
    })
    .await?;

    shutdown.cancel();
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&index_dir);

    let base_rate = pk_select.per_second();
    println!(
        "## catalog-read: {} products ({events} events), {} clients, {} s per variant\n",
        args.products, args.clients, args.seconds
    );
    println!("| request | requests/s | p50 ms | p99 ms | ratio to PK select |");
    println!("|---|---|---|---|---|");
    println!(
        "| `SELECT sku, name, price_amount FROM read.products WHERE sku = $1` (baseline) | {} | 1.00x |",
        pk_select.cells()
    );
    println!(
        "| `GET /v1/products/{{sku}}` (query API, HTTP) | {} | {} |",
        detail.cells(),
        ratio(detail.per_second(), base_rate)
    );
    println!(
        "| `GET /v1/products?limit=20&category=...` (query API, HTTP) | {} | {} |",
        list.cells(),
        ratio(list.per_second(), base_rate)
    );
    println!();
    Ok(())
}

async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let response = http.get(url).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    anyhow::ensure!(status.is_success(), "GET {url}: {status}");
    anyhow::ensure!(!body.is_empty(), "GET {url}: empty body");
    Ok(())
}
