//! The `checkout` scenario's Mercato side: the command API, the relay and the order process
//! in this process, and the shoppers that drive them over HTTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use mercato_command_api::{CommandApi, CommandApiConfig, Deps, OrderProcessWorker, ProcessConfig};
use mercato_event_store::SnapshotPolicy;
use mercato_nats::{headers, Relay, RelayConfig};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{address, pick_lines, shares, Args, Outcome};
use crate::report::{histogram, record};
use crate::setup::BenchEnv;

/// Who waits for which order's outcome (`true`: confirmed).
type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<bool>>>>;

/// The command API, the relay and the order process in this process, on a fresh stream, and a
/// subscriber that tells shoppers when their order is settled.
pub(super) struct Stack {
    base: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    waiters: Waiters,
}

impl Stack {
    pub(super) async fn start(env: &BenchEnv) -> anyhow::Result<Self> {
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

    pub(super) async fn stop(self) {
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

    pub(super) async fn admin(&self) -> anyhow::Result<String> {
        let b = self
            .post(
                "/v1/auth/token",
                None,
                json!({"email": "admin@mercato.test", "password": "admin-password"}),
            )
            .await?;
        Ok(b["access_token"].as_str().unwrap_or_default().to_owned())
    }

    pub(super) async fn product(
        &self,
        admin: &str,
        sku: &str,
        price: u64,
        units: u64,
    ) -> anyhow::Result<()> {
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
    /// A 10% coupon `code` with `uses` uses, and the destination's VAT (prices exclude it),
    /// so every checkout prices a promotion, holds one of its uses and computes tax.
    pub(super) async fn pricing(&self, admin: &str, code: &str, uses: usize) -> anyhow::Result<()> {
        self.post(
            "/v1/promotions",
            Some(admin),
            json!({"name": "Bench", "code": code, "discount": {"percent": 10}, "usage_limit": uses}),
        )
        .await?;
        for (path, body) in [
            ("/v1/tax/settings", json!({"prices_include_tax": false})),
            ("/v1/tax/rates/GB", json!({"rate": 20})),
        ] {
            let resp = self
                .http
                .put(format!("{}{path}", self.base))
                .bearer_auth(admin)
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(resp.status().is_success(), "PUT {path}: {}", resp.status());
        }
        Ok(())
    }

    pub(super) async fn shopper(&self, i: usize) -> anyhow::Result<String> {
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
    pub(super) async fn shop(
        &self,
        args: &Args,
        shoppers: &[String],
        skus: &[String],
        hot: bool,
        coupon: Option<&str>,
    ) -> anyhow::Result<Outcome> {
        let start = Instant::now();
        let runs = shoppers
            .iter()
            .zip(shares(args.checkouts, shoppers.len()))
            .map(|(token, share)| self.shopper_run(token, share, skus, hot, coupon));
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
        coupon: Option<&str>,
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
            if let Some(code) = coupon {
                let t = Instant::now();
                self.post(
                    &format!("/v1/carts/{cart}/coupons"),
                    Some(token),
                    json!({"code": code}),
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
