//! One event store per aggregate type, shared by the API and the order process.

use std::sync::Arc;

use mercato_aggregates::cart::{Cart, CartServices};
use mercato_aggregates::customer::Customer;
use mercato_aggregates::order::Order;
use mercato_aggregates::payment::{Payment, PaymentGateway, PaymentServices};
use mercato_aggregates::product::Product;
use mercato_aggregates::promotion::Promotion;
use mercato_aggregates::shipping::ShippingPolicy;
use mercato_aggregates::stock::Stock;
use mercato_aggregates::tax::TaxPolicy;
use mercato_aggregates::upcasting::upcasters;
use mercato_event_store::{AggregateStore, SnapshotPolicy};
use sqlx::PgPool;

use crate::catalog::StoreCatalog;

/// The aggregate stores.
pub(crate) struct Stores {
    pub pool: PgPool,
    pub products: AggregateStore<Product>,
    pub stock: AggregateStore<Stock>,
    pub carts: AggregateStore<Cart>,
    pub orders: AggregateStore<Order>,
    pub payments: AggregateStore<Payment>,
    pub customers: AggregateStore<Customer>,
    pub promotions: AggregateStore<Promotion>,
    pub tax: AggregateStore<TaxPolicy>,
    pub shipping: AggregateStore<ShippingPolicy>,
}

impl Stores {
    pub fn new(pool: PgPool, gateway: Arc<dyn PaymentGateway>, snapshots: &SnapshotPolicy) -> Self {
        let catalog = Arc::new(StoreCatalog::new(pool.clone(), snapshots));
        Self {
            products: AggregateStore::new(pool.clone(), (), snapshots).with_upcasters(upcasters()),
            stock: AggregateStore::new(pool.clone(), (), snapshots).with_upcasters(upcasters()),
            carts: AggregateStore::new(pool.clone(), CartServices::new(catalog), snapshots)
                .with_upcasters(upcasters()),
            orders: AggregateStore::new(pool.clone(), (), snapshots).with_upcasters(upcasters()),
            payments: AggregateStore::new(pool.clone(), PaymentServices::new(gateway), snapshots)
                .with_upcasters(upcasters()),
            customers: AggregateStore::new(pool.clone(), (), snapshots).with_upcasters(upcasters()),
            promotions: AggregateStore::new(pool.clone(), (), snapshots)
                .with_upcasters(upcasters()),
            tax: AggregateStore::new(pool.clone(), (), snapshots).with_upcasters(upcasters()),
            shipping: AggregateStore::new(pool.clone(), (), snapshots).with_upcasters(upcasters()),
            pool,
        }
    }
}
