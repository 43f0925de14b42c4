//! `append`: event-store append throughput, relay throughput and relay latency, each beside
//! a same-run baseline (plain INSERTs; raw JetStream publishing).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use mercato_event_store::testing::counter::{
    Counter, CounterCommand, CounterEvent, CounterServices,
};
use mercato_event_store::{
    AggregateStore, EventMetadata, LogFilter, LogReader, Position, RecordedEvent, SnapshotPolicy,
};
use mercato_nats::{Relay, RelayConfig};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use hdrhistogram::Histogram;

use crate::report::{histogram, percentiles, ratio, record};
use crate::setup::BenchEnv;

/// Options of the `append` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds each append measurement runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent writers to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    writers: Vec<usize>,
    /// Events preloaded for the relay throughput measurement.
    #[arg(long, default_value_t = 50_000)]
    relay_events: usize,
    /// Steady rate (events/s) of the latency measurement.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds the latency measurement runs.
    #[arg(long, default_value_t = 10)]
    latency_seconds: u64,
}

pub async fn run(env: &BenchEnv, args: &Args) -> anyhow::Result<()> {
    let secs = Duration::from_secs(args.seconds);
    sqlx::query(
        "CREATE TABLE bench_plain (aggregate_type text, aggregate_id text, sequence bigint, \
         event_type text, event_version text, payload jsonb, metadata jsonb)",
    )
    .execute(&env.pool)
    .await?;

    println!("## append: event-store append throughput (events/s)\n");
    println!("| writers | plain INSERT (baseline) | AggregateStore::append | ratio | append, MERCATO_EVENTS_NOTIFY=off | ratio | execute: load + decide + append | ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    for &w in &args.writers {
        let plain = plain_inserts(env, w, secs).await?;
        let append = append_events(&env.pool, w, secs).await?;
        let no_notify = append_events(&env.quiet_pool, w, secs).await?;
        let execute = execute_commands(env, w, secs).await?;
        println!(
            "| {w} | {plain:.0} | {append:.0} | {} | {no_notify:.0} | {} | {execute:.0} | {} |",
            ratio(append, plain),
            ratio(no_notify, plain),
            ratio(execute, plain)
        );
    }

    println!(
        "\n## append: relay throughput ({} preloaded events)\n",
        args.relay_events
    );
    let (raw, relay) = relay_throughput(env, args.relay_events).await?;
    println!("| raw JetStream async publish (baseline) | relay (read log, publish, ack, checkpoint) | ratio |");
    println!("|---|---|---|");
    println!(
        "| {raw:.0} events/s | {relay:.0} events/s | {} |",
        ratio(relay, raw)
    );

    // Measure the relay in steady state: settle the bulk loads above (autovacuum and analyze
    // of ~100k fresh rows would otherwise compete for the CPU during the measurement).
    sqlx::query("VACUUM (ANALYZE) events")
        .execute(&env.pool)
        .await?;
    sqlx::query("VACUUM (ANALYZE) bench_plain")
        .execute(&env.pool)
        .await?;
    println!(
        "\n## append: latency at a steady {} events/s for {} s\n",
        args.rate, args.latency_seconds
    );
    latency(env, args.rate, Duration::from_secs(args.latency_seconds)).await?;
    Ok(())
}

