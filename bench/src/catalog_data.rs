//! A generated catalog in the event log, for the read benchmarks (`catalog-read`, `search`,
//! `projection-lag`).
//!
//! The products are the demo catalog of `mercato seed` (varied brands, names, descriptions,
//! categories and prices). Their events are decided by the real `Product` and `Stock`
//! aggregates in memory (create, publish, receive stock in two warehouses; about one product
//! in eight gets no stock, so "in stock" filters matter), then inserted into the log in bulk:
//! writing 100,000 products through the command path one command at a time would take
//! minutes and is not what these benchmarks measure.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use mercato_aggregates::product::Product;
use mercato_aggregates::stock::Stock;
use mercato_cli::seed::catalog::DemoProduct;
use mercato_event_store::EventMetadata;
use serde_json::{json, Value};

use crate::setup::BenchEnv;

/// One event row of the log.
struct Row {
    aggregate_type: &'static str,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
}

/// Decides `commands` on a fresh aggregate and returns its events as rows.
async fn decide<A>(
    id: &str,
    commands: Vec<Value>,
    services: &A::Services,
) -> anyhow::Result<Vec<Row>>
where
    A: Aggregate + Default,
    A::Command: serde::de::DeserializeOwned,
    A::Event: serde::Serialize,
{
    let mut aggregate = A::default();
    let mut rows = Vec::new();
    for command in commands {
        let command: A::Command = serde_json::from_value(command)?;
        let sink = EventSink::default();
        aggregate
            .handle(command, services, &sink)
            .await
            .map_err(|e| anyhow::anyhow!("{} {id}: {e}", A::TYPE))?;
        for event in sink.collect().await {
            rows.push(Row {
                aggregate_type: A::TYPE,
                aggregate_id: id.to_owned(),
                sequence: rows.len() as i64 + 1,
                event_type: event.event_type(),
                event_version: event.event_version(),
                payload: serde_json::to_string(&event)?,
            });
        }
    }
    Ok(rows)
}

/// The create-and-publish commands of a demo product.
fn product_commands(p: &DemoProduct) -> Vec<Value> {
    let attributes: serde_json::Map<String, Value> = p
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    vec![
        json!({"CreateProduct": {
            "sku": p.sku,
            "price": {"amount": p.price_cents, "currency": "EUR"},
            "details": {"name": p.name, "description": p.description, "brand": p.brand,
                        "category": p.category, "attributes": attributes,
                        "images": [format!("https://images.mercato.example/{}.jpg", p.sku.to_lowercase())]}}}),
        json!("PublishProduct"),
    ]
}

/// Units per warehouse for product `i` (none for one product in eight).
pub fn stock_of(i: usize) -> Option<(u64, u64)> {
    (i % 8 != 7).then_some((5 + (i as u64 * 7) % 40, 1 + (i as u64 * 3) % 10))
}

/// Writes the products' events (and their stock's) to the log; returns the number of events.
pub async fn load(env: &BenchEnv, products: &[DemoProduct]) -> anyhow::Result<u64> {
    // As the event store writes it: a flat map of strings.
    let metadata = serde_json::to_string(&EventMetadata::for_actor("bench").to_map())?;
    const CHUNK: usize = 2_000;
    let mut written = 0u64;
    for (c, chunk) in products.chunks(CHUNK).enumerate() {
        let mut rows = Vec::new();
        for (k, p) in chunk.iter().enumerate() {
            let i = c * CHUNK + k;
            rows.extend(decide::<Product>(&p.sku, product_commands(p), &()).await?);
            if let Some((berlin, paris)) = stock_of(i) {
                let receipts = [("berlin", berlin), ("paris", paris)]
                    .into_iter()
                    .map(|(w, q)| json!({"ReceiveStock": {"sku": p.sku, "warehouse": w, "quantity": q}}))
                    .collect();
                rows.extend(decide::<Stock>(&p.sku, receipts, &()).await?);
            }
        }
        written += insert(env, &rows, &metadata).await?;
    }
    Ok(written)
}

async fn insert(env: &BenchEnv, rows: &[Row], metadata: &str) -> anyhow::Result<u64> {
    let mut types = Vec::with_capacity(rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    let mut sequences = Vec::with_capacity(rows.len());
    let mut event_types = Vec::with_capacity(rows.len());
    let mut versions = Vec::with_capacity(rows.len());
    let mut payloads = Vec::with_capacity(rows.len());
    for r in rows {
        types.push(r.aggregate_type);
        ids.push(r.aggregate_id.as_str());
        sequences.push(r.sequence);
        event_types.push(r.event_type.as_str());
        versions.push(r.event_version.as_str());
        payloads.push(r.payload.as_str());
    }
    let done = sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT t, i, s, e, v, p::jsonb, $7::jsonb \
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[]) AS r(t, i, s, e, v, p)",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&sequences)
    .bind(&event_types)
    .bind(&versions)
    .bind(&payloads)
    .bind(metadata)
    .execute(&env.quiet_pool)
    .await?;
    Ok(done.rows_affected())
}
