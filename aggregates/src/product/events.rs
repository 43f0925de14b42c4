use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::ProductDetails;
use crate::money::Money;
use crate::values::Sku;

/// Events of the [`super::Product`] aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProductEvent {
    /// A product was created as an unpublished draft (version 2.0: details nested, category
    /// as an array; 1.0 is upcast by [`crate::upcasting::product_created_v1_to_v2`]).
    ProductCreated {
        /// The SKU.
        sku: Sku,
        /// Descriptive details.
        details: ProductDetails,
        /// Initial price.
        price: Money,
    },
    /// The descriptive details were replaced.
    ProductDetailsUpdated {
        /// New details.
        details: ProductDetails,
    },
    /// The price changed.
    ProductPriceChanged {
        /// Price before.
        old_price: Money,
        /// Price after.
        new_price: Money,
    },
    /// The product became visible and sellable.
    ProductPublished,
    /// The product was hidden.
    ProductUnpublished,
    /// The product was withdrawn for good.
    ProductDiscontinued,
}

impl DomainEvent for ProductEvent {
    fn event_type(&self) -> String {
        match self {
            ProductEvent::ProductCreated { .. } => "ProductCreated",
            ProductEvent::ProductDetailsUpdated { .. } => "ProductDetailsUpdated",
            ProductEvent::ProductPriceChanged { .. } => "ProductPriceChanged",
            ProductEvent::ProductPublished => "ProductPublished",
            ProductEvent::ProductUnpublished => "ProductUnpublished",
            ProductEvent::ProductDiscontinued => "ProductDiscontinued",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            ProductEvent::ProductCreated { .. } => "2.1",
            ProductEvent::ProductDetailsUpdated { .. } => "1.1",
            _ => "1.0",
        }
        .to_owned()
    }
}