/// Runs `writers` tasks for `secs`; each repeats its own step (made by `make_step`, given the
/// writer's aggregate id and a step number from 1). Returns steps per second.
async fn steps_per_second<S, F>(writers: usize, secs: Duration, make_step: S) -> anyhow::Result<f64>
where
    S: Fn(String) -> F,
    F: FnMut(u64) -> BoxFuture<'static, anyhow::Result<()>> + Send + 'static,
{
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let mut step = make_step(Uuid::new_v4().to_string());
        let count = count.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while start.elapsed() < secs {
                n += 1;
                step(n).await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// The baseline: one autocommit INSERT of the same row per event into a bare table.
async fn plain_inserts(env: &BenchEnv, writers: usize, secs: Duration) -> anyhow::Result<f64> {
    let meta = serde_json::to_value(EventMetadata::for_actor("bench").to_map())?;
    steps_per_second(writers, secs, |id| {
        let (pool, meta) = (env.pool.clone(), meta.clone());
        move |n| {
            let (pool, meta, id) = (pool.clone(), meta.clone(), id.clone());
            async move {
                sqlx::query(
                    "INSERT INTO bench_plain VALUES ('Counter', $1, $2, 'Added', '1.0', $3, $4)",
                )
                .bind(id)
                .bind(n as i64)
                .bind(serde_json::json!({"Added": {"by": 1, "total": n}}))
                .bind(meta)
                .execute(&pool)
                .await?;
                Ok(())
            }
            .boxed()
        }
    })
    .await
}

/// The event store's append: each writer appends one event at a time to its own aggregate
/// with its expected version (the optimistic-concurrency check) and gets the position back.
async fn append_events(pool: &sqlx::PgPool, writers: usize, secs: Duration) -> anyhow::Result<f64> {
    let store = counter_store(pool, &SnapshotPolicy::never());
    let meta = EventMetadata::for_actor("bench");
    steps_per_second(writers, secs, |id| {
        let (store, meta) = (store.clone(), meta.clone());
        move |n| {
            let (store, meta, id) = (store.clone(), meta.clone(), id.clone());
            async move {
                let event = CounterEvent::Added {
                    by: 1,
                    total: n as i64,
                };
                store
                    .append(&id, n - 1, std::slice::from_ref(&event), &meta)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok(())
            }
            .boxed()
        }
    })
    .await
}

/// The command path: load (snapshot + later events), decide, append, one aggregate per writer.
async fn execute_commands(env: &BenchEnv, writers: usize, secs: Duration) -> anyhow::Result<f64> {
    let store = counter_store(&env.pool, &SnapshotPolicy::default());
    let meta = EventMetadata::for_actor("bench");
    steps_per_second(writers, secs, |id| {
        let (store, meta) = (store.clone(), meta.clone());
        move |_| {
            let (store, meta, id) = (store.clone(), meta.clone(), id.clone());
            async move {
                store
                    .execute(&id, CounterCommand::Add(1), &meta, None)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok(())
            }
            .boxed()
        }
    })
    .await
}

fn counter_store(pool: &sqlx::PgPool, policy: &SnapshotPolicy) -> Arc<AggregateStore<Counter>> {
    Arc::new(AggregateStore::new(
        pool.clone(),
        CounterServices::default(),
        policy,
    ))
}

/// Preloads `n` order-sized events, then measures the relay publishing them, and raw
/// JetStream publishing of the very same messages.
async fn relay_throughput(env: &BenchEnv, n: usize) -> anyhow::Result<(f64, f64)> {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'Order', 'o' || (g / 10), (g % 10) + 1, 'OrderPlaced', '1.0', \
           jsonb_build_object('OrderPlaced', jsonb_build_object( \
             'order_id', md5(g::text), 'customer_id', md5((g * 7)::text), \
             'lines', jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (g % 1000), 'quantity', 2, \
               'unit_price', jsonb_build_object('amount', 1999, 'currency', 'EUR'), \
               'line_total', jsonb_build_object('amount', 3998, 'currency', 'EUR'))), \
             'total', jsonb_build_object('amount', 3998, 'currency', 'EUR'))), \
           jsonb_build_object('actor', 'bench', 'correlation_id', gen_random_uuid()::text) \
         FROM generate_series(0, $1 - 1) g",
    )
    .bind(n as i64)
    .execute(&env.pool)
    .await?;

    // Baseline: the same messages, pre-serialised, published with the same window.
    let events = LogReader::new(env.pool.clone())
        .read(Position::START, &LogFilter::default(), n)
        .await?;
    let raw_stream = env.fresh_stream().await?;
    let messages: Vec<(String, Vec<u8>, async_nats::HeaderMap)> = events
        .iter()
        .map(|e| {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", e.event_id.to_string().as_str());
            h.insert("Mercato-Position", e.position.to_string().as_str());
            h.insert("Mercato-Event-Type", e.event_type.as_str());
            let subject = raw_stream.event_subject(&e.aggregate_type, &e.aggregate_id);
            Ok((subject, serde_json::to_vec(e)?, h))
        })
        .collect::<anyhow::Result<_>>()?;
    let window = RelayConfig::default().max_in_flight;
    let start = Instant::now();
    let mut in_flight = VecDeque::with_capacity(window);
    for (subject, payload, headers) in messages {
        if in_flight.len() >= window {
            if let Some(ack) = in_flight.pop_front() {
                let _: async_nats::jetstream::publish::PublishAck = ack_result(ack).await?;
            }
        }
        let ack = env
            .js
            .send_publish(
                subject,
                PublishMessage::build()
                    .payload(payload.into())
                    .headers(headers),
            )
            .await?;
        in_flight.push_back(ack);
    }
    while let Some(ack) = in_flight.pop_front() {
        ack_result(ack).await?;
    }
    let raw = n as f64 / start.elapsed().as_secs_f64();

    // The relay over the same log.
    let relay_stream = env.fresh_stream().await?;
    let relay = Relay::new(
        env.pool.clone(),
        env.database.clone(),
        env.js.clone(),
        relay_stream.clone(),
        RelayConfig {
            name: "bench-throughput".into(),
            ..RelayConfig::default()
        },
    );
    let shutdown = CancellationToken::new();
    let start = Instant::now();
    let task = tokio::spawn(relay.run(shutdown.clone()));
    while env.stream_count(&relay_stream.stream).await? < n as u64 {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(600),
            "relay did not finish"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let relayed = n as f64 / start.elapsed().as_secs_f64();
    shutdown.cancel();
    task.await??;
    Ok((raw, relayed))
}

