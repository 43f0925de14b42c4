use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::pricing::{Discount, Stacking, Target};
use crate::values::{CouponCode, CustomerId, OrderId, PromotionId, PromotionName};

/// Everything a promotion says, as created and as changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionTerms {
    /// Shown to shoppers beside the discount.
    pub name: PromotionName,
    /// The coupon code that unlocks it; `None`: it applies automatically.
    pub code: Option<CouponCode>,
    /// What it gives.
    pub discount: Discount,
    /// Which lines.
    #[serde(default)]
    pub applies_to: Target,
    /// The cart subtotal (list prices) it needs.
    pub min_subtotal: Option<Money>,
    /// Whether it combines with other promotions.
    #[serde(default)]
    pub stacking: Stacking,
    /// When it starts applying (`None`: at once).
    pub starts_at: Option<DateTime<Utc>>,
    /// When it stops applying (`None`: never).
    pub ends_at: Option<DateTime<Utc>>,
    /// Orders it may be used in, in total (`None`: no limit).
    pub usage_limit: Option<u32>,
    /// Orders one customer may use it in (`None`: no limit). A promotion with this limit is
    /// for signed-in customers only: a guest cannot be told apart from another.
    pub per_customer_limit: Option<u32>,
}

/// A change to some terms; the code cannot change (a new code is a new promotion).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionChanges {
    /// New name.
    pub name: Option<PromotionName>,
    /// New discount.
    pub discount: Option<Discount>,
    /// New target.
    pub applies_to: Option<Target>,
    /// New minimum subtotal (`Some(None)` removes it).
    pub min_subtotal: Option<Option<Money>>,
    /// New stacking rule.
    pub stacking: Option<Stacking>,
    /// New start (`Some(None)`: at once).
    pub starts_at: Option<Option<DateTime<Utc>>>,
    /// New end (`Some(None)`: never).
    pub ends_at: Option<Option<DateTime<Utc>>>,
    /// New usage limit (`Some(None)`: none). Lowering it below the uses so far only stops new
    /// ones.
    pub usage_limit: Option<Option<u32>>,
    /// New per-customer limit.
    pub per_customer_limit: Option<Option<u32>>,
}

/// Commands of the [`super::Promotion`] aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromotionCommand {
    /// Creates a promotion, active unless `active` is false.
    CreatePromotion {
        /// The promotion id (aggregate id).
        promotion_id: PromotionId,
        /// Its terms.
        terms: PromotionTerms,
        /// Whether it applies from its start, or waits for `ActivatePromotion`.
        active: bool,
    },
    /// Changes some terms.
    UpdatePromotion {
        /// The changes.
        changes: PromotionChanges,
    },
    /// Lets it apply (within its window).
    ActivatePromotion,
    /// Stops it applying; redemptions already held stay held.
    DeactivatePromotion,
    /// Holds one use for an order being checked out; holding again for the same order is
    /// an event-free success.
    ReserveRedemption {
        /// The order.
        order_id: OrderId,
        /// Who orders; `None` for a guest.
        customer_id: Option<CustomerId>,
        /// When (checked against the window).
        at: DateTime<Utc>,
    },
    /// Gives the order's use back (its order was cancelled, or its checkout abandoned);
    /// releasing a use not held is an event-free success.
    ReleaseRedemption {
        /// The order.
        order_id: OrderId,
    },
}
