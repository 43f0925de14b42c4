use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{Allocation, StockCommand, StockError, StockEvent, WarehouseLevel};
use crate::values::{OrderId, Quantity, Sku, WarehouseId};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Level {
    on_hand: u64,
    reserved: u64,
}

impl Level {
    fn available(&self) -> u64 {
        self.on_hand.saturating_sub(self.reserved)
    }
}

/// Units held for one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Units held in total.
    pub quantity: Quantity,
    /// Where they are held.
    pub allocations: Vec<Allocation>,
    /// When the hold lapses unless the order is paid.
    pub expires_at: DateTime<Utc>,
}

impl Reservation {
    /// What is left after `taken` units leave; `None` when nothing is.
    fn without(&self, taken: &[Allocation]) -> Option<Reservation> {
        let allocations: Vec<Allocation> = self
            .allocations
            .iter()
            .filter_map(|a| {
                let gone: u32 = taken
                    .iter()
                    .filter(|t| t.warehouse == a.warehouse)
                    .map(|t| t.quantity)
                    .sum();
                let left = a.quantity.saturating_sub(gone);
                (left > 0).then(|| Allocation {
                    warehouse: a.warehouse.clone(),
                    quantity: left,
                })
            })
            .collect();
        let quantity = Quantity::new(allocations.iter().map(|a| a.quantity).sum()).ok()?;
        Some(Reservation {
            quantity,
            allocations,
            expires_at: self.expires_at,
        })
    }
}

/// `quantity` units out of `allocations`, taken in their order (the warehouse holding most
/// first, as allocated).
fn take_from(allocations: &[Allocation], quantity: u32) -> Vec<Allocation> {
    let mut left = quantity;
    allocations
        .iter()
        .filter_map(|a| {
            let take = a.quantity.min(left);
            left -= take;
            (take > 0).then(|| Allocation {
                warehouse: a.warehouse.clone(),
                quantity: take,
            })
        })
        .collect()
}

/// Stock of one SKU (aggregate id: the SKU).
///
/// Orders whose reservation was released or committed are remembered, so a late duplicate
/// `ReserveStock` can never hold units again for an order that is already settled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stock {
    sku: Option<Sku>,
    warehouses: BTreeMap<WarehouseId, Level>,
    reservations: BTreeMap<OrderId, Reservation>,
    released: BTreeSet<OrderId>,
    committed: BTreeSet<OrderId>,
}

impl Stock {
    /// The most units one warehouse may hold of one SKU.
    pub const MAX_ON_HAND: u64 = 1_000_000_000;

    /// The SKU, once known.
    pub fn sku(&self) -> Option<&Sku> {
        self.sku.as_ref()
    }

    /// Quantities of every warehouse, ordered by warehouse id.
    pub fn levels(&self) -> Vec<WarehouseLevel> {
        self.warehouses
            .iter()
            .map(|(warehouse, level)| Self::level_of(warehouse, level))
            .collect()
    }

    /// Units available (on hand minus reserved) across all warehouses.
    pub fn total_available(&self) -> u64 {
        self.warehouses.values().map(Level::available).sum()
    }

    /// The active reservation of an order, if any.
    pub fn reservation(&self, order_id: &OrderId) -> Option<&Reservation> {
        self.reservations.get(order_id)
    }

    /// Active reservations by order.
    pub fn reservations(&self) -> &BTreeMap<OrderId, Reservation> {
        &self.reservations
    }

    fn level_of(warehouse: &WarehouseId, level: &Level) -> WarehouseLevel {
        WarehouseLevel {
            warehouse: warehouse.clone(),
            on_hand: level.on_hand,
            reserved: level.reserved,
            available: level.available(),
        }
    }

    /// Deterministic allocation: one warehouse if any can serve the whole quantity (the one
    /// with most available, ties by id), otherwise greedily from the most available.
    fn allocate(&self, quantity: u32) -> Option<Vec<Allocation>> {
        let wanted = u64::from(quantity);
        let mut candidates: Vec<(&WarehouseId, u64)> = self
            .warehouses
            .iter()
            .map(|(id, level)| (id, level.available()))
            .filter(|(_, available)| *available > 0)
            .collect();
        // Stable sort keeps id order among equal availability.
        candidates.sort_by_key(|candidate| std::cmp::Reverse(candidate.1));
        let mut allocations = Vec::new();
        let mut remaining = wanted;
        for (warehouse, available) in candidates {
            if remaining == 0 {
                break;
            }
            let take = available.min(remaining);
            remaining -= take;
            allocations.push(Allocation {
                warehouse: warehouse.clone(),
                // take <= quantity, which is a u32.
                quantity: u32::try_from(take).ok()?,
            });
        }
        (remaining == 0).then_some(allocations)
    }

