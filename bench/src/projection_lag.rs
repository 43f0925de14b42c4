//! `projection-lag`: commit-to-visible latency of the read models at a steady write rate.
//!
//! Writers append product price changes to the log (`AggregateStore::append`, the event
//! store's real append) at a fixed total rate, with the relay, every PostgreSQL projection
//! worker and a search-index worker running on a stream of their own. For every write, from
//! the moment its commit returned to the writer:
//! - to its arrival on a subscriber of the stream (the relay alone; the baseline, the floor
//!   every projection sits on);
//! - to the catalog projection's checkpoint passing it (its read-model change commits in the
//!   same transaction as the checkpoint, so that is when a reader can see it);
//! - to the search index's searchable position passing it.
//!
//! Visibility is sampled by polling every few milliseconds (`POLL_MS`), so its numbers carry
//! up to that much resolution on top (polling every millisecond would add a thousand queries
//! a second to the two cores the measured workers share).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use mercato_aggregates::product::{Product, ProductEvent};
use mercato_event_store::{
    AggregateStore, EventMetadata, LogReader, Position, RecordedEvent, SnapshotPolicy,
};
use mercato_nats::{Relay, RelayConfig};
use mercato_projections::search::{SearchIndex, SearchWorker};
use mercato_projections::{run_projections, ProjectionDeps};
use rand::Rng;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::catalog_data;
use crate::report::{histogram, percentiles, record};
use crate::setup::BenchEnv;

/// How often the read models' positions are sampled.
const POLL_MS: u64 = 5;

/// Options of the `projection-lag` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Steady write rate (events/s).
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Seconds of steady writing.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Products whose prices change.
    #[arg(long, default_value_t = 2_000)]
    products: usize,
    /// Concurrent writers sharing the rate.
    #[arg(long, default_value_t = 16)]
    writers: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Commits not seen yet by one observer, and the latencies of those it has seen.
#[derive(Default)]
struct Visibility {
    pending: BTreeMap<Position, Instant>,
    latency: Option<Histogram<u64>>,
}

impl Visibility {
    /// Everything committed up to `position` is visible now.
    fn reached(&mut self, position: Position, now: Instant) {
        let later = self.pending.split_off(&Position::new(
            position.tx_id(),
            position.global_position().saturating_add(1),
        ));
        let seen = std::mem::replace(&mut self.pending, later);
        let h = self.latency.get_or_insert_with(histogram);
        for committed in seen.into_values() {
            record(h, now.saturating_duration_since(committed));
        }
    }
}

