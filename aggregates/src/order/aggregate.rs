use std::collections::BTreeSet;
use std::fmt;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{OrderCommand, OrderError, OrderEvent, OrderLine, ShipmentLine};
use crate::money::Money;
use crate::values::{CustomerId, OrderId, PaymentId, Sku};

/// Where an order is in its life.
///
/// ```text
/// placed ─(all lines reserved)─> awaiting_payment ─(authorized)─> payment_authorized
///   │                               │                                  │ (confirm)
///   └─(line rejected)─> stock_rejected  └─(declined)─> payment_declined      v
///                                                         confirmed ─(ship)─> partially_shipped ─> shipped
///                                                                                                  │ (deliver)
///                  cancelled <─(cancel before shipment*)                         delivered ─(refund)─> partially_refunded ─> refunded
///
/// * a confirmed order only once its payment capture is recorded
/// ```
///
/// Refunds are also accepted in `confirmed`, `partially_shipped`, `shipped` and (once
/// captured) `cancelled`; there they leave the status as it is, since fulfilment (or the
/// cancellation) still decides it, and the refunded amount tells the refund progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Not placed yet.
    #[default]
    Absent,
    /// Placed; stock is being reserved.
    Placed,
    /// A line could not be reserved; the order will be cancelled.
    StockRejected,
    /// Every line is reserved; payment is being authorized.
    AwaitingPayment,
    /// The payment was declined; the order will be cancelled.
    PaymentDeclined,
    /// The payment is authorized; the order can be confirmed.
    PaymentAuthorized,
    /// Confirmed; ready to ship.
    Confirmed,
    /// Some units shipped.
    PartiallyShipped,
    /// Every unit shipped.
    Shipped,
    /// Delivered.
    Delivered,
    /// Delivered, and part of the captured amount refunded.
    PartiallyRefunded,
    /// Delivered, and the whole captured amount refunded.
    Refunded,
    /// Cancelled before shipment.
    Cancelled,
}

impl OrderStatus {
    /// The snake_case name used in JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            OrderStatus::Absent => "absent",
            OrderStatus::Placed => "placed",
            OrderStatus::StockRejected => "stock_rejected",
            OrderStatus::AwaitingPayment => "awaiting_payment",
            OrderStatus::PaymentDeclined => "payment_declined",
            OrderStatus::PaymentAuthorized => "payment_authorized",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::PartiallyShipped => "partially_shipped",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::PartiallyRefunded => "partially_refunded",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// True once any unit has shipped (cancellation is no longer possible).
    pub fn is_shipped(&self) -> bool {
        matches!(
            self,
            OrderStatus::PartiallyShipped
                | OrderStatus::Shipped
                | OrderStatus::Delivered
                | OrderStatus::PartiallyRefunded
                | OrderStatus::Refunded
        )
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reservation and shipment progress of one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineProgress {
    /// The line.
    pub line: OrderLine,
    /// Stock reserved for it.
    pub reserved: bool,
    /// Units shipped so far.
    pub shipped: u32,
}

/// An order (aggregate id: the order UUID).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    id: Option<OrderId>,
    customer_id: Option<CustomerId>,
    status: OrderStatus,
    lines: Vec<LineProgress>,
    total: Option<Money>,
    payment_id: Option<PaymentId>,
    authorized: Option<Money>,
    captured: Option<Money>,
    refunded: Option<Money>,
}

impl Order {
    /// The most lines an order may have.
    pub const MAX_LINES: usize = 50;

    /// Current status.
    pub fn status(&self) -> OrderStatus {
        self.status
    }

    /// The order id, once placed.
    pub fn id(&self) -> Option<OrderId> {
        self.id
    }

    /// Who ordered.
    pub fn customer_id(&self) -> Option<CustomerId> {
        self.customer_id
    }

    /// Lines with their progress.
    pub fn lines(&self) -> &[LineProgress] {
        &self.lines
    }

    /// Order total, once placed.
    pub fn total(&self) -> Option<Money> {
        self.total
    }

    /// Authorized amount, if any.
    pub fn authorized(&self) -> Option<Money> {
        self.authorized
    }

    /// Captured amount, if any.
    pub fn captured(&self) -> Option<Money> {
        self.captured
    }

    /// Refunded so far, if any refund happened.
    pub fn refunded(&self) -> Option<Money> {
        self.refunded
    }

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

