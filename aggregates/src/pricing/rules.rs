//! What the pricing is given: promotion rules and the tax to charge.

use serde::{Deserialize, Serialize};

use super::{PricingLine, Rate};
use crate::money::Money;
use crate::values::{Brand, CategoryPath, CouponCode, PromotionId, PromotionName, Sku};

/// What a promotion gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Discount {
    /// A percentage off the lines it applies to (`{"percent": 10}` or `{"percent": "12.5"}`).
    Percent(Rate),
    /// A fixed amount off the lines it applies to, together (`{"amount": {"amount": 500,
    /// "currency": "EUR"}}`), never more than they cost.
    Amount(Money),
    /// Of every `buy + get` units it applies to, the cheapest `get` are free.
    BuyXGetY {
        /// Units paid for in each group (1-100).
        buy: u32,
        /// Units free in each group (1-100).
        get: u32,
    },
    /// Shipping is free; the lines keep their price.
    FreeShipping {},
}

/// Which lines a promotion applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Every line.
    #[default]
    Cart,
    /// The lines of one product.
    Product(Sku),
    /// The lines of products in a category or any of its subcategories.
    Category(CategoryPath),
    /// The lines of one brand's products.
    Brand(Brand),
}

impl Target {
    /// Whether `line` is one this target covers.
    pub fn matches(&self, line: &PricingLine) -> bool {
        match self {
            Target::Cart => true,
            Target::Product(sku) => &line.sku == sku,
            Target::Category(path) => line
                .category
                .as_ref()
                .is_some_and(|c| c.segments().starts_with(path.segments())),
            Target::Brand(brand) => line.brand.as_ref() == Some(brand),
        }
    }
}

/// Whether a promotion combines with others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stacking {
    /// Applies together with every other combinable promotion.
    #[default]
    Combinable,
    /// Applies alone, when it takes off more than the combinable ones together.
    Exclusive,
}

/// A promotion as the pricing sees it: one that is active now and has uses left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionRule {
    /// The promotion.
    pub id: PromotionId,
    /// Its name.
    pub name: PromotionName,
    /// Its coupon code; `None` for an automatic promotion.
    pub code: Option<CouponCode>,
    /// What it gives.
    pub discount: Discount,
    /// Which lines.
    pub applies_to: Target,
    /// The cart subtotal (list prices) it needs, if any.
    pub min_subtotal: Option<Money>,
    /// Whether it combines.
    pub stacking: Stacking,
}

/// The tax charged on a cart: the rate of the destination, and whether catalog prices
/// already include it (a shop setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxRule {
    /// The rate.
    pub rate: Rate,
    /// Catalog prices include the tax (so it is taken out of them, not added).
    pub prices_include_tax: bool,
}

impl TaxRule {
    /// No tax (no rate configured for the destination).
    pub fn none(prices_include_tax: bool) -> Self {
        TaxRule {
            rate: Rate::from_thousandths(0).unwrap_or_else(|_| unreachable!("0 is a rate")),
            prices_include_tax,
        }
    }
}
