//! `mercato-bench`: Mercato's benchmarks, each beside a baseline measured in the same run.
#![forbid(unsafe_code)]

mod append;
mod catalog_data;
mod catalog_read;
mod checkout;
mod commands;
mod export;
mod load;
mod projection_lag;
mod rebuild;
mod report;
mod search;
mod setup;
mod statements;

use clap::{Parser, Subcommand};

// The same allocator as the `mercato` binary, so the numbers are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmarks of Mercato. Each scenario prints a Markdown table with its baselines and ratios.
#[derive(Debug, Parser)]
#[command(name = "mercato-bench", version)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// PostgreSQL server (a scratch database is created on it and dropped afterwards).
    #[arg(
        long,
        env = "MERCATO_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        global = true
    )]
    database_url: String,
    /// NATS server (scratch streams are created and deleted).
    #[arg(
        long,
        env = "MERCATO_BENCH_NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    nats_url: String,
    /// Log with a plain subscriber instead of Mercato's telemetry (JSON logs with trace ids,
    /// an OpenTelemetry layer making a span of every span, as `mercato` runs): to measure
    /// what that layer costs.
    #[arg(long, global = true)]
    no_otel: bool,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Event-store append throughput and relay throughput and latency.
    Append(append::Args),
    /// Checkouts through the command API (relay and order process in-process) beside one plain SQL
    /// transaction per checkout, and a hot-SKU variant with a no-oversell check.
    Checkout(checkout::Args),
    /// HTTP writes through `mercato serve` (every worker running) beside a minimal axum +
    /// postgres-es service, driven by wrk over many aggregates and over one hot aggregate.
    Commands(commands::Args),
    /// `mercato events export` (Parquet, JSON Lines) beside a plain COPY of the same events.
    Export(export::Args),
    /// Product detail and list requests through the query API beside primary-key selects.
    CatalogRead(catalog_read::Args),
    /// The tantivy search index beside PostgreSQL full-text search with pg_trgm: speed and
    /// how many typo queries each finds.
    Search(search::Args),
    /// Commit-to-visible latency of the read models at a steady write rate.
    ProjectionLag(projection_lag::Args),
    /// Zero-downtime rebuild of every PostgreSQL read model from a large log beside a plain
    /// COPY of the same events.
    Rebuild(rebuild::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Logs (RUST_LOG, default warn) go to stderr; results go to stdout.
    if cli.no_otel {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_writer(std::io::stderr)
            .init();
    } else {
        mercato_telemetry::init_at(
            "mercato-bench",
            mercato_telemetry::LogTarget::Stderr,
            None,
            "warn",
        )?;
    }
    let env = setup::BenchEnv::new(&cli.database_url, &cli.nats_url).await?;
    let result = match cli.scenario {
        Scenario::Append(args) => append::run(&env, &args).await,
        Scenario::Checkout(args) => checkout::run(&env, &args).await,
        Scenario::Commands(args) => commands::run(&env, &args).await,
        Scenario::Export(args) => export::run(&env, &args).await,
        Scenario::Rebuild(args) => rebuild::run(&env, &args).await,
        Scenario::CatalogRead(args) => catalog_read::run(&env, &args).await,
        Scenario::Search(args) => search::run(&env, &args).await,
        Scenario::ProjectionLag(args) => projection_lag::run(&env, &args).await,
    };
    env.teardown().await;
    result
}
