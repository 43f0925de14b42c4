use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money};
use crate::pricing::Priced;
use crate::values::{
    Brand, CartId, CategoryPath, CouponCode, CustomerId, OrderId, ProductName, PromotionId,
    Quantity, Sku,
};

/// A cart line as handed to the order at checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    /// The SKU.
    pub sku: Sku,
    /// Name captured from the catalog.
    pub name: ProductName,
    /// Units.
    pub quantity: Quantity,
    /// Price captured from the catalog.
    pub unit_price: Money,
    /// `unit_price * quantity`.
    pub line_total: Money,
}

/// Events of the [`super::Cart`] aggregate; each carries the cart total after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CartEvent {
    /// A cart was opened.
    CartOpened {
        /// The cart.
        cart_id: CartId,
        /// The customer, if signed in.
        customer_id: Option<CustomerId>,
        /// Currency of every price in the cart.
        currency: Currency,
    },
    /// Units of a SKU were added, at the price captured now. Version 1.1 adds the category
    /// and brand captured with it.
    CartItemAdded {
        /// The SKU.
        sku: Sku,
        /// Name captured from the catalog.
        name: ProductName,
        /// Category captured from the catalog (1.1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        category: Option<CategoryPath>,
        /// Brand captured from the catalog (1.1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        brand: Option<Brand>,
        /// Weight of one unit in grams, captured from the catalog (1.1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight_grams: Option<u32>,
        /// Price captured from the catalog (applies to the whole line).
        unit_price: Money,
        /// Units added by this command.
        quantity_added: Quantity,
        /// Units in the line after.
        line_quantity: Quantity,
        /// Line total after.
        line_total: Money,
        /// Cart total after.
        cart_total: Money,
    },
    /// A line's quantity was set.
    CartItemQuantityChanged {
        /// The SKU.
        sku: Sku,
        /// Units in the line after.
        quantity: Quantity,
        /// Line total after.
        line_total: Money,
        /// Cart total after.
        cart_total: Money,
    },
    /// A line was removed.
    CartItemRemoved {
        /// The SKU.
        sku: Sku,
        /// Cart total after.
        cart_total: Money,
    },
    /// A coupon code was added.
    CartCouponApplied {
        /// The code.
        code: CouponCode,
        /// Its promotion.
        promotion_id: PromotionId,
    },
    /// A coupon code was removed.
    CartCouponRemoved {
        /// The code.
        code: CouponCode,
    },
    /// The cart was checked out into an order; it cannot change any more. Version 1.2 adds
    /// the pricing.
    CartCheckedOut {
        /// The order to be placed.
        order_id: OrderId,
        /// The customer; `None` for a guest (version 1.1; 1.0 always had one).
        customer_id: Option<CustomerId>,
        /// The lines, in SKU order.
        lines: Vec<CartLine>,
        /// Sum of the line totals.
        total: Money,
        /// The lines priced with promotions and tax (1.2; absent: list prices, no tax).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pricing: Option<Priced>,
    },
}

impl DomainEvent for CartEvent {
    fn event_type(&self) -> String {
        match self {
            CartEvent::CartOpened { .. } => "CartOpened",
            CartEvent::CartItemAdded { .. } => "CartItemAdded",
            CartEvent::CartItemQuantityChanged { .. } => "CartItemQuantityChanged",
            CartEvent::CartItemRemoved { .. } => "CartItemRemoved",
            CartEvent::CartCouponApplied { .. } => "CartCouponApplied",
            CartEvent::CartCouponRemoved { .. } => "CartCouponRemoved",
            CartEvent::CartCheckedOut { .. } => "CartCheckedOut",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            CartEvent::CartCheckedOut { .. } => "1.2",
            CartEvent::CartItemAdded { .. } => "1.1",
            _ => "1.0",
        }
        .to_owned()
    }
}