    /// Warehouse levels after applying `change` to the allocated warehouses.
    fn levels_after(
        &self,
        allocations: &[Allocation],
        change: impl Fn(&mut Level, u64),
    ) -> (Vec<WarehouseLevel>, u64) {
        let mut after = self.warehouses.clone();
        for allocation in allocations {
            let level = after.entry(allocation.warehouse.clone()).or_default();
            change(level, u64::from(allocation.quantity));
        }
        let levels = allocations
            .iter()
            .filter_map(|a| {
                after
                    .get(&a.warehouse)
                    .map(|level| Self::level_of(&a.warehouse, level))
            })
            .collect();
        let total = after.values().map(Level::available).sum();
        (levels, total)
    }

    fn decide(&self, command: StockCommand) -> Result<Vec<StockEvent>, StockError> {
        if let Some(expected) = &self.sku {
            if expected != command.sku() {
                return Err(StockError::SkuMismatch {
                    expected: expected.clone(),
                    actual: command.sku().clone(),
                });
            }
        }
        match command {
            StockCommand::ReceiveStock {
                sku,
                warehouse,
                quantity,
            } => {
                let (level, total_available) = self.with_more_on_hand(warehouse, quantity)?;
                Ok(vec![StockEvent::StockReceived {
                    sku,
                    quantity,
                    level,
                    total_available,
                }])
            }
            StockCommand::AdjustStock {
                sku,
                warehouse,
                delta,
                reason,
            } => {
                let Some(mut level) = self.warehouses.get(&warehouse).copied() else {
                    return Err(StockError::UnknownWarehouse(warehouse));
                };
                if delta == 0 {
                    return Err(StockError::ZeroAdjustment);
                }
                let new_on_hand = i128::from(level.on_hand) + i128::from(delta);
                if new_on_hand < i128::from(level.reserved) {
                    return Err(StockError::InsufficientStock {
                        warehouse,
                        available: level.available(),
                        requested: delta.unsigned_abs(),
                    });
                }
                if new_on_hand > i128::from(Self::MAX_ON_HAND) {
                    return Err(StockError::CapacityExceeded {
                        warehouse,
                        max: Self::MAX_ON_HAND,
                    });
                }
                let old_available = level.available();
                // Bounded by MAX_ON_HAND and non-negative, checked above.
                level.on_hand = u64::try_from(new_on_hand).unwrap_or(level.on_hand);
                let total_available = self.total_available() - old_available + level.available();
                Ok(vec![StockEvent::StockAdjusted {
                    sku,
                    delta,
                    reason,
                    level: Self::level_of(&warehouse, &level),
                    total_available,
                }])
            }
            StockCommand::ReserveStock {
                sku,
                order_id,
                quantity,
                expires_at,
            } => {
                let settled = self.reservations.contains_key(&order_id)
                    || self.released.contains(&order_id)
                    || self.committed.contains(&order_id);
                if settled {
                    return Ok(vec![]);
                }
                let Some(allocations) = self.allocate(quantity.get()) else {
                    return Ok(vec![StockEvent::StockReservationRejected {
                        sku,
                        order_id,
                        requested: quantity,
                        available: self.total_available(),
                    }]);
                };
                let (levels, total_available) =
                    self.levels_after(&allocations, |level, n| level.reserved += n);
                Ok(vec![StockEvent::StockReserved {
                    sku,
                    order_id,
                    quantity,
                    expires_at,
                    allocations,
                    levels,
                    total_available,
                }])
            }
            StockCommand::ReleaseReservation { sku, order_id } => {
                let Some(reservation) = self.reservations.get(&order_id) else {
                    // Never an error: a compensation must not be blocked by a missing hold.
                    return Ok(vec![]);
                };
                let (levels, total_available) =
                    self.levels_after(&reservation.allocations, |level, n| {
                        level.reserved = level.reserved.saturating_sub(n);
                    });
                Ok(vec![StockEvent::StockReservationReleased {
                    sku,
                    order_id,
                    quantity: reservation.quantity,
                    allocations: reservation.allocations.clone(),
                    levels,
                    total_available,
                }])
            }
            StockCommand::CommitReservation {
                sku,
                order_id,
                quantity,
            } => {
                if self.committed.contains(&order_id) {
                    return Ok(vec![]);
                }
                let Some(reservation) = self.reservations.get(&order_id) else {
                    return Err(StockError::ReservationNotFound);
                };
                let held = reservation.quantity.get();
                let quantity = quantity.unwrap_or(reservation.quantity);
                if quantity.get() > held {
                    return Err(StockError::CommitExceedsReservation { reserved: held });
                }
                let allocations = take_from(&reservation.allocations, quantity.get());
                let (levels, total_available) = self.levels_after(&allocations, |level, n| {
                    level.reserved = level.reserved.saturating_sub(n);
                    level.on_hand = level.on_hand.saturating_sub(n);
                });
                Ok(vec![StockEvent::StockReservationCommitted {
                    sku,
                    order_id,
                    quantity,
                    allocations,
                    levels,
                    total_available,
                }])
            }
            StockCommand::RestockReturn {
                sku,
                warehouse,
                quantity,
                order_id,
                return_id,
            } => {
                let (level, total_available) = self.with_more_on_hand(warehouse, quantity)?;
                Ok(vec![StockEvent::StockRestocked {
                    sku,
                    order_id,
                    return_id,
                    quantity,
                    level,
                    total_available,
                }])
            }
        }
    }