async fn ack_result(
    ack: async_nats::jetstream::context::PublishAckFuture,
) -> anyhow::Result<async_nats::jetstream::publish::PublishAck> {
    Ok(ack.await?)
}

/// Latency at a steady rate: raw JetStream publish -> ack (baseline), then the relay with
/// notifying writers, then with writers that do not notify and a relay polling every 10 ms.
async fn latency(env: &BenchEnv, rate: u64, duration: Duration) -> anyhow::Result<()> {
    let raw = raw_publish_latency(env, rate, duration).await?;
    let (b50, b99, bmax) = percentiles(&raw);
    println!("| path | events | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    println!(
        "| raw JetStream publish -> ack (baseline) | {} | {b50:.2} | {b99:.2} | {bmax:.2} |",
        raw.len()
    );
    for (label, quiet) in [
        ("NOTIFY", false),
        ("MERCATO_EVENTS_NOTIFY=off, 10 ms poll", true),
    ] {
        let m = relay_latency(env, rate, duration, quiet).await?;
        let (r50, r99, rmax) = percentiles(&m.from_insert);
        let (c50, c99, cmax) = percentiles(&m.from_commit);
        println!(
            "| relay, {label}: insert -> on the stream ({:.0} events/s achieved) | {} | {r50:.2} | {r99:.2} | {rmax:.2} |",
            m.achieved,
            m.from_insert.len()
        );
        println!(
            "| relay, {label}: commit returned to the writer -> on the stream | {} | {c50:.2} | {c99:.2} | {cmax:.2} |",
            m.from_commit.len()
        );
    }
    Ok(())
}

struct RelayLatency {
    from_insert: Histogram<u64>,
    from_commit: Histogram<u64>,
    achieved: f64,
}

