//! The order's rules: from a command and the current state, the events (or a typed refusal).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use cqrs_es::Aggregate;

use super::aggregate::{total_of, unshipped_units, RefundState};
use super::{
    LineUnits, Order, OrderCommand, OrderError, OrderEvent, OrderLine, OrderStatus, OwedRefund,
    ReceivedLine, RefundLine, RefundReason, Return,
};
use crate::money::Money;
use crate::personal::{DataSubject, Personal};
use crate::values::{Quantity, ReturnId, Sku, TrackingNumber};

impl Order {
    fn invalid(&self, action: &'static str) -> OrderError {
        OrderError::InvalidTransition {
            status: self.status,
            action,
        }
    }

    fn require(&self, allowed: &[OrderStatus], action: &'static str) -> Result<(), OrderError> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(self.invalid(action))
        }
    }

    fn total_or_missing(&self) -> Result<Money, OrderError> {
        self.total.ok_or(OrderError::NotFound)
    }

    /// The state after `events`, as the event store would rebuild it.
    fn after(&self, events: &[OrderEvent]) -> Order {
        let mut next = self.clone();
        for event in events {
            next.apply(event.clone());
        }
        next
    }

    /// `event` with the status the order has after it (events carry their resulting status
    /// for read models).
    fn with_settled_status(&self, mut event: OrderEvent) -> OrderEvent {
        let settled = self.after(std::slice::from_ref(&event)).settled_status();
        if let OrderEvent::OrderShipped { status, .. }
        | OrderEvent::OrderDelivered { status, .. }
        | OrderEvent::OrderRemainderCancelled { status, .. }
        | OrderEvent::OrderRefunded { status, .. } = &mut event
        {
            *status = settled;
        }
        event
    }

    /// A request to refund `owed` (capped at what is refundable), if anything can be.
    fn refund_request(&self, owed: OwedRefund) -> Option<OrderEvent> {
        self.captured?;
        let OwedRefund {
            reason,
            lines,
            shipping,
        } = owed;
        let currency = self.currency();
        let refundable = self.refundable().amount();
        let owed_total = total_of(&lines, currency).amount() + shipping.map_or(0, |s| s.amount());
        let mut left = owed_total.min(refundable);
        let amount = Money::new(left, currency).ok()?;
        if amount.is_zero() {
            return None;
        }
        // A cap takes its share off the shipping, then the last lines, first: each part's
        // amount is what it really paid back, and they add up to the refund. A part cut by
        // the cap pays back its tax in proportion (rounded down).
        let scaled = |tax: i64, take: i64, whole: i64| {
            if whole == 0 {
                0
            } else {
                i64::try_from(i128::from(tax) * i128::from(take) / i128::from(whole)).unwrap_or(0)
            }
        };
        let lines: Vec<RefundLine> = lines
            .into_iter()
            .filter_map(|line| {
                let whole = line.amount.amount();
                let take = whole.min(left);
                left -= take;
                let tax = line
                    .tax
                    .and_then(|t| Money::new(scaled(t.amount(), take, whole), t.currency()).ok());
                Money::new(take, line.amount.currency())
                    .ok()
                    .filter(|m| !m.is_zero())
                    .map(|amount| RefundLine {
                        amount,
                        tax,
                        ..line
                    })
            })
            .collect();
        let shipping = shipping
            .and_then(|s| Money::new(s.amount().min(left), currency).ok())
            .filter(|m| !m.is_zero());
        let shipping_tax = match (shipping, self.shipping_paid, self.shipping_tax) {
            (Some(s), Some(paid), Some(tax)) => scaled(tax.amount(), s.amount(), paid.amount()),
            _ => 0,
        };
        let taxed = self.lines.iter().any(|l| l.line.tax.is_some());
        let tax = taxed
            .then(|| {
                let lines_tax: i64 = lines.iter().filter_map(|l| l.tax).map(|t| t.amount()).sum();
                Money::new(lines_tax + shipping_tax, currency).ok()
            })
            .flatten();
        Some(OrderEvent::OrderRefundRequested {
            refund_id: self.next_refund_id(),
            amount,
            reason,
            lines,
            shipping,
            tax,
        })
    }

    /// `events` followed by the refund requests of whatever they leave owed or refundable:
    /// `owed_now` (the value of units they cancel or take back, and the shipping of a whole
    /// cancelled order) when the payment is captured, or everything owed so far once it is.
    fn with_refunds(
        &self,
        mut events: Vec<OrderEvent>,
        owed_now: Option<OwedRefund>,
    ) -> Vec<OrderEvent> {
        let mut next = self.after(&events);
        let mut due: Vec<OwedRefund> = next.owed.clone();
        if next.captured.is_none() {
            due.clear();
        }
        if let Some(now) = owed_now.filter(|_| next.captured.is_some()) {
            due.push(now);
        }
        for owed in due {
            if let Some(request) = next.refund_request(owed) {
                next.apply(request.clone());
                events.push(request);
            }
        }
        events
    }

    fn place(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        let OrderCommand::PlaceOrder {
            order_id,
            customer_id,
            guest_email,
            lines,
            pricing,
            shipping_address,
            payment_method,
            placed_at,
        } = command
        else {
            return Err(OrderError::NotFound);
        };
        if self.status != OrderStatus::Absent {
            return Err(OrderError::AlreadyExists);
        }
        if customer_id.is_some() == guest_email.is_some() {
            return Err(OrderError::CustomerRequired);
        }
        let Some(first) = lines.first() else {
            return Err(OrderError::NoLines);
        };
        if lines.len() > Order::MAX_LINES {
            return Err(OrderError::TooManyLines {
                max: Order::MAX_LINES,
            });
        }
        let currency = first.unit_price.currency();
        let mut seen = BTreeSet::new();
        let mut placed = Vec::with_capacity(lines.len());
        for line in lines {
            if !seen.insert(line.sku.clone()) {
                return Err(OrderError::DuplicateLine(line.sku));
            }
            if line.unit_price.currency() != currency {
                return Err(OrderError::CurrencyMismatch);
            }
            let line_total = line
                .unit_price
                .checked_mul(line.quantity.get())
                .map_err(|_| OrderError::AmountOverflow)?;
            placed.push(OrderLine {
                sku: line.sku,
                name: line.name,
                quantity: line.quantity,
                unit_price: line.unit_price,
                line_total,
                discount: None,
                tax: None,
                total: None,
            });
        }
        let subtotal = Money::sum(currency, placed.iter().map(|l| l.line_total))
            .map_err(|_| OrderError::AmountOverflow)?;
        let (total, discounts, tax, tax_rule, shipping) = match pricing {
            None => (subtotal, Vec::new(), None, None, None),
            Some(priced) => {
                let priced = *priced;
                // The pricing must be of these very lines, and add up.
                if priced.lines.len() != placed.len() || !priced.reconciles() {
                    return Err(OrderError::PricingMismatch);
                }
                for (line, p) in placed.iter_mut().zip(&priced.lines) {
                    let same = p.sku == line.sku
                        && p.quantity == line.quantity
                        && p.unit_price == line.unit_price;
                    if !same {
                        return Err(OrderError::PricingMismatch);
                    }
                    line.discount = Some(p.discount);
                    line.tax = Some(p.tax);
                    line.total = Some(p.total);
                }
                (
                    priced.total,
                    priced.discounts,
                    Some(priced.tax),
                    Some(priced.tax_rule),
                    priced.shipping,
                )
            }
        };
        let subject = match customer_id {
            Some(customer) => DataSubject::Customer(customer),
            None => DataSubject::GuestOrder(order_id),
        };
        Ok(vec![OrderEvent::OrderPlaced {
            order_id,
            customer_id,
            guest_email: guest_email.map(|e| Personal::new(subject, e)),
            lines: placed,
            total,
            subtotal: Some(subtotal),
            discounts,
            tax,
            tax_rule,
            shipping,
            ship_to_country: shipping_address.country().clone(),
            shipping_address: Personal::new(subject, shipping_address),
            payment_method,
            placed_at,
        }])
    }

    pub(super) fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        use OrderStatus as S;
        if matches!(command, OrderCommand::PlaceOrder { .. }) {
            return self.place(command);
        }
        if self.status == S::Absent {
            return Err(OrderError::NotFound);
        }
        let event = match command {
            OrderCommand::PlaceOrder { .. } => return Err(OrderError::AlreadyExists),
            OrderCommand::RecordStockReserved { sku } => {
                let line = self.line(&sku)?;
                if line.reserved {
                    return Ok(vec![]);
                }
                self.require(&[S::Placed], "record stock reserved for")?;
                let all_reserved = self.lines.iter().all(|l| l.reserved || l.line.sku == sku);
                let status = if all_reserved {
                    S::AwaitingPayment
                } else {
                    S::Placed
                };
                OrderEvent::OrderLineReserved { sku, status }
            }
            OrderCommand::RecordStockRejected {
                sku,
                requested,
                available,
            } => {
                let line = self.line(&sku)?;
                self.require(&[S::Placed], "record stock rejected for")?;
                if line.reserved {
                    return Err(self.invalid("record stock rejected for a reserved line of"));
                }
                OrderEvent::OrderLineRejected {
                    sku,
                    requested,
                    available,
                }
            }
            OrderCommand::RecordPaymentAuthorized { payment_id, amount } => {
                self.require(&[S::AwaitingPayment], "record payment authorized for")?;
                let expected = self.total_or_missing()?;
                if amount != expected {
                    return Err(OrderError::PaymentAmountMismatch {
                        expected,
                        actual: amount,
                    });
                }
                OrderEvent::OrderPaymentAuthorized { payment_id, amount }
            }
            OrderCommand::RecordPaymentDeclined { payment_id, reason } => {
                self.require(&[S::AwaitingPayment], "record payment declined for")?;
                OrderEvent::OrderPaymentDeclined { payment_id, reason }
            }
            OrderCommand::RecordPaymentCaptured { payment_id, amount } => {
                return self.record_capture(payment_id, amount)
            }
            OrderCommand::RecordPaymentVoided { payment_id } => {
                if self.voided {
                    return Ok(vec![]);
                }
                let amount = self.authorized.ok_or_else(|| self.invalid("void"))?;
                if self.captured.is_some() {
                    return Err(self.invalid("void the captured payment of"));
                }
                OrderEvent::OrderPaymentVoided { payment_id, amount }
            }
            OrderCommand::ConfirmOrder => {
                self.require(&[S::PaymentAuthorized], "confirm")?;
                OrderEvent::OrderConfirmed
            }
            OrderCommand::CancelOrder { reason } => return self.cancel(reason),
            OrderCommand::ShipOrder {
                tracking_number,
                carrier,
                lines,
                shipped_at,
            } => {
                self.require(&[S::Confirmed, S::PartiallyShipped], "ship")?;
                if lines.is_empty() {
                    return Err(OrderError::EmptyShipment);
                }
                if self
                    .shipments
                    .iter()
                    .any(|s| s.tracking_number == tracking_number)
                {
                    return Err(OrderError::DuplicateTrackingNumber(tracking_number));
                }
                let lines = self.merge(
                    lines,
                    |line| line.unshipped(),
                    |sku, remaining| OrderError::ShipmentExceedsOrdered { sku, remaining },
                )?;
                let completed_lines = lines
                    .iter()
                    .filter(|u| {
                        self.line(&u.sku)
                            .is_ok_and(|l| l.unshipped() == u.quantity.get())
                    })
                    .map(|u| u.sku.clone())
                    .collect();
                self.with_settled_status(OrderEvent::OrderShipped {
                    tracking_number,
                    carrier,
                    shipped_at: Some(shipped_at),
                    lines,
                    completed_lines,
                    status: self.status,
                })
            }
            OrderCommand::DeliverOrder {
                tracking_number,
                delivered_at,
            } => self.deliver(tracking_number, delivered_at)?,
            OrderCommand::RequestReturn {
                return_id,
                lines,
                reason,
                requested_at,
                window_days,
            } => {
                if self.returns.contains_key(&return_id) {
                    return Err(OrderError::ReturnAlreadyExists);
                }
                if lines.is_empty() {
                    return Err(OrderError::EmptyReturn);
                }
                let lines = self.merge(
                    lines,
                    |line| line.returnable(),
                    |sku, returnable| OrderError::ReturnExceedsDelivered { sku, returnable },
                )?;
                for units in &lines {
                    let line = self.line(&units.sku)?;
                    let closed_at = line
                        .delivered_at
                        .map(|at| at + Duration::days(i64::from(window_days)));
                    if let Some(closed_at) = closed_at.filter(|c| requested_at > *c) {
                        return Err(OrderError::ReturnWindowClosed {
                            sku: units.sku.clone(),
                            closed_at,
                        });
                    }
                }
                OrderEvent::OrderReturnRequested {
                    return_id,
                    lines,
                    reason,
                    requested_at,
                }
            }
            OrderCommand::ReceiveReturn {
                return_id,
                warehouse,
                lines,
                received_at,
            } => return self.receive_return(return_id, warehouse, lines, received_at),
            OrderCommand::RequestRefund { refund_id, amount } => {
                if self.refunds.contains_key(&refund_id) {
                    return Err(OrderError::RefundAlreadyExists);
                }
                if amount.currency() != self.currency() {
                    return Err(OrderError::CurrencyMismatch);
                }
                if amount.is_zero() {
                    return Err(OrderError::RefundAmountZero);
                }
                let refundable = self.refundable();
                if self.captured.is_none() || amount.amount() > refundable.amount() {
                    return Err(OrderError::RefundExceedsCaptured { refundable });
                }
                OrderEvent::OrderRefundRequested {
                    refund_id,
                    amount,
                    reason: RefundReason::MerchantRequest,
                    lines: vec![],
                    shipping: None,
                    tax: None,
                }
            }
            OrderCommand::RecordRefund { refund_id, amount } => {
                let Some(refund) = self.pending_refund(refund_id)? else {
                    return Ok(vec![]);
                };
                if refund.amount != amount {
                    return Err(OrderError::RefundAmountMismatch {
                        expected: refund.amount,
                        actual: amount,
                    });
                }
                let total_refunded = self
                    .refunded
                    .unwrap_or(Money::zero(self.currency()))
                    .checked_add(amount)
                    .map_err(|_| OrderError::AmountOverflow)?;
                self.with_settled_status(OrderEvent::OrderRefunded {
                    refund_id: Some(refund_id),
                    amount,
                    total_refunded,
                    status: self.status,
                    lines: refund.lines.clone(),
                })
            }
            OrderCommand::RecordRefundFailed { refund_id } => {
                let Some(refund) = self.pending_refund(refund_id)? else {
                    return Ok(vec![]);
                };
                OrderEvent::OrderRefundFailed {
                    refund_id,
                    amount: refund.amount,
                }
            }
            OrderCommand::ErasePersonalData { requested_at } => {
                if self.customer_id.is_some() {
                    return Err(OrderError::CustomerOrder);
                }
                if self.personal_data_erased {
                    return Ok(vec![]);
                }
                OrderEvent::OrderPersonalDataErased { requested_at }
            }
        };
        Ok(vec![event])
    }

    /// The refund `refund_id` while it is pending (`None` once made or failed: recording it
    /// again changes nothing).
    fn pending_refund(
        &self,
        refund_id: crate::values::RefundId,
    ) -> Result<Option<&super::Refund>, OrderError> {
        let refund = self
            .refunds
            .get(&refund_id)
            .ok_or(OrderError::RefundNotFound)?;
        Ok((refund.state == RefundState::Pending).then_some(refund))
    }

    fn record_capture(
        &self,
        payment_id: crate::values::PaymentId,
        amount: Money,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        use OrderStatus as S;
        // Cancelled after the authorization: the order process captured before it learned of
        // the cancellation; the capture is recorded so that it is refunded.
        let cancelled_after_authorization =
            self.status == S::Cancelled && self.authorized.is_some();
        if !cancelled_after_authorization && self.status.in_checkout() {
            return Err(self.invalid("record payment captured for"));
        }
        if self.captured.is_some() {
            return Ok(vec![]);
        }
        let expected = self.authorized.ok_or_else(|| self.invalid("capture"))?;
        if amount != expected {
            return Err(OrderError::PaymentAmountMismatch {
                expected,
                actual: amount,
            });
        }
        Ok(self.with_refunds(
            vec![OrderEvent::OrderPaymentCaptured { payment_id, amount }],
            None,
        ))
    }

    fn cancel(&self, reason: super::CancellationReason) -> Result<Vec<OrderEvent>, OrderError> {
        if self.status == OrderStatus::Cancelled {
            return Err(OrderError::AlreadyCancelled);
        }
        let units = unshipped_units(&self.lines);
        if units.is_empty() {
            return Err(OrderError::CancelAfterShipment);
        }
        let value = self.value_of(&units)?;
        let shipped_any = self.lines.iter().any(|l| l.shipped > 0);
        let event = if shipped_any {
            self.with_settled_status(OrderEvent::OrderRemainderCancelled {
                reason,
                value: total_of(&value, self.currency()),
                lines: units,
                status: self.status,
            })
        } else {
            OrderEvent::OrderCancelled { reason }
        };
        // A whole order cancelled before anything shipped gives its shipping back too.
        let owed = OwedRefund {
            reason: RefundReason::Cancellation,
            lines: value,
            shipping: (!shipped_any).then_some(self.shipping_paid).flatten(),
        };
        Ok(self.with_refunds(vec![event], Some(owed)))
    }

    fn deliver(
        &self,
        tracking_number: Option<TrackingNumber>,
        delivered_at: DateTime<Utc>,
    ) -> Result<OrderEvent, OrderError> {
        if let Some(number) = &tracking_number {
            let shipment = self
                .shipments
                .iter()
                .find(|s| &s.tracking_number == number)
                .ok_or_else(|| OrderError::UnknownShipment(number.clone()))?;
            if shipment.delivered {
                return Err(OrderError::NothingToDeliver);
            }
        }
        let arriving: Vec<_> = self
            .shipments
            .iter()
            .filter(|s| !s.delivered)
            .filter(|s| {
                tracking_number
                    .as_ref()
                    .is_none_or(|n| &s.tracking_number == n)
            })
            .collect();
        if arriving.is_empty() {
            return Err(OrderError::NothingToDeliver);
        }
        if let Some(shipped_at) = arriving
            .iter()
            .filter_map(|s| s.shipped_at)
            .find(|at| *at > delivered_at)
        {
            return Err(OrderError::DeliveryBeforeShipment { shipped_at });
        }
        let units: Vec<LineUnits> = arriving
            .iter()
            .flat_map(|s| s.lines.iter().cloned())
            .collect();
        Ok(self.with_settled_status(OrderEvent::OrderDelivered {
            tracking_numbers: arriving.iter().map(|s| s.tracking_number.clone()).collect(),
            lines: merge_units(units),
            delivered_at: Some(delivered_at),
            status: self.status,
        }))
    }

    fn receive_return(
        &self,
        return_id: ReturnId,
        warehouse: crate::values::WarehouseId,
        lines: Vec<ReceivedLine>,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let Return {
            lines: announced,
            received,
        } = self
            .returns
            .get(&return_id)
            .ok_or(OrderError::ReturnNotFound)?;
        if *received {
            return Err(OrderError::ReturnAlreadyReceived);
        }
        if lines.is_empty() {
            return Err(OrderError::EmptyReturn);
        }
        // One entry per SKU and restock choice.
        let mut merged: Vec<ReceivedLine> = Vec::new();
        for line in lines {
            let announced_units = announced
                .iter()
                .find(|u| u.sku == line.sku)
                .map(|u| u.quantity.get())
                .ok_or_else(|| OrderError::UnknownLine(line.sku.clone()))?;
            let earlier: u32 = merged
                .iter()
                .filter(|m| m.sku == line.sku)
                .map(|m| m.quantity.get())
                .sum();
            if earlier + line.quantity.get() > announced_units {
                return Err(OrderError::ReceiptExceedsReturn {
                    sku: line.sku,
                    requested: announced_units,
                });
            }
            match merged
                .iter_mut()
                .find(|m| m.sku == line.sku && m.restock == line.restock)
            {
                Some(m) => {
                    m.quantity =
                        Quantity::new(m.quantity.get() + line.quantity.get()).map_err(|_| {
                            OrderError::ReceiptExceedsReturn {
                                sku: line.sku.clone(),
                                requested: announced_units,
                            }
                        })?
                }
                None => merged.push(line),
            }
        }
        let units: Vec<LineUnits> = merge_units(
            merged
                .iter()
                .map(|l| LineUnits {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                })
                .collect(),
        );
        let value = self.value_of(&units)?;
        let event = OrderEvent::OrderReturnReceived {
            return_id,
            warehouse,
            lines: merged,
            value: total_of(&value, self.currency()),
            received_at,
        };
        Ok(self.with_refunds(
            vec![event],
            Some(OwedRefund {
                reason: RefundReason::Return { return_id },
                lines: value,
                shipping: None,
            }),
        ))
    }

    /// Merges `lines` to one entry per SKU and checks each against `limit` of its line.
    fn merge(
        &self,
        lines: Vec<LineUnits>,
        limit: impl Fn(&super::LineProgress) -> u32,
        exceeded: impl Fn(Sku, u32) -> OrderError,
    ) -> Result<Vec<LineUnits>, OrderError> {
        let mut merged = Vec::new();
        for (sku, units) in count_units(lines) {
            let allowed = limit(self.line(&sku)?);
            match Quantity::new(u32::try_from(units).unwrap_or(u32::MAX)) {
                Ok(quantity) if units <= u64::from(allowed) => {
                    merged.push(LineUnits { sku, quantity })
                }
                _ => return Err(exceeded(sku, allowed)),
            }
        }
        Ok(merged)
    }
}

/// Units per SKU, in first-seen order.
fn count_units(lines: Vec<LineUnits>) -> Vec<(Sku, u64)> {
    let mut counted: Vec<(Sku, u64)> = Vec::with_capacity(lines.len());
    for line in lines {
        match counted.iter_mut().find(|(sku, _)| *sku == line.sku) {
            Some((_, n)) => *n += u64::from(line.quantity.get()),
            None => counted.push((line.sku, u64::from(line.quantity.get()))),
        }
    }
    counted
}

/// One entry per SKU, so an event states each line's units once (the sums are of units
/// already on the order, so they are quantities).
fn merge_units(lines: Vec<LineUnits>) -> Vec<LineUnits> {
    count_units(lines)
        .into_iter()
        .filter_map(|(sku, n)| {
            let quantity = Quantity::new(u32::try_from(n).ok()?).ok()?;
            Some(LineUnits { sku, quantity })
        })
        .collect()
}
