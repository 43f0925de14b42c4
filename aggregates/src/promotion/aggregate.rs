use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{PromotionChanges, PromotionCommand, PromotionError, PromotionEvent, PromotionTerms};
use crate::pricing::{Discount, PromotionRule};
use crate::values::{CustomerId, OrderId, PromotionId};

/// A promotion (aggregate id: the promotion UUID).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    id: Option<PromotionId>,
    terms: Option<PromotionTerms>,
    active: bool,
    /// Uses held, by order, with the customer who ordered.
    held: BTreeMap<OrderId, Option<CustomerId>>,
    /// Orders whose use was given back: a late reservation for them holds nothing.
    released: BTreeSet<OrderId>,
}

impl Promotion {
    /// The most units of a buy X get Y group.
    pub const MAX_GROUP_UNITS: u32 = 100;

    /// The id, once created.
    pub fn id(&self) -> Option<PromotionId> {
        self.id
    }

    /// Its terms, once created.
    pub fn terms(&self) -> Option<&PromotionTerms> {
        self.terms.as_ref()
    }

    /// Whether it is activated (it still applies only within its window).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Uses held now.
    pub fn uses(&self) -> u32 {
        u32::try_from(self.held.len()).unwrap_or(u32::MAX)
    }

    /// Whether `order_id` holds a use.
    pub fn holds(&self, order_id: OrderId) -> bool {
        self.held.contains_key(&order_id)
    }

    /// Why it cannot be used at `at` by `customer` for `order_id`, if it cannot. An order
    /// that already holds a use can always keep it.
    pub fn refusal(
        &self,
        order_id: Option<OrderId>,
        customer: Option<CustomerId>,
        at: DateTime<Utc>,
    ) -> Option<PromotionError> {
        let Some(terms) = &self.terms else {
            return Some(PromotionError::NotFound);
        };
        if order_id.is_some_and(|o| self.holds(o)) {
            return None;
        }
        if let Some(refusal) = terms.refusal(self.active, self.uses(), customer.is_some(), at) {
            return Some(refusal);
        }
        if let (Some(limit), Some(customer)) = (terms.per_customer_limit, customer) {
            let used = self.held.values().filter(|c| **c == Some(customer)).count();
            if used >= limit as usize {
                return Some(PromotionError::CustomerLimitReached { limit });
            }
        }
        None
    }

    /// The rule the pricing applies.
    pub fn rule(&self) -> Option<PromotionRule> {
        let (id, terms) = (self.id?, self.terms.as_ref()?);
        Some(PromotionRule {
            id,
            name: terms.name.clone(),
            code: terms.code.clone(),
            discount: terms.discount.clone(),
            applies_to: terms.applies_to.clone(),
            min_subtotal: terms.min_subtotal,
            stacking: terms.stacking,
        })
    }

    /// Whether it holds uses for an order (a limit to enforce).
    pub fn is_limited(&self) -> bool {
        self.terms
            .as_ref()
            .is_some_and(|t| t.usage_limit.is_some() || t.per_customer_limit.is_some())
    }

    /// Whether `command` would be accepted now (the API checks a creation before claiming
    /// its code, and a change before moving its window).
    pub fn check_command(&self, command: &PromotionCommand) -> Result<(), PromotionError> {
        self.decide(command.clone()).map(|_| ())
    }

    fn check(terms: &PromotionTerms) -> Result<(), PromotionError> {
        if let (Some(start), Some(end)) = (terms.starts_at, terms.ends_at) {
            if end <= start {
                return Err(PromotionError::InvalidWindow);
            }
        }
        if terms.usage_limit == Some(0) || terms.per_customer_limit == Some(0) {
            return Err(PromotionError::InvalidLimit);
        }
        match &terms.discount {
            Discount::Percent(rate) if rate.thousandths() == 0 => {
                Err(PromotionError::EmptyDiscount)
            }
            Discount::Amount(amount) if amount.is_zero() => Err(PromotionError::EmptyDiscount),
            Discount::BuyXGetY { buy, get }
                if !(1..=Self::MAX_GROUP_UNITS).contains(buy)
                    || !(1..=Self::MAX_GROUP_UNITS).contains(get) =>
            {
                Err(PromotionError::InvalidBuyXGetY)
            }
            _ => Ok(()),
        }
    }

