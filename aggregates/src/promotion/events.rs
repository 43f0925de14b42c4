use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::{PromotionChanges, PromotionTerms};
use crate::values::{CustomerId, OrderId, PromotionId};

/// Events of the [`super::Promotion`] aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromotionEvent {
    /// A promotion was created.
    PromotionCreated {
        /// The promotion.
        promotion_id: PromotionId,
        /// Its terms.
        terms: PromotionTerms,
        /// Whether it is active.
        active: bool,
    },
    /// Some terms changed.
    PromotionUpdated {
        /// The changes.
        changes: PromotionChanges,
    },
    /// It was activated.
    PromotionActivated,
    /// It was deactivated.
    PromotionDeactivated,
    /// A checkout holds one use for its order.
    PromotionRedemptionReserved {
        /// The order.
        order_id: OrderId,
        /// Who ordered; `None` for a guest.
        customer_id: Option<CustomerId>,
        /// Uses held after this one.
        uses: u32,
    },
    /// An order's use was given back.
    PromotionRedemptionReleased {
        /// The order.
        order_id: OrderId,
        /// Uses held after.
        uses: u32,
    },
}

impl DomainEvent for PromotionEvent {
    fn event_type(&self) -> String {
        match self {
            PromotionEvent::PromotionCreated { .. } => "PromotionCreated",
            PromotionEvent::PromotionUpdated { .. } => "PromotionUpdated",
            PromotionEvent::PromotionActivated => "PromotionActivated",
            PromotionEvent::PromotionDeactivated => "PromotionDeactivated",
            PromotionEvent::PromotionRedemptionReserved { .. } => "PromotionRedemptionReserved",
            PromotionEvent::PromotionRedemptionReleased { .. } => "PromotionRedemptionReleased",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
