//! The cart's catalog lookup, answered from the Product aggregate itself (no read model).

use async_trait::async_trait;
use mercato_aggregates::cart::{CatalogEntry, CatalogLookup, CatalogUnavailable};
use mercato_aggregates::product::{Product, ProductStatus};
use mercato_aggregates::upcasting::upcasters;
use mercato_aggregates::values::Sku;
use mercato_event_store::{AggregateStore, SnapshotPolicy};
use sqlx::PgPool;

/// Looks products up by loading their aggregate: always current, never a stale price.
pub struct StoreCatalog {
    products: AggregateStore<Product>,
}

impl StoreCatalog {
    /// A catalog over the products in `pool`.
    pub fn new(pool: PgPool, snapshots: &SnapshotPolicy) -> Self {
        Self {
            products: AggregateStore::new(pool, (), snapshots).with_upcasters(upcasters()),
        }
    }
}

#[async_trait]
impl CatalogLookup for StoreCatalog {
    async fn lookup(&self, sku: &Sku) -> Result<Option<CatalogEntry>, CatalogUnavailable> {
        let (product, _) = self.products.load(sku.as_str()).await.map_err(|e| {
            tracing::warn!(sku = %sku, error = %e, "catalog lookup failed");
            CatalogUnavailable
        })?;
        if product.status() == ProductStatus::Absent {
            return Ok(None);
        }
        let (Some(details), Some(price)) = (product.details(), product.price()) else {
            return Ok(None);
        };
        Ok(Some(CatalogEntry {
            name: details.name.clone(),
            unit_price: price,
            sellable: product.is_sellable(),
            category: Some(details.category.clone()),
            brand: Some(details.brand.clone()),
            weight_grams: details.weight_grams,
        }))
    }
}