    fn decide(&self, command: PromotionCommand) -> Result<Vec<PromotionEvent>, PromotionError> {
        if let PromotionCommand::CreatePromotion {
            promotion_id,
            terms,
            active,
        } = command
        {
            if self.terms.is_some() {
                return Err(PromotionError::AlreadyExists);
            }
            Self::check(&terms)?;
            return Ok(vec![PromotionEvent::PromotionCreated {
                promotion_id,
                terms,
                active,
            }]);
        }
        let Some(terms) = &self.terms else {
            return Err(PromotionError::NotFound);
        };
        let event = match command {
            PromotionCommand::CreatePromotion { .. } => return Err(PromotionError::AlreadyExists),
            PromotionCommand::UpdatePromotion { changes } => {
                Self::check(&changed(terms.clone(), changes.clone()))?;
                PromotionEvent::PromotionUpdated { changes }
            }
            PromotionCommand::ActivatePromotion if self.active => {
                return Err(PromotionError::AlreadyInState("active"))
            }
            PromotionCommand::ActivatePromotion => PromotionEvent::PromotionActivated,
            PromotionCommand::DeactivatePromotion if !self.active => {
                return Err(PromotionError::AlreadyInState("inactive"))
            }
            PromotionCommand::DeactivatePromotion => PromotionEvent::PromotionDeactivated,
            PromotionCommand::ReserveRedemption {
                order_id,
                customer_id,
                at,
            } => {
                if self.holds(order_id) || self.released.contains(&order_id) {
                    return Ok(vec![]);
                }
                if let Some(refusal) = self.refusal(Some(order_id), customer_id, at) {
                    return Err(refusal);
                }
                PromotionEvent::PromotionRedemptionReserved {
                    order_id,
                    customer_id,
                    uses: self.uses() + 1,
                }
            }
            PromotionCommand::ReleaseRedemption { order_id } => {
                if !self.holds(order_id) {
                    return Ok(vec![]);
                }
                PromotionEvent::PromotionRedemptionReleased {
                    order_id,
                    uses: self.uses() - 1,
                }
            }
        };
        Ok(vec![event])
    }
}

impl PromotionTerms {
    /// Why a promotion with these terms cannot take a new use at `at`, when it is `active`
    /// and holds `uses`, for a buyer who is `signed_in` (or not), if it cannot. The count of
    /// one customer's uses is the aggregate's to check; the query API prices a cart view
    /// with this alone.
    pub fn refusal(
        &self,
        active: bool,
        uses: u32,
        signed_in: bool,
        at: DateTime<Utc>,
    ) -> Option<PromotionError> {
        if !active {
            return Some(PromotionError::NotActive);
        }
        let started = self.starts_at.is_none_or(|s| s <= at);
        let running = self.ends_at.is_none_or(|e| at < e);
        if !started || !running {
            return Some(PromotionError::OutsideWindow);
        }
        if let Some(limit) = self.usage_limit.filter(|l| uses >= *l) {
            return Some(PromotionError::UsageLimitReached { limit });
        }
        if self.per_customer_limit.is_some() && !signed_in {
            return Some(PromotionError::SignInRequired);
        }
        None
    }
}

/// `terms` with `changes` applied.
fn changed(mut terms: PromotionTerms, changes: PromotionChanges) -> PromotionTerms {
    let PromotionChanges {
        name,
        discount,
        applies_to,
        min_subtotal,
        stacking,
        starts_at,
        ends_at,
        usage_limit,
        per_customer_limit,
    } = changes;
    terms.name = name.unwrap_or(terms.name);
    terms.discount = discount.unwrap_or(terms.discount);
    terms.applies_to = applies_to.unwrap_or(terms.applies_to);
    terms.min_subtotal = min_subtotal.unwrap_or(terms.min_subtotal);
    terms.stacking = stacking.unwrap_or(terms.stacking);
    terms.starts_at = starts_at.unwrap_or(terms.starts_at);
    terms.ends_at = ends_at.unwrap_or(terms.ends_at);
    terms.usage_limit = usage_limit.unwrap_or(terms.usage_limit);
    terms.per_customer_limit = per_customer_limit.unwrap_or(terms.per_customer_limit);
    terms
}

/// The terms after `changes` (read models apply `PromotionUpdated` with it too).
pub fn apply_changes(terms: PromotionTerms, changes: PromotionChanges) -> PromotionTerms {
    changed(terms, changes)
}

impl Aggregate for Promotion {
    const TYPE: &'static str = "Promotion";
    type Command = PromotionCommand;
    type Event = PromotionEvent;
    type Error = PromotionError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            PromotionEvent::PromotionCreated {
                promotion_id,
                terms,
                active,
            } => {
                self.id = Some(promotion_id);
                self.terms = Some(terms);
                self.active = active;
            }
            PromotionEvent::PromotionUpdated { changes } => {
                self.terms = self.terms.take().map(|t| changed(t, changes));
            }
            PromotionEvent::PromotionActivated => self.active = true,
            PromotionEvent::PromotionDeactivated => self.active = false,
            PromotionEvent::PromotionRedemptionReserved {
                order_id,
                customer_id,
                ..
            } => {
                self.held.insert(order_id, customer_id);
            }
            PromotionEvent::PromotionRedemptionReleased { order_id, .. } => {
                self.held.remove(&order_id);
                self.released.insert(order_id);
            }
        }
    }
}
