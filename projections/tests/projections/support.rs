//! A shop of the test's own: real aggregates in a private database, a relay to a private
//! stream, and helpers to run projections and wait for them.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mercato_aggregates::cart::{
    Cart, CartCommand, CartServices, CatalogEntry, CatalogLookup, CatalogUnavailable,
};
use mercato_aggregates::customer::Customer;
use mercato_aggregates::order::{Order, OrderCommand};
use mercato_aggregates::product::{Product, ProductCommand};
use mercato_aggregates::promotion::Promotion;
use mercato_aggregates::shipping::ShippingPolicy;
use mercato_aggregates::stock::{Stock, StockCommand};
use mercato_aggregates::tax::TaxPolicy;
use mercato_aggregates::values::Sku;
use mercato_event_store::testing::TestDatabase;
use mercato_event_store::{AggregateStore, EventMetadata, LogReader, Position, SnapshotPolicy};
use mercato_nats::testing::{fast_relay, RunningRelay, TestNats};
use mercato_projections::{ProjectionDeps, ProjectionStatus, ProjectionWorker};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub struct Shop {
    pub db: TestDatabase,
    pub nats: TestNats,
    _relay: RunningRelay,
    products: AggregateStore<Product>,
    stock: AggregateStore<Stock>,
    carts: AggregateStore<Cart>,
    orders: AggregateStore<Order>,
    customers: AggregateStore<Customer>,
    promotions: AggregateStore<Promotion>,
    tax: AggregateStore<TaxPolicy>,
    shipping: AggregateStore<ShippingPolicy>,
}

/// Prices every SKU at 1000 EUR cents (enough for carts in tests).
struct FixedCatalog;

#[async_trait]
impl CatalogLookup for FixedCatalog {
    async fn lookup(&self, sku: &Sku) -> Result<Option<CatalogEntry>, CatalogUnavailable> {
        Ok(Some(CatalogEntry {
            name: serde_json::from_value(json!(format!("Product {}", sku.as_str()))).unwrap(),
            unit_price: serde_json::from_value(json!({"amount": 1000, "currency": "EUR"})).unwrap(),
            sellable: true,
            category: None,
            brand: None,
            weight_grams: None,
        }))
    }
}

fn meta() -> EventMetadata {
    EventMetadata::for_actor("test")
}

fn cmd<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

impl Shop {
    pub async fn new() -> Self {
        let db = TestDatabase::new().await;
        mercato_projections::migrate(&db.pool).await.unwrap();
        let nats = TestNats::new().await;
        let relay = RunningRelay::start(&db, &nats, fast_relay());
        let p = || db.pool.clone();
        let never = SnapshotPolicy::never();
        Self {
            products: AggregateStore::new(p(), (), &never)
                .with_upcasters(mercato_aggregates::upcasting::upcasters()),
            stock: AggregateStore::new(p(), (), &never),
            carts: AggregateStore::new(p(), CartServices::new(Arc::new(FixedCatalog)), &never),
            orders: AggregateStore::new(p(), (), &never),
            customers: AggregateStore::new(p(), (), &never),
            promotions: AggregateStore::new(p(), (), &never),
            tax: AggregateStore::new(p(), (), &never),
            shipping: AggregateStore::new(p(), (), &never),
            db,
            nats,
            _relay: relay,
        }
    }

    pub fn deps(&self) -> ProjectionDeps {
        ProjectionDeps {
            pool: self.db.pool.clone(),
            client: self.nats.client.clone(),
            js: self.nats.js.clone(),
            nats: self.nats.config.clone(),
        }
    }

    pub async fn product(
        &self,
        sku: &str,
        name: &str,
        brand: &str,
        category: &[&str],
        price: i64,
        description: &str,
    ) {
        let c = cmd::<ProductCommand>(json!({"CreateProduct": {
            "sku": sku, "price": {"amount": price, "currency": "EUR"},
            "details": {"name": name, "description": description, "brand": brand,
                        "category": category, "attributes": {"colour": "black"}, "images": []}}}));
        self.products.execute(sku, c, &meta(), None).await.unwrap();
        self.products
            .execute(sku, ProductCommand::PublishProduct, &meta(), None)
            .await
            .unwrap();
    }

