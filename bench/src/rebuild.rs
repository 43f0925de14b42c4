//! `rebuild`: events/s of a zero-downtime rebuild of every PostgreSQL read model from a large
//! log, beside the rate PostgreSQL hands the same events out with a plain `COPY ... TO STDOUT`.
//!
//! The log is real domain events: a template history of shoppers (products, stock in two
//! warehouses, customers, carts, orders confirmed, shipped, delivered, refunded or cancelled)
//! is written through the real aggregates, then copied in SQL with every id renamed per copy,
//! so each copy is a consistent history of its own. All ids of the template carry the marker
//! `00000000-` (UUID prefix, SKU and e-mail part), which copy `k` replaces with `k` in hex.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mercato_aggregates::cart::{
    Cart, CartServices, CatalogEntry, CatalogLookup, CatalogUnavailable,
};
use mercato_aggregates::customer::Customer;
use mercato_aggregates::order::Order;
use mercato_aggregates::product::Product;
use mercato_aggregates::stock::Stock;
use mercato_aggregates::values::Sku;
use mercato_event_store::{AggregateStore, EventMetadata, SnapshotPolicy};
use mercato_projections::rebuild::{
    rebuild, rebuild_all, RebuildOptions, RebuildPhase, RebuildProgress,
};
use mercato_projections::{registry, Projection};
use serde_json::{json, Value};

use crate::export::copy_out;
use crate::report::ratio;
use crate::setup::BenchEnv;

/// Options of the `rebuild` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events in the log.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Shoppers in the template history written through the aggregates (about 20 events each).
    #[arg(long, default_value_t = 200)]
    template_shoppers: usize,
    /// Events read from the log and applied per shadow transaction.
    #[arg(long, default_value_t = RebuildOptions::default().batch_size)]
    batch_size: usize,
    /// Skip the per-projection rebuilds (one more pass over the log per projection).
    #[arg(long)]
    no_per_projection: bool,
}

pub async fn run(env: &BenchEnv, args: &Args) -> anyhow::Result<()> {
    mercato_projections::migrate(&env.pool).await?;
    let loaded = Instant::now();
    let template = write_template(env, args.template_shoppers).await?;
    let events = args.events.max(template);
    copy_template(env, template, events).await?;
    eprintln!(
        "loaded {events} events ({template} through the aggregates) in {:.1} s",
        loaded.elapsed().as_secs_f64()
    );

    let (copy_secs, _) = copy_out(env).await?;
    let options = RebuildOptions {
        batch_size: args.batch_size,
    };
    let phases = PhaseClock::default();
    let started = Instant::now();
    let reports = rebuild_all(&env.pool, &options, |p| phases.observe(p)).await?;
    let all_secs = started.elapsed().as_secs_f64();
    let replayed = reports.first().map_or(0, |r| r.events);
    anyhow::ensure!(replayed == events, "replayed {replayed} of {events} events");
    let rows = read_model_rows(env).await?;
    let (replay, indexing, switching) = phases.split(started);
    let rate = |events: u64, secs: f64| events as f64 / secs;
    let copy_rate = rate(events, copy_secs);

    println!(
        "## rebuild: every PostgreSQL read model from {} events\n",
        events
    );
    println!(
        "Batches of {}; template of {template} events through the aggregates; {rows} read-model rows after the rebuild.\n",
        args.batch_size
    );
    println!("| method | events | seconds | events/s | ratio to COPY |");
    println!("|---|---|---|---|---|");
    println!(
        "| `COPY (SELECT ... ORDER BY tx_id, global_position) TO STDOUT` (baseline) | {} | {copy_secs:.2} | {copy_rate:.0} | 1.00x |",
        events
    );
    println!(
        "| `rebuild_all` (replay {replay:.1} s, indexes {indexing:.1} s, switch-over {switching:.1} s) | {} | {all_secs:.2} | {:.0} | {} |",
        events,
        rate(events, all_secs),
        ratio(rate(events, all_secs), copy_rate)
    );
    if !args.no_per_projection {
        for projection in registry() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let name = projection.name();
            let events = followed_events(env, &*projection).await?;
            let started = Instant::now();
            let report = rebuild(&env.pool, name, &options, |_| {}).await?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "| `rebuild {name}` alone (log filtered to {}: {} events replayed) | {events} | {secs:.2} | {:.0} | {} |",
                projection.aggregate_types().join(", "),
                report.events,
                rate(events, secs),
                ratio(rate(events, secs), copy_rate)
            );
        }
    }
    println!();
    Ok(())
}