    fn line(&self, sku: &Sku) -> Result<&LineProgress, OrderError> {
        self.lines
            .iter()
            .find(|l| &l.line.sku == sku)
            .ok_or_else(|| OrderError::UnknownLine(sku.clone()))
    }

    fn total_or_missing(&self) -> Result<Money, OrderError> {
        self.total.ok_or(OrderError::NotFound)
    }

    fn place(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        let OrderCommand::PlaceOrder {
            order_id,
            customer_id,
            lines,
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
            });
        }
        let total = Money::sum(currency, placed.iter().map(|l| l.line_total))
            .map_err(|_| OrderError::AmountOverflow)?;
        Ok(vec![OrderEvent::OrderPlaced {
            order_id,
            customer_id,
            lines: placed,
            total,
            shipping_address: shipping_address.into(),
            payment_method,
            placed_at,
        }])
    }

    fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
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
                // A checkout of an earlier version sent the capture together with the
                // confirmation, so a cancellation could overtake it; the capture must still
                // be recorded so the money can be refunded.
                let cancelled_after_authorization =
                    self.status == S::Cancelled && self.authorized.is_some();
                if !cancelled_after_authorization {
                    self.require(
                        &[
                            S::Confirmed,
                            S::PartiallyShipped,
                            S::Shipped,
                            S::Delivered,
                            S::PartiallyRefunded,
                            S::Refunded,
                        ],
                        "record payment captured for",
                    )?;
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
                OrderEvent::OrderPaymentCaptured { payment_id, amount }
            }
            OrderCommand::ConfirmOrder => {
                self.require(&[S::PaymentAuthorized], "confirm")?;
                OrderEvent::OrderConfirmed
            }
            OrderCommand::CancelOrder { reason } => {
                if self.status == S::Cancelled {
                    return Err(OrderError::AlreadyCancelled);
                }
                if self.status.is_shipped() {
                    return Err(OrderError::CancelAfterShipment);
                }
                // Between confirmation and the recorded capture the checkout is moving the
                // money; refusing here means a cancellation either lands before the
                // confirmation (the checkout voids) or after the capture (refund path), so
                // the checkout never has to refund.
                if self.status == S::Confirmed && self.captured.is_none() {
                    return Err(OrderError::CapturePending);
                }
                OrderEvent::OrderCancelled { reason }
            }
            OrderCommand::ShipOrder {
                tracking_number,
                lines,
            } => {
                self.require(&[S::Confirmed, S::PartiallyShipped], "ship")?;
                if lines.is_empty() {
                    return Err(OrderError::EmptyShipment);
                }
                let mut shipped_now: Vec<(Sku, u32)> = Vec::new();
                for shipment in &lines {
                    let line = self.line(&shipment.sku)?;
                    let earlier: u32 = shipped_now
                        .iter()
                        .filter(|(sku, _)| sku == &shipment.sku)
                        .map(|(_, n)| *n)
                        .sum();
                    let remaining = line
                        .line
                        .quantity
                        .get()
                        .saturating_sub(line.shipped)
                        .saturating_sub(earlier);
                    if shipment.quantity.get() > remaining {
                        return Err(OrderError::ShipmentExceedsOrdered {
                            sku: shipment.sku.clone(),
                            remaining,
                        });
                    }
                    shipped_now.push((shipment.sku.clone(), shipment.quantity.get()));
                }
                let shipped_after = |progress: &LineProgress| -> u32 {
                    progress.shipped
                        + shipped_now
                            .iter()
                            .filter(|(sku, _)| sku == &progress.line.sku)
                            .map(|(_, n)| *n)
                            .sum::<u32>()
                };
                let completed_lines = self
                    .lines
                    .iter()
                    .filter(|p| {
                        p.shipped < p.line.quantity.get()
                            && shipped_after(p) == p.line.quantity.get()
                    })
                    .map(|p| p.line.sku.clone())
                    .collect();
                let all_shipped = self
                    .lines
                    .iter()
                    .all(|p| shipped_after(p) == p.line.quantity.get());
                let status = if all_shipped {
                    S::Shipped
                } else {
                    S::PartiallyShipped
                };
                OrderEvent::OrderShipped {
                    tracking_number,
                    lines: merge_shipment(lines),
                    completed_lines,
                    status,
                }
            }
            OrderCommand::DeliverOrder => {
                self.require(&[S::Shipped], "deliver")?;
                OrderEvent::OrderDelivered
            }
            OrderCommand::RefundOrder { amount } => {
                // Refundable whenever money was captured and not yet fully refunded: a
                // cancelled order only if it was captured (confirmed before cancellation).
                let cancelled_after_capture =
                    self.status == S::Cancelled && self.captured.is_some();
                if !cancelled_after_capture {
                    self.require(
                        &[
                            S::Confirmed,
                            S::PartiallyShipped,
                            S::Shipped,
                            S::Delivered,
                            S::PartiallyRefunded,
                        ],
                        "refund",
                    )?;
                }
                let currency = self.total_or_missing()?.currency();
                if amount.currency() != currency {
                    return Err(OrderError::CurrencyMismatch);
                }
                if amount.is_zero() {
                    return Err(OrderError::RefundAmountZero);
                }
                let captured = self.captured.unwrap_or(Money::zero(currency));
                let refunded = self.refunded.unwrap_or(Money::zero(currency));
                let refundable = captured
                    .checked_sub(refunded)
                    .unwrap_or(Money::zero(currency));
                if amount.amount() > refundable.amount() {
                    return Err(OrderError::RefundExceedsCaptured { refundable });
                }
                let total_refunded = refunded
                    .checked_add(amount)
                    .map_err(|_| OrderError::AmountOverflow)?;
                // Refund progress only becomes the status once nothing is left to fulfil
                // (after delivery); before that, and after a cancellation, the status stays
                // and the amounts (`total_refunded`) tell the refund progress.
                let status = match self.status {
                    S::Delivered | S::PartiallyRefunded if total_refunded == captured => {
                        S::Refunded
                    }
                    S::Delivered | S::PartiallyRefunded => S::PartiallyRefunded,
                    other => other,
                };
                OrderEvent::OrderRefunded {
                    amount,
                    total_refunded,
                    status,
                }
            }
        };
        Ok(vec![event])
    }
}

