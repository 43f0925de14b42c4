//! `export`: events/s of `mercato events export` (Parquet and JSON Lines) over a large log,
//! beside the rate PostgreSQL hands the same rows out with a plain `COPY ... TO STDOUT`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mercato_cli::events::{export, ExportArgs, Format, Selection};

use crate::report::ratio;
use crate::setup::BenchEnv;

/// Options of the `export` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events in the log.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Events per read of the exporter.
    #[arg(long, default_value_t = 5000)]
    batch_size: u32,
}

pub async fn run(env: &BenchEnv, args: &Args) -> anyhow::Result<()> {
    let loaded = Instant::now();
    load_orders(env, args.events).await?;
    eprintln!(
        "loaded {} events in {:.1} s",
        args.events,
        loaded.elapsed().as_secs_f64()
    );

    let (copy_secs, copy_bytes) = copy_out(env).await?;
    let parquet = timed_export(env, args, Format::Parquet).await?;
    let jsonl = timed_export(env, args, Format::Jsonl).await?;
    let rate = |secs: f64| args.events as f64 / secs;

    println!(
        "## export: {} events from the PostgreSQL log\n",
        args.events
    );
    println!("| method | seconds | events/s | ratio to COPY | output MiB |");
    println!("|---|---|---|---|---|");
    println!(
        "| `COPY (SELECT ... ORDER BY tx_id, global_position) TO STDOUT` (baseline) | {copy_secs:.2} | {:.0} | 1.00x | {:.0} |",
        rate(copy_secs),
        copy_bytes as f64 / 1048576.0
    );
    for (name, (secs, bytes)) in [
        ("`mercato events export` Parquet (zstd)", parquet),
        ("`mercato events export` JSON Lines", jsonl),
    ] {
        println!(
            "| {name} | {secs:.2} | {:.0} | {} | {:.0} |",
            rate(secs),
            ratio(rate(secs), rate(copy_secs)),
            bytes as f64 / 1048576.0
        );
    }
    println!();
    Ok(())
}

/// `n` order-shaped events (ten per order) in transactions of 100,000.
async fn load_orders(env: &BenchEnv, n: u64) -> anyhow::Result<()> {
    let chunk = 100_000u64;
    let mut start = 0u64;
    while start < n {
        let end = (start + chunk).min(n);
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT 'Order', 'ord-' || (g / 10), (g % 10) + 1, 'OrderLineReserved', '1.0', \
               jsonb_build_object('OrderLineReserved', jsonb_build_object( \
                 'sku', 'SKU-' || lpad((g % 100000)::text, 6, '0'), 'status', 'awaiting_payment', \
                 'total', jsonb_build_object('amount', g % 50000, 'currency', 'EUR'))), \
               jsonb_build_object('actor', 'bench', 'correlation_id', md5(g::text)) \
             FROM generate_series($1::bigint, $2::bigint - 1) AS g",
        )
        .bind(i64::try_from(start)?)
        .bind(i64::try_from(end)?)
        .execute(&env.quiet_pool)
        .await?;
        start = end;
    }
    sqlx::query("VACUUM ANALYZE events")
        .execute(&env.pool)
        .await?;
    Ok(())
}

/// The baseline: every event in log order through `COPY ... TO STDOUT` (seconds, bytes).
pub(crate) async fn copy_out(env: &BenchEnv) -> anyhow::Result<(f64, u64)> {
    let mut conn = env.pool.acquire().await?;
    let started = Instant::now();
    let mut stream = conn
        .copy_out_raw(
            "COPY (SELECT event_id, tx_id, global_position, aggregate_type, aggregate_id, sequence, \
             event_type, event_version, payload, metadata, recorded_at FROM events \
             ORDER BY tx_id, global_position) TO STDOUT",
        )
        .await?;
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        bytes += chunk?.len() as u64;
    }
    Ok((started.elapsed().as_secs_f64(), bytes))
}

async fn timed_export(env: &BenchEnv, args: &Args, format: Format) -> anyhow::Result<(f64, u64)> {
    let path = scratch_file(format);
    let export_args = ExportArgs {
        selection: Selection::default(),
        format: Some(format),
        output: Some(path.clone()),
        batch_size: args.batch_size,
    };
    let started = Instant::now();
    let written = export(env.pool.clone(), export_args).await?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        written == args.events,
        "exported {written} of {} events",
        args.events
    );
    let bytes = std::fs::metadata(&path)?.len();
    std::fs::remove_file(&path).ok();
    // Let the page cache and WAL writer settle between measurements.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok((secs, bytes))
}

fn scratch_file(format: Format) -> PathBuf {
    let extension = match format {
        Format::Jsonl => "jsonl",
        Format::Csv => "csv",
        Format::Parquet => "parquet",
    };
    std::env::temp_dir().join(format!(
        "mercato-bench-export-{}.{extension}",
        uuid::Uuid::new_v4()
    ))
}