/// Log events of the aggregate types `projection` follows.
async fn followed_events(env: &BenchEnv, projection: &dyn Projection) -> anyhow::Result<u64> {
    let types: Vec<String> = projection
        .aggregate_types()
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = ANY($1)")
        .bind(&types)
        .fetch_one(&env.pool)
        .await?;
    Ok(u64::try_from(n)?)
}

async fn read_model_rows(env: &BenchEnv) -> anyhow::Result<i64> {
    let mut rows = 0;
    for table in registry().iter().flat_map(|p| p.tables().iter().copied()) {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM read.\"{table}\""))
            .fetch_one(&env.pool)
            .await?;
        rows += n;
    }
    Ok(rows)
}

/// When each phase of the rebuild started (first report of it).
#[derive(Default)]
struct PhaseClock {
    seen: Mutex<Vec<(RebuildPhase, Instant)>>,
}

impl PhaseClock {
    fn observe(&self, p: &RebuildProgress) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.last().is_none_or(|(phase, _)| *phase != p.phase) {
            seen.push((p.phase, Instant::now()));
        }
    }

    /// Seconds in replay, index builds and switch-over (the catch-up replay after the index
    /// builds counts as replay).
    fn split(&self, started: Instant) -> (f64, f64, f64) {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut totals = [0.0f64; 3];
        let mut previous: Option<(RebuildPhase, Instant)> = None;
        for &(phase, at) in seen.iter() {
            if let Some((before, since)) = previous {
                if let Some(i) = slot(before) {
                    totals[i] += (at - since).as_secs_f64();
                }
            } else {
                totals[0] += (at - started).as_secs_f64();
            }
            previous = Some((phase, at));
        }
        (totals[0], totals[1], totals[2])
    }
}

fn slot(phase: RebuildPhase) -> Option<usize> {
    match phase {
        RebuildPhase::Replaying => Some(0),
        RebuildPhase::Indexing => Some(1),
        RebuildPhase::Switching => Some(2),
        RebuildPhase::Done => None,
    }
}

/// Prices every SKU at 1,000 EUR cents.
struct FixedCatalog;

// `CatalogLookup` is an `async_trait`; spelled out to keep the bench free of the macro.
impl CatalogLookup for FixedCatalog {
    fn lookup<'a, 'b, 'r>(
        &'a self,
        sku: &'b Sku,
    ) -> Pin<Box<dyn Future<Output = Result<Option<CatalogEntry>, CatalogUnavailable>> + Send + 'r>>
    where
        'a: 'r,
        'b: 'r,
        Self: 'r,
    {
        let name = json!(format!("Product {}", sku.as_str()));
        Box::pin(async move {
            Ok(Some(CatalogEntry {
                name: serde_json::from_value(name).expect("a valid product name"),
                unit_price: serde_json::from_value(json!({"amount": 1000, "currency": "EUR"}))
                    .expect("valid money"),
                sellable: true,
                category: None,
                brand: None,
                weight_grams: None,
            }))
        })
    }
}

/// The real aggregates on the scratch database.
struct Shop {
    products: AggregateStore<Product>,
    stock: AggregateStore<Stock>,
    carts: AggregateStore<Cart>,
    orders: AggregateStore<Order>,
    customers: AggregateStore<Customer>,
}

/// A template id: copy `k` replaces the leading `00000000` with `k` in hex.
fn id(shopper: usize, kind: u64) -> String {
    format!("00000000-0000-4000-8000-{:012x}", shopper as u64 * 8 + kind)
}

fn address() -> Value {
    json!({"recipient": "Ada Lovelace", "line1": "1 Main St", "line2": null, "city": "London",
           "postal_code": "N1 1AA", "country": "GB"})
}

impl Shop {
    fn new(env: &BenchEnv) -> Self {
        let p = || env.quiet_pool.clone();
        let never = SnapshotPolicy::never();
        Self {
            products: AggregateStore::new(p(), (), &never)
                .with_upcasters(mercato_aggregates::upcasting::upcasters()),
            stock: AggregateStore::new(p(), (), &never),
            carts: AggregateStore::new(p(), CartServices::new(Arc::new(FixedCatalog)), &never),
            orders: AggregateStore::new(p(), (), &never),
            customers: AggregateStore::new(p(), (), &never),
        }
    }