    pub async fn product_cmd(&self, sku: &str, c: Value) -> Option<Position> {
        self.products
            .execute(sku, cmd(c), &meta(), None)
            .await
            .unwrap()
            .position
    }

    pub async fn receive(&self, sku: &str, warehouse: &str, quantity: u32) -> Option<Position> {
        let c = cmd::<StockCommand>(
            json!({"ReceiveStock": {"sku": sku, "warehouse": warehouse, "quantity": quantity}}),
        );
        self.stock
            .execute(sku, c, &meta(), None)
            .await
            .unwrap()
            .position
    }

    pub async fn reserve(&self, sku: &str, order: Uuid, quantity: u32) {
        let c = cmd::<StockCommand>(
            json!({"ReserveStock": {"sku": sku, "order_id": order, "quantity": quantity,
            "expires_at": "2030-01-01T00:00:00Z"}}),
        );
        self.stock.execute(sku, c, &meta(), None).await.unwrap();
    }

    pub async fn cart(
        &self,
        cart: Uuid,
        customer: Option<Uuid>,
        items: &[(&str, u32)],
    ) -> Option<Position> {
        let c = cmd::<CartCommand>(
            json!({"OpenCart": {"cart_id": cart, "customer_id": customer, "currency": "EUR"}}),
        );
        let mut pos = self
            .carts
            .execute(&cart.to_string(), c, &meta(), None)
            .await
            .unwrap()
            .position;
        for (sku, q) in items {
            let c = cmd::<CartCommand>(json!({"AddCartItem": {"sku": sku, "quantity": q}}));
            pos = self
                .carts
                .execute(&cart.to_string(), c, &meta(), None)
                .await
                .unwrap()
                .position;
        }
        pos
    }

    pub async fn cart_cmd(&self, cart: Uuid, c: Value) -> Option<Position> {
        self.carts
            .execute(&cart.to_string(), cmd(c), &meta(), None)
            .await
            .unwrap()
            .position
    }

    /// Places an order for `lines` (sku, quantity, unit price) on `placed_at`.
    pub async fn place(
        &self,
        order: Uuid,
        customer: Uuid,
        lines: &[(&str, u32, i64)],
        placed_at: &str,
    ) -> Option<Position> {
        let lines: Vec<Value> = lines
            .iter()
            .map(|(sku, q, p)| {
                json!({"sku": sku, "name": format!("Product {sku}"), "quantity": q,
                                     "unit_price": {"amount": p, "currency": "EUR"}})
            })
            .collect();
        let c = cmd::<OrderCommand>(
            json!({"PlaceOrder": {"order_id": order, "customer_id": customer, "lines": lines,
            "shipping_address": address(), "payment_method": "tok_visa", "placed_at": placed_at}}),
        );
        self.orders
            .execute(&order.to_string(), c, &meta(), None)
            .await
            .unwrap()
            .position
    }

    pub async fn order_cmd(&self, order: Uuid, c: Value) -> Option<Position> {
        self.orders
            .execute(&order.to_string(), cmd(c), &meta(), None)
            .await
            .unwrap()
            .position
    }

    /// Ships every unit of `lines` under `tracking` and delivers the parcel.
    pub async fn ship_and_deliver(&self, order: Uuid, tracking: &str, lines: Value) {
        self.order_cmd(
            order,
            json!({"ShipOrder": {"tracking_number": tracking, "lines": lines,
                   "shipped_at": "2026-03-01T12:00:00Z"}}),
        )
        .await;
        self.order_cmd(
            order,
            json!({"DeliverOrder": {"tracking_number": null, "delivered_at": "2026-03-02T12:00:00Z"}}),
        )
        .await;
    }

    /// A merchant refund of `amount`, requested and recorded (as the order process would).
    pub async fn refund(&self, order: Uuid, amount: i64) -> Option<Position> {
        self.order_cmd(
            order,
            json!({"RequestRefund": {"refund_id": Uuid::new_v4(), "amount": {"amount": amount, "currency": "EUR"}}}),
        )
        .await;
        self.settle_refunds(order).await
    }

    /// Records every refund the order requested as made (the order process's job).
    pub async fn settle_refunds(&self, order: Uuid) -> Option<Position> {
        let (state, _) = self.orders.load(&order.to_string()).await.unwrap();
        let mut last = None;
        for (id, refund) in state.refunds() {
            if refund.state == mercato_aggregates::order::RefundState::Pending {
                last = self
                    .order_cmd(
                        order,
                        json!({"RecordRefund": {"refund_id": id, "amount": refund.amount}}),
                    )
                    .await;
            }
        }
        last
    }

