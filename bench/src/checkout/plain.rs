//! The `checkout` scenario's baseline: each checkout as one plain SQL transaction.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};
use uuid::Uuid;

use super::{address, pick_lines, shares, Args, Outcome};
use crate::report::{histogram, record};
use crate::setup::BenchEnv;

/// The baseline: one transaction per checkout (decrement each line's stock where it suffices,
/// insert the order), `shoppers` at a time. `hot` buys one unit of one SKU with that stock.
pub(super) async fn plain_sql(
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