    async fn product(&self, sku: &str, c: Value) -> anyhow::Result<()> {
        self.products
            .execute(sku, serde_json::from_value(c)?, &meta(), None)
            .await?;
        Ok(())
    }

    async fn stock(&self, sku: &str, c: Value) -> anyhow::Result<()> {
        self.stock
            .execute(sku, serde_json::from_value(c)?, &meta(), None)
            .await?;
        Ok(())
    }

    async fn cart(&self, cart: &str, c: Value) -> anyhow::Result<()> {
        self.carts
            .execute(cart, serde_json::from_value(c)?, &meta(), None)
            .await?;
        Ok(())
    }

    async fn order(&self, order: &str, c: Value) -> anyhow::Result<()> {
        self.orders
            .execute(order, serde_json::from_value(c)?, &meta(), None)
            .await?;
        Ok(())
    }

    async fn customer(&self, customer: &str, c: Value) -> anyhow::Result<()> {
        self.customers
            .execute(customer, serde_json::from_value(c)?, &meta(), None)
            .await?;
        Ok(())
    }

    /// One shopper's slice of shop life: a product with stock, a customer, a cart, an order
    /// that is confirmed (then shipped and delivered, or refunded) or cancelled.
    async fn shopper(&self, i: usize) -> anyhow::Result<()> {
        let sku = format!("SKU-00000000-{i}");
        let first = "SKU-00000000-0";
        let brand = ["Sonix", "Aurora", "Kestrel"][i % 3];
        let kind = ["headphones", "speakers"][i % 2];
        self.product(&sku, json!({"CreateProduct": {
            "sku": sku, "price": {"amount": 1_000 + i as i64 * 10, "currency": "EUR"},
            "details": {"name": format!("Product {i}"), "description": "A fine thing", "brand": brand,
                        "category": ["audio", kind],
                        "attributes": {"colour": "black"}, "images": []}}}))
            .await?;
        self.product(&sku, json!("PublishProduct")).await?;
        if i.is_multiple_of(2) {
            self.product(
                &sku,
                json!({"ChangeProductPrice": {"price": {"amount": 900 + i as i64, "currency": "EUR"}}}),
            )
            .await?;
        }
        for (warehouse, quantity) in [("berlin", 10 + i % 50), ("paris", 5)] {
            self.stock(
                &sku,
                json!({"ReceiveStock": {"sku": sku, "warehouse": warehouse, "quantity": quantity}}),
            )
            .await?;
        }

        let customer = id(i, 1);
        self.customer(
            &customer,
            json!({"RegisterCustomer": {"customer_id": customer,
            "email": format!("shopper{i}-00000000@example.com"), "name": format!("Shopper {i}"),
            "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}}),
        )
        .await?;
        self.customer(
            &customer,
            json!({"ChangeCustomerAddress": {"address": address()}}),
        )
        .await?;

        let cart = id(i, 2);
        let order = id(i, 3);
        self.cart(
            &cart,
            json!({"OpenCart": {"cart_id": cart, "customer_id": customer, "currency": "EUR"}}),
        )
        .await?;
        for (s, q) in [(sku.as_str(), 2), (first, 1)] {
            self.cart(&cart, json!({"AddCartItem": {"sku": s, "quantity": q}}))
                .await?;
        }
        self.cart(
            &cart,
            json!({"ChangeCartItemQuantity": {"sku": sku, "quantity": 3}}),
        )
        .await?;
        self.cart(
            &cart,
            json!({"CheckOutCart": {"order_id": order, "customer_id": customer}}),
        )
        .await?;

        let placed_at = format!("2026-03-{:02}T10:00:00Z", 1 + i % 28);
        self.order(
            &order,
            json!({"PlaceOrder": {"order_id": order, "customer_id": customer,
            "lines": [{"sku": sku, "name": format!("Product {i}"), "quantity": 2,
                       "unit_price": {"amount": 1_000, "currency": "EUR"}}],
            "shipping_address": address(), "payment_method": "tok_visa", "placed_at": placed_at}}),
        )
        .await?;
        self.stock(
            &sku,
            json!({"ReserveStock": {"sku": sku, "order_id": order, "quantity": 2,
            "expires_at": "2030-01-01T00:00:00Z"}}),
        )
        .await?;
        if i % 4 == 3 {
            self.stock(
                &sku,
                json!({"ReleaseReservation": {"sku": sku, "order_id": order}}),
            )
            .await?;
            self.order(
                &order,
                json!({"CancelOrder": {"reason": "customer_request"}}),
            )
            .await?;
            return self
                .customer(
                    &customer,
                    json!({"ForgetCustomer": {"requested_at": "2026-03-29T00:00:00Z"}}),
                )
                .await;
        }
        self.order(&order, json!({"RecordStockReserved": {"sku": sku}}))
            .await?;
        let payment = id(i, 4);
        let amount = json!({"amount": 2_000, "currency": "EUR"});
        self.order(
            &order,
            json!({"RecordPaymentAuthorized": {"payment_id": payment, "amount": amount}}),
        )
        .await?;
        self.order(&order, json!("ConfirmOrder")).await?;
        self.order(
            &order,
            json!({"RecordPaymentCaptured": {"payment_id": payment, "amount": amount}}),
        )
        .await?;
        if i % 4 == 2 {
            // A merchant refund: requested, then recorded as the order process does.
            let refund = id(i, 5);
            let amount = json!({"amount": 500, "currency": "EUR"});
            self.order(
                &order,
                json!({"RequestRefund": {"refund_id": refund, "amount": amount}}),
            )
            .await?;
            return self
                .order(
                    &order,
                    json!({"RecordRefund": {"refund_id": refund, "amount": amount}}),
                )
                .await;
        }
        self.order(
            &order,
            json!({"ShipOrder": {"tracking_number": format!("TRK-00000000-{i}"),
            "lines": [{"sku": sku, "quantity": 2}], "shipped_at": "2026-03-29T10:00:00Z"}}),
        )
        .await?;
        self.stock(
            &sku,
            json!({"CommitReservation": {"sku": sku, "order_id": order, "quantity": 2}}),
        )
        .await?;
        self.order(
            &order,
            json!({"DeliverOrder": {"tracking_number": null, "delivered_at": "2026-03-30T10:00:00Z"}}),
        )
        .await
    }
}

fn meta() -> EventMetadata {
    EventMetadata::for_actor("bench")
}

/// Writes the template through the aggregates; returns its number of events.
async fn write_template(env: &BenchEnv, shoppers: usize) -> anyhow::Result<u64> {
    let shop = Shop::new(env);
    for i in 0..shoppers {
        shop.shopper(i).await?;
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&env.pool)
        .await?;
    Ok(u64::try_from(n)?)
}

/// Fills the log up to `total` events with copies of the template (log order kept within a
/// copy; the last copy may stop early, which is a consistent prefix of its history).
async fn copy_template(env: &BenchEnv, template: u64, total: u64) -> anyhow::Result<()> {
    anyhow::ensure!(template > 0, "the template history is empty");
    sqlx::query(
        "CREATE TABLE bench_template AS SELECT \
           (row_number() OVER (ORDER BY tx_id, global_position) - 1) AS rn, aggregate_type, \
           aggregate_id, sequence, event_type, event_version, payload::text AS payload, metadata \
         FROM events",
    )
    .execute(&env.quiet_pool)
    .await?;
    sqlx::query("CREATE UNIQUE INDEX ON bench_template (rn)")
        .execute(&env.quiet_pool)
        .await?;
    let chunk = 100_000u64;
    let mut start = template;
    while start < total {
        let end = (start + chunk).min(total);
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT t.aggregate_type, replace(t.aggregate_id, '00000000-', c.marker), t.sequence, \
               t.event_type, t.event_version, replace(t.payload, '00000000-', c.marker)::jsonb, t.metadata \
             FROM generate_series($1::bigint, $2::bigint - 1) AS g \
             CROSS JOIN LATERAL (SELECT lpad(to_hex(g / $3::bigint), 8, '0') || '-' AS marker) AS c \
             JOIN bench_template t ON t.rn = g % $3::bigint \
             ORDER BY g",
        )
        .bind(i64::try_from(start)?)
        .bind(i64::try_from(end)?)
        .bind(i64::try_from(template)?)
        .execute(&env.quiet_pool)
        .await?;
        start = end;
    }
    sqlx::query("DROP TABLE bench_template")
        .execute(&env.quiet_pool)
        .await?;
    sqlx::query("VACUUM ANALYZE events")
        .execute(&env.pool)
        .await?;
    Ok(())
}