/// Appends at a steady rate (8 writers, one event per append) with the relay running: the time
/// from each event's insert, and from the commit returned to its writer, to its arrival on a
/// subscriber of the stream's subjects.
async fn relay_latency(
    env: &BenchEnv,
    rate: u64,
    duration: Duration,
    quiet: bool,
) -> anyhow::Result<RelayLatency> {
    const WRITERS: u64 = 8;
    let stream = env.fresh_stream().await?;
    let name = format!("bench-latency-{}", Uuid::new_v4().simple());
    let relay = Relay::new(
        env.pool.clone(),
        env.database.clone(),
        env.js.clone(),
        stream.clone(),
        RelayConfig {
            name: name.clone(),
            idle_poll: if quiet {
                Duration::from_millis(10)
            } else {
                RelayConfig::default().idle_poll
            },
            ..RelayConfig::default()
        },
    );
    // Start at the log's current end: only this measurement's events count.
    let head = LogReader::new(env.pool.clone())
        .head()
        .await?
        .unwrap_or(Position::START);
    mercato_event_store::CheckpointStore::new(env.pool.clone())
        .reset(
            &name,
            mercato_event_store::checkpoint::Checkpoint {
                position: head,
                last_event_id: None,
            },
        )
        .await?;
    let shutdown = CancellationToken::new();
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));

    let mut sub = env.client.subscribe(stream.events_wildcard()).await?;
    let received = Arc::new(Mutex::new(histogram()));
    let arrivals: Arc<Mutex<HashMap<Position, Instant>>> = Arc::default();
    let seen = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (received, seen, arrivals) = (received.clone(), seen.clone(), arrivals.clone());
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let (now, at) = (chrono::Utc::now(), Instant::now());
                if let Ok(e) = serde_json::from_slice::<RecordedEvent>(&msg.payload) {
                    let d = (now - e.recorded_at).to_std().unwrap_or_default();
                    record(&mut lock(&received), d);
                    lock(&arrivals).insert(e.position, at);
                    seen.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let commits: Arc<Mutex<HashMap<Position, Instant>>> = Arc::default();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pool = if quiet { &env.quiet_pool } else { &env.pool };
    let store = counter_store(pool, &SnapshotPolicy::never());
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let (store, sent, commits) = (store.clone(), sent.clone(), commits.clone());
        writers.push(tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_secs_f64(WRITERS as f64 / rate as f64));
            let meta = EventMetadata::for_actor("bench");
            let mut n = 0u64;
            while start.elapsed() < duration {
                tick.tick().await;
                n += 1;
                let id = format!("lat-{n}-{}", Uuid::new_v4().simple());
                let event = CounterEvent::Added { by: 1, total: 1 };
                let done = store
                    .append(&id, 0, std::slice::from_ref(&event), &meta)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if let Some(p) = done.position {
                    lock(&commits).insert(p, Instant::now());
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for w in writers {
        w.await??;
    }
    let achieved = sent.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.load(Ordering::Relaxed) < sent.load(Ordering::Relaxed) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    relay_task.await??;
    receiver.abort();
    let from_insert = lock(&received).clone();
    // Commit returned to the writer -> on the stream (0 where the stream was first).
    let mut from_commit = histogram();
    {
        let arrivals = lock(&arrivals);
        for (p, committed) in lock(&commits).iter() {
            if let Some(arrived) = arrivals.get(p) {
                record(
                    &mut from_commit,
                    arrived.saturating_duration_since(*committed),
                );
            }
        }
    }
    Ok(RelayLatency {
        from_insert,
        from_commit,
        achieved,
    })
}

/// Raw publishes at a steady rate, publish -> ack (each ack awaited on its own).
async fn raw_publish_latency(
    env: &BenchEnv,
    rate: u64,
    duration: Duration,
) -> anyhow::Result<Histogram<u64>> {
    let raw_stream = env.fresh_stream().await?;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let start = Instant::now();
    let payload = serde_json::to_vec(&serde_json::json!({"Added": {"by": 1, "total": 1}}))?;
    let mut acks = Vec::new();
    while start.elapsed() < duration {
        tick.tick().await;
        let sent = Instant::now();
        let ack = env
            .js
            .send_publish(
                raw_stream.event_subject("Counter", "raw"),
                PublishMessage::build().payload(payload.clone().into()),
            )
            .await?;
        acks.push(tokio::spawn(async move {
            ack_result(ack).await.map(|_| sent.elapsed())
        }));
    }
    let mut raw = histogram();
    for ack in acks {
        record(&mut raw, ack.await??);
    }
    Ok(raw)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