    /// A warehouse's level and the total available after `quantity` more units arrive there
    /// (the warehouse record is created if new); refused beyond [`Stock::MAX_ON_HAND`].
    fn with_more_on_hand(
        &self,
        warehouse: WarehouseId,
        quantity: Quantity,
    ) -> Result<(WarehouseLevel, u64), StockError> {
        let mut level = self.warehouses.get(&warehouse).copied().unwrap_or_default();
        level.on_hand += u64::from(quantity.get());
        if level.on_hand > Self::MAX_ON_HAND {
            return Err(StockError::CapacityExceeded {
                warehouse,
                max: Self::MAX_ON_HAND,
            });
        }
        let total_available = self.total_available() + u64::from(quantity.get());
        Ok((Self::level_of(&warehouse, &level), total_available))
    }

    fn change_allocated(&mut self, allocations: &[Allocation], change: impl Fn(&mut Level, u64)) {
        for allocation in allocations {
            let level = self
                .warehouses
                .entry(allocation.warehouse.clone())
                .or_default();
            change(level, u64::from(allocation.quantity));
        }
    }
}

impl Aggregate for Stock {
    const TYPE: &'static str = "Stock";
    type Command = StockCommand;
    type Event = StockEvent;
    type Error = StockError;
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
        if self.sku.is_none() {
            self.sku = Some(event.sku().clone());
        }
        match event {
            StockEvent::StockReceived {
                quantity, level, ..
            } => {
                let entry = self.warehouses.entry(level.warehouse).or_default();
                entry.on_hand = entry.on_hand.saturating_add(u64::from(quantity.get()));
            }
            StockEvent::StockAdjusted { delta, level, .. } => {
                let entry = self.warehouses.entry(level.warehouse).or_default();
                entry.on_hand = entry.on_hand.saturating_add_signed(delta);
            }
            StockEvent::StockReserved {
                order_id,
                quantity,
                expires_at,
                allocations,
                ..
            } => {
                self.change_allocated(&allocations, |level, n| {
                    level.reserved = level.reserved.saturating_add(n);
                });
                self.reservations.insert(
                    order_id,
                    Reservation {
                        quantity,
                        allocations,
                        expires_at,
                    },
                );
            }
            StockEvent::StockReservationRejected { .. } => {}
            StockEvent::StockReservationReleased {
                order_id,
                allocations,
                ..
            } => {
                self.change_allocated(&allocations, |level, n| {
                    level.reserved = level.reserved.saturating_sub(n);
                });
                self.reservations.remove(&order_id);
                self.released.insert(order_id);
            }
            StockEvent::StockReservationCommitted {
                order_id,
                allocations,
                ..
            } => {
                self.change_allocated(&allocations, |level, n| {
                    level.reserved = level.reserved.saturating_sub(n);
                    level.on_hand = level.on_hand.saturating_sub(n);
                });
                // A partial commit leaves the rest held; the last one settles the order.
                let rest = self
                    .reservations
                    .get(&order_id)
                    .and_then(|r| r.without(&allocations));
                match rest {
                    Some(rest) => {
                        self.reservations.insert(order_id, rest);
                    }
                    None => {
                        self.reservations.remove(&order_id);
                        self.committed.insert(order_id);
                    }
                }
            }
            StockEvent::StockRestocked {
                quantity, level, ..
            } => {
                let entry = self.warehouses.entry(level.warehouse).or_default();
                entry.on_hand = entry.on_hand.saturating_add(u64::from(quantity.get()));
            }
        }
    }
}
