use std::sync::Arc;

use async_trait::async_trait;

use crate::money::Money;
use crate::values::{Brand, CategoryPath, ProductName, Sku};

/// What the catalog says about a SKU right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Display name, captured into the cart line.
    pub name: ProductName,
    /// Current unit price, captured into the cart line.
    pub unit_price: Money,
    /// Published and not discontinued.
    pub sellable: bool,
    /// Category, captured into the cart line (category promotions match on it).
    pub category: Option<CategoryPath>,
    /// Brand, captured into the cart line (brand promotions match on it).
    pub brand: Option<Brand>,
    /// Weight of one unit in grams, captured into the cart line (shipping rates by weight).
    pub weight_grams: Option<u32>,
}

/// The catalog could not be asked (the command may be retried).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("catalog unavailable")]
pub struct CatalogUnavailable;

/// Looks up current catalog data when an item is added to a cart.
#[async_trait]
pub trait CatalogLookup: Send + Sync {
    /// The SKU's current entry, or `None` if no such product exists.
    async fn lookup(&self, sku: &Sku) -> Result<Option<CatalogEntry>, CatalogUnavailable>;
}

/// The services the [`super::Cart`] aggregate needs.
#[derive(Clone)]
pub struct CartServices {
    catalog: Arc<dyn CatalogLookup>,
}

impl CartServices {
    /// Services backed by the given catalog.
    pub fn new(catalog: Arc<dyn CatalogLookup>) -> Self {
        CartServices { catalog }
    }

    /// The catalog.
    pub fn catalog(&self) -> &dyn CatalogLookup {
        self.catalog.as_ref()
    }
}