/// One entry per SKU, in first-seen order, so the event states each line's units once.
fn merge_shipment(lines: Vec<ShipmentLine>) -> Vec<ShipmentLine> {
    let mut merged: Vec<ShipmentLine> = Vec::with_capacity(lines.len());
    for line in lines {
        match merged.iter_mut().find(|m| m.sku == line.sku) {
            Some(existing) => {
                // Bounded by the line quantity, which was checked above.
                if let Ok(sum) =
                    crate::values::Quantity::new(existing.quantity.get() + line.quantity.get())
                {
                    existing.quantity = sum;
                }
            }
            None => merged.push(line),
        }
    }
    merged
}

impl Aggregate for Order {
    const TYPE: &'static str = "Order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;
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
            OrderEvent::OrderPlaced {
                order_id,
                customer_id,
                lines,
                total,
                ..
            } => {
                self.id = Some(order_id);
                self.customer_id = Some(customer_id);
                self.lines = lines
                    .into_iter()
                    .map(|line| LineProgress {
                        line,
                        reserved: false,
                        shipped: 0,
                    })
                    .collect();
                self.total = Some(total);
                self.status = OrderStatus::Placed;
            }
            OrderEvent::OrderLineReserved { sku, status } => {
                if let Some(line) = self.lines.iter_mut().find(|l| l.line.sku == sku) {
                    line.reserved = true;
                }
                self.status = status;
            }
            OrderEvent::OrderLineRejected { .. } => self.status = OrderStatus::StockRejected,
            OrderEvent::OrderPaymentAuthorized { payment_id, amount } => {
                self.payment_id = Some(payment_id);
                self.authorized = Some(amount);
                self.status = OrderStatus::PaymentAuthorized;
            }
            OrderEvent::OrderPaymentDeclined { payment_id, .. } => {
                self.payment_id = Some(payment_id);
                self.status = OrderStatus::PaymentDeclined;
            }
            OrderEvent::OrderConfirmed => self.status = OrderStatus::Confirmed,
            OrderEvent::OrderPaymentCaptured { amount, .. } => self.captured = Some(amount),
            OrderEvent::OrderCancelled { .. } => self.status = OrderStatus::Cancelled,
            OrderEvent::OrderShipped { lines, status, .. } => {
                for shipment in lines {
                    if let Some(line) = self.lines.iter_mut().find(|l| l.line.sku == shipment.sku) {
                        line.shipped = line.shipped.saturating_add(shipment.quantity.get());
                    }
                }
                self.status = status;
            }
            OrderEvent::OrderDelivered => self.status = OrderStatus::Delivered,
            OrderEvent::OrderRefunded {
                total_refunded,
                status,
                ..
            } => {
                self.refunded = Some(total_refunded);
                self.status = status;
            }
        }
    }
}