    /// Drives a placed order through reservation, payment, confirmation and capture.
    pub async fn confirm(&self, order: Uuid, skus: &[&str], total: i64) -> Option<Position> {
        for sku in skus {
            self.order_cmd(order, json!({"RecordStockReserved": {"sku": sku}}))
                .await;
        }
        let payment = Uuid::new_v4();
        let amount = json!({"amount": total, "currency": "EUR"});
        self.order_cmd(
            order,
            json!({"RecordPaymentAuthorized": {"payment_id": payment, "amount": amount}}),
        )
        .await;
        self.order_cmd(order, json!("ConfirmOrder")).await;
        self.order_cmd(
            order,
            json!({"RecordPaymentCaptured": {"payment_id": payment, "amount": amount}}),
        )
        .await
    }

    pub async fn promotion_cmd(&self, promotion: Uuid, c: Value) -> Option<Position> {
        self.promotions
            .execute(&promotion.to_string(), cmd(c), &meta(), None)
            .await
            .unwrap()
            .position
    }

    /// A command on the shop's tax policy.
    pub async fn tax_cmd(&self, c: Value) -> Option<Position> {
        self.tax
            .execute(TaxPolicy::ID, cmd(c), &meta(), None)
            .await
            .unwrap()
            .position
    }

    /// A command on the shop's shipping policy.
    pub async fn shipping_cmd(&self, c: Value) -> Option<Position> {
        self.shipping
            .execute(ShippingPolicy::ID, cmd(c), &meta(), None)
            .await
            .unwrap()
            .position
    }

    pub async fn customer_cmd(&self, customer: Uuid, c: Value) -> Option<Position> {
        self.customers
            .execute(&customer.to_string(), cmd(c), &meta(), None)
            .await
            .unwrap()
            .position
    }

    /// Every event after `after`, once all of them are readable (the log holds back events
    /// while older transactions, even of other databases, are open).
    pub async fn settled_log(&self, after: Position) -> Vec<mercato_event_store::RecordedEvent> {
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE (tx_id, global_position) > ($1::text::xid8, $2)",
        )
        .bind(after.tx_id().to_string())
        .bind(after.global_position())
        .fetch_one(&self.db.pool)
        .await
        .unwrap();
        loop {
            let events = LogReader::new(self.db.pool.clone())
                .read(after, &Default::default(), 100_000)
                .await
                .unwrap();
            if events.len() as i64 >= total {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The position of the last event written, once the log hands it out.
    pub async fn head(&self) -> Position {
        self.settled_log(Position::START)
            .await
            .last()
            .map_or(Position::START, |e| e.position)
    }

    /// Waits until every named projection has reached `position` (30 s at most).
    pub async fn wait_for(&self, names: &[&str], position: Position) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let positions = ProjectionStatus::positions(&self.db.pool, names)
                .await
                .unwrap();
            if names
                .iter()
                .all(|n| positions.get(*n).is_some_and(|p| *p >= position))
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "projections {names:?} did not reach {position}: {positions:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn address() -> Value {
    json!({"recipient": "Ada Lovelace", "line1": "1 Main St", "line2": null, "city": "London",
           "postal_code": "N1 1AA", "country": "GB"})
}

/// A projection worker running in the background.
pub struct RunningProjection {
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<()>,
}

impl RunningProjection {
    pub fn start(shop: &Shop, name: &str, batch_size: usize) -> Self {
        let worker = ProjectionWorker::named(name, shop.deps())
            .unwrap()
            .with_consumer(|c| {
                c.batch_size = batch_size;
                c.retry_delay = Duration::from_millis(100);
                c.ack_wait = Duration::from_secs(2);
            });
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let handle = tokio::spawn(async move { worker.run(token).await.unwrap() });
        Self { shutdown, handle }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap();
    }
}

pub fn start_all(shop: &Shop) -> Vec<RunningProjection> {
    mercato_projections::projection::infos()
        .iter()
        .map(|i| RunningProjection::start(shop, i.name, 64))
        .collect()
}