pub async fn run(env: &BenchEnv, args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate > 0 && args.writers > 0 && args.products > 0,
        "rate, writers and products must be positive"
    );
    mercato_projections::migrate(&env.pool).await?;
    let products = mercato_cli::seed::catalog::products(args.products, 42);
    catalog_data::load(env, &products).await?;
    let stream = env.fresh_stream().await?;
    let shutdown = CancellationToken::new();
    let relay = Relay::new(
        env.pool.clone(),
        env.database.clone(),
        env.js.clone(),
        stream.clone(),
        RelayConfig {
            name: format!("bench-lag-{}", Uuid::new_v4().simple()),
            ..RelayConfig::default()
        },
    );
    let mut tasks = vec![tokio::spawn({
        let s = shutdown.clone();
        async move {
            if let Err(e) = relay.run(s).await {
                tracing::error!(error = %e, "relay stopped");
            }
        }
    })];
    let deps = ProjectionDeps {
        pool: env.pool.clone(),
        client: env.client.clone(),
        js: env.js.clone(),
        nats: stream.clone(),
    };
    tasks.push(tokio::spawn({
        let (deps, s) = (deps.clone(), shutdown.clone());
        async move {
            if let Err(e) = run_projections(&[], deps, s).await {
                tracing::error!(error = %e, "projection workers stopped");
            }
        }
    }));
    let index_dir = std::env::temp_dir().join(format!("mercato-bench-lag-{}", Uuid::new_v4()));
    let index = SearchIndex::open(&index_dir)?;
    let search = SearchWorker::new(
        index.clone(),
        deps,
        &format!("bench-{}", Uuid::new_v4().simple()),
    );
    tasks.push(tokio::spawn({
        let s = shutdown.clone();
        async move {
            if let Err(e) = search.run(s).await {
                tracing::error!(error = %e, "search worker stopped");
            }
        }
    }));

    // Let every worker catch up with the catalog before measuring.
    let head = LogReader::new(env.pool.clone())
        .head()
        .await?
        .unwrap_or(Position::START);
    let deadline = Instant::now() + Duration::from_secs(300);
    while checkpoint(&env.pool).await? < head || index.position().0 < head {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the workers did not catch up in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let on_stream: Arc<Mutex<Visibility>> = Arc::default();
    let in_catalog: Arc<Mutex<Visibility>> = Arc::default();
    let in_search: Arc<Mutex<Visibility>> = Arc::default();
    let arrivals: Arc<Mutex<HashMap<Position, Instant>>> = Arc::default();
    let mut sub = env.client.subscribe(stream.events_wildcard()).await?;
    env.client.flush().await?;
    let receiver = {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let at = Instant::now();
                if let Ok(e) = serde_json::from_slice::<RecordedEvent>(&msg.payload) {
                    lock(&arrivals).insert(e.position, at);
                }
            }
        })
    };
    let stop_watching = CancellationToken::new();
    let watcher = {
        let (pool, catalog, search, index, stop) = (
            env.pool.clone(),
            in_catalog.clone(),
            in_search.clone(),
            index.clone(),
            stop_watching.clone(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(POLL_MS));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while !stop.is_cancelled() {
                tick.tick().await;
                let position = checkpoint(&pool).await?;
                let now = Instant::now();
                lock(&catalog).reached(position, now);
                lock(&search).reached(index.position().0, now);
            }
            anyhow::Ok(())
        })
    };

    // Appends, not commands: this measures the read side at a steady write rate, and the
    // command path's own CPU (load, decide) would be taken from the workers measured here
    // on a two-core machine. Each writer owns its products and knows their versions.
    let store = Arc::new(AggregateStore::<Product>::new(
        env.pool.clone(),
        (),
        &SnapshotPolicy::never(),
    ));
    let skus: Arc<Vec<String>> = Arc::new(products.iter().map(|p| p.sku.clone()).collect());
    let commits: Arc<Mutex<Vec<(Position, Instant)>>> = Arc::default();
    let sent = Arc::new(AtomicU64::new(0));
    let duration = Duration::from_secs(args.seconds);
    let start = Instant::now();
    let mut writers = Vec::new();
    let writer_count = args.writers;
    for w in 0..args.writers {
        let (store, skus, sent, commits) =
            (store.clone(), skus.clone(), sent.clone(), commits.clone());
        let (catalog, search) = (in_catalog.clone(), in_search.clone());
        let period = Duration::from_secs_f64(args.writers as f64 / args.rate as f64);
        writers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + period.mul_f64(w as f64 / writer_count as f64),
                period,
            );
            let meta = EventMetadata::for_actor("bench");
            let mine: Vec<&String> = skus
                .iter()
                .skip(w as usize)
                .step_by(writer_count as usize)
                .collect();
            anyhow::ensure!(!mine.is_empty(), "more writers than products");
            // Created and published: version 2, at the catalog's price.
            let mut versions: HashMap<&str, (u64, i64)> = HashMap::new();
            while start.elapsed() < duration {
                tick.tick().await;
                let sku = mine[rand::rng().random_range(0..mine.len())].as_str();
                let (version, old) = versions.get(sku).copied().unwrap_or((2, 0));
                let amount = rand::rng().random_range(100..100_000);
                let event: ProductEvent = serde_json::from_value(json!({"ProductPriceChanged": {
                    "old_price": {"amount": old.max(1), "currency": "EUR"},
                    "new_price": {"amount": amount, "currency": "EUR"}}}))?;
                let done = store
                    .append(sku, version, std::slice::from_ref(&event), &meta)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                versions.insert(sku, (version + 1, amount));
                let at = Instant::now();
                if let Some(p) = done.position {
                    lock(&commits).push((p, at));
                    lock(&catalog).pending.insert(p, at);
                    lock(&search).pending.insert(p, at);
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for w in writers {
        w.await??;
    }
    let writing = start.elapsed();
    let written = sent.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(60);
    while (!lock(&in_catalog).pending.is_empty() || !lock(&in_search).pending.is_empty())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_watching.cancel();
    watcher.await??;
    receiver.abort();
    shutdown.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let _ = std::fs::remove_dir_all(&index_dir);

    {
        let arrivals = lock(&arrivals);
        let mut v = lock(&on_stream);
        let h = v.latency.get_or_insert_with(histogram);
        for (p, committed) in lock(&commits).iter() {
            if let Some(arrived) = arrivals.get(p) {
                record(h, arrived.saturating_duration_since(*committed));
            }
        }
    }

    println!(
        "## projection-lag: {} price changes/s for {} s appended to the log ({} writers, {} products)\n",
        args.rate, args.seconds, args.writers, args.products
    );
    println!(
        "Achieved {:.0} events/s ({written} events). Each row counts the events it saw; an event never seen would be missing from its count.\n",
        written as f64 / writing.as_secs_f64()
    );
    println!("| commit returned to the writer -> | events | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    for (name, v) in [
        ("on the NATS stream (relay only; baseline)", &on_stream),
        (
            "visible in the catalog read model (relay + projection worker)",
            &in_catalog,
        ),
        (
            "searchable in the tantivy index (relay + search worker)",
            &in_search,
        ),
    ] {
        let v = lock(v);
        let h = v.latency.clone().unwrap_or_else(histogram);
        let (p50, p99, max) = percentiles(&h);
        println!("| {name} | {} | {p50:.2} | {p99:.2} | {max:.2} |", h.len());
    }
    println!();
    Ok(())
}

async fn checkpoint(pool: &sqlx::PgPool) -> anyhow::Result<Position> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT tx_id::text, global_position FROM read.projection_status WHERE name = 'catalog'",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map_or(Position::START, |(tx, gp)| {
        Position::new(tx.parse().unwrap_or_default(), gp)
    }))
}
