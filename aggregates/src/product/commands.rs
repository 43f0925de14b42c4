use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::values::{Attributes, Brand, CategoryPath, Description, ImageUrl, ProductName, Sku};

/// The descriptive part of a product, set on creation and replaced by an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDetails {
    /// Display name.
    pub name: ProductName,
    /// Long description.
    pub description: Description,
    /// Brand.
    pub brand: Brand,
    /// Category path, root first.
    pub category: CategoryPath,
    /// Free-form attributes.
    pub attributes: Attributes,
    /// Image URLs, first is the main image (at most [`ProductDetails::MAX_IMAGES`]).
    pub images: Vec<ImageUrl>,
    /// Shipping weight of one unit in grams (weight-based shipping rates use it; absent
    /// in events before version 2.1 of `ProductCreated` and 1.1 of `ProductDetailsUpdated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_grams: Option<u32>,
}

impl ProductDetails {
    /// The most images a product may have.
    pub const MAX_IMAGES: usize = 20;
}

/// Commands of the [`super::Product`] aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProductCommand {
    /// Creates the product as an unpublished draft.
    CreateProduct {
        /// The SKU, which is also the aggregate id.
        sku: Sku,
        /// Descriptive details.
        details: ProductDetails,
        /// Initial price; its currency is the product's currency for good.
        price: Money,
    },
    /// Replaces the descriptive details.
    UpdateProductDetails {
        /// New details.
        details: ProductDetails,
    },
    /// Changes the price (same currency).
    ChangeProductPrice {
        /// New price.
        price: Money,
    },
    /// Makes the product visible and sellable.
    PublishProduct,
    /// Hides the product; it can be published again.
    UnpublishProduct,
    /// Withdraws the product for good.
    DiscontinueProduct,
}
