use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{LineUnits, OrderCommand, OrderError, OrderEvent, OrderLine, RefundLine, RefundReason};
use crate::money::Money;
use crate::personal::Personal;
use crate::pricing::unit_share;
use crate::values::{
    Carrier, CustomerId, Email, OrderId, PaymentId, RefundId, ReturnId, Sku, TrackingNumber,
};

/// Where an order is in its life (the aggregates README draws the state machine).
///
/// Checkout: `placed` → `awaiting_payment` → `payment_authorized` → `confirmed`, or
/// `stock_rejected` / `payment_declined` → `cancelled`. Fulfilment: `confirmed` →
/// `partially_shipped` → `shipped` → `delivered`, counted over the units left to fulfil
/// (ordered minus cancelled). After delivery the refund progress is the status:
/// `partially_refunded`, `refunded`. `cancelled` only when no unit ever shipped; cancelling
/// after a partial shipment cancels the unshipped rest and the order goes on as `shipped`.
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
    /// Every unit to fulfil shipped.
    Shipped,
    /// Every unit to fulfil delivered.
    Delivered,
    /// Delivered, and part of the captured amount refunded.
    PartiallyRefunded,
    /// Delivered, and the whole captured amount refunded.
    Refunded,
    /// Cancelled before any unit shipped.
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

    /// True while the checkout is still running (before confirmation or its failure).
    pub fn in_checkout(&self) -> bool {
        matches!(
            self,
            OrderStatus::Absent
                | OrderStatus::Placed
                | OrderStatus::StockRejected
                | OrderStatus::AwaitingPayment
                | OrderStatus::PaymentDeclined
                | OrderStatus::PaymentAuthorized
        )
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Progress of one line, in units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineProgress {
    /// The line.
    pub line: OrderLine,
    /// Stock reserved for it.
    pub reserved: bool,
    /// Units shipped.
    pub shipped: u32,
    /// Units delivered.
    #[serde(default)]
    pub delivered: u32,
    /// Units cancelled (never shipped).
    #[serde(default)]
    pub cancelled: u32,
    /// Units in a return, announced or received.
    #[serde(default)]
    pub in_returns: u32,
    /// Units received back.
    #[serde(default)]
    pub returned: u32,
    /// When its latest delivery arrived (the return window counts from it).
    #[serde(default)]
    pub delivered_at: Option<DateTime<Utc>>,
}

impl LineProgress {
    /// Units ordered and not cancelled.
    pub fn to_fulfil(&self) -> u32 {
        self.line.quantity.get().saturating_sub(self.cancelled)
    }

    /// Units neither shipped nor cancelled.
    pub fn unshipped(&self) -> u32 {
        self.to_fulfil().saturating_sub(self.shipped)
    }

    /// Delivered units not in a return yet.
    pub fn returnable(&self) -> u32 {
        self.delivered.saturating_sub(self.in_returns)
    }
}

/// One parcel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// Its tracking number (unique per order).
    pub tracking_number: TrackingNumber,
    /// Its carrier.
    pub carrier: Option<Carrier>,
    /// When it left (unknown for shipments recorded before version 1.1 of the event).
    pub shipped_at: Option<DateTime<Utc>>,
    /// Units per line.
    pub lines: Vec<LineUnits>,
    /// Whether it arrived.
    pub delivered: bool,
}

/// A return of units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Return {
    /// Units announced per line.
    pub lines: Vec<LineUnits>,
    /// Whether the units arrived (a return is received once).
    pub received: bool,
}

/// Where a refund is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    /// Requested; the payment has not made it yet.
    Pending,
    /// Made on the payment.
    Refunded,
    /// Refused by the gateway.
    Failed,
}

/// A refund of this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// Its amount.
    pub amount: Money,
    /// The units it pays back.
    pub lines: Vec<RefundLine>,
    /// Where it is.
    pub state: RefundState,
}

/// Money owed back for cancelled or returned units while nothing was captured yet; it is
/// requested when the capture is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwedRefund {
    /// What it pays back.
    pub reason: RefundReason,
    /// The units.
    pub lines: Vec<RefundLine>,
    /// The shipping (a whole order cancelled before it shipped).
    #[serde(default)]
    pub shipping: Option<Money>,
}

/// An order (aggregate id: the order UUID).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub(super) id: Option<OrderId>,
    pub(super) customer_id: Option<CustomerId>,
    #[serde(default)]
    pub(super) guest_email: Option<Personal<Email>>,
    pub(super) status: OrderStatus,
    pub(super) lines: Vec<LineProgress>,
    pub(super) total: Option<Money>,
    pub(super) payment_id: Option<PaymentId>,
    pub(super) authorized: Option<Money>,
    pub(super) captured: Option<Money>,
    pub(super) refunded: Option<Money>,
    #[serde(default)]
    pub(super) voided: bool,
    #[serde(default)]
    pub(super) shipments: Vec<Shipment>,
    #[serde(default)]
    pub(super) returns: BTreeMap<ReturnId, Return>,
    #[serde(default)]
    pub(super) refunds: BTreeMap<RefundId, Refund>,
    #[serde(default)]
    pub(super) owed: Vec<OwedRefund>,
    /// A guest's personal data was erased (`OrderPersonalDataErased`).
    #[serde(default)]
    pub(super) personal_data_erased: bool,
    /// What the customer pays for shipping.
    #[serde(default)]
    pub(super) shipping_paid: Option<Money>,
    /// The tax inside `shipping_paid`.
    #[serde(default)]
    pub(super) shipping_tax: Option<Money>,
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

    /// Who ordered (`None` for a guest).
    pub fn customer_id(&self) -> Option<CustomerId> {
        self.customer_id
    }

    /// A guest's email.
    pub fn guest_email(&self) -> Option<&Personal<Email>> {
        self.guest_email.as_ref()
    }

    /// Whether a guest's personal data on this order was erased.
    pub fn personal_data_erased(&self) -> bool {
        self.personal_data_erased
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

    /// Whether the authorization was voided.
    pub fn voided(&self) -> bool {
        self.voided
    }

    /// Shipments, in shipping order.
    pub fn shipments(&self) -> &[Shipment] {
        &self.shipments
    }

    /// Returns by id.
    pub fn returns(&self) -> &BTreeMap<ReturnId, Return> {
        &self.returns
    }

    /// Refunds by id.
    pub fn refunds(&self) -> &BTreeMap<RefundId, Refund> {
        &self.refunds
    }

    /// Sum of the refunds requested and not made or failed yet.
    pub fn pending_refunds(&self) -> i64 {
        self.refunds
            .values()
            .filter(|r| r.state == RefundState::Pending)
            .map(|r| r.amount.amount())
            .sum()
    }

    /// What can still be refunded: captured minus refunded minus pending refunds (zero
    /// before the capture is recorded).
    pub fn refundable(&self) -> Money {
        let Some(captured) = self.captured else {
            return Money::zero(self.currency());
        };
        let refunded = self.refunded.map_or(0, |m| m.amount());
        let left = captured.amount() - refunded - self.pending_refunds();
        Money::new(left.max(0), captured.currency()).unwrap_or(Money::zero(captured.currency()))
    }

    pub(super) fn currency(&self) -> crate::money::Currency {
        self.total
            .map(|t| t.currency())
            .unwrap_or(crate::money::Currency::EUR)
    }

    pub(super) fn line(&self, sku: &Sku) -> Result<&LineProgress, OrderError> {
        self.lines
            .iter()
            .find(|l| &l.line.sku == sku)
            .ok_or_else(|| OrderError::UnknownLine(sku.clone()))
    }

    fn line_mut(&mut self, sku: &Sku) -> Option<&mut LineProgress> {
        self.lines.iter_mut().find(|l| &l.line.sku == sku)
    }

    /// The status the fulfilment and refund progress give (after confirmation); during the
    /// checkout and after a cancellation the status stays as it is.
    pub(super) fn settled_status(&self) -> OrderStatus {
        if self.status.in_checkout() || self.status == OrderStatus::Cancelled {
            return self.status;
        }
        let to_fulfil: u32 = self.lines.iter().map(LineProgress::to_fulfil).sum();
        let shipped: u32 = self.lines.iter().map(|l| l.shipped).sum();
        let delivered: u32 = self.lines.iter().map(|l| l.delivered).sum();
        if shipped == 0 {
            OrderStatus::Confirmed
        } else if shipped < to_fulfil {
            OrderStatus::PartiallyShipped
        } else if delivered < to_fulfil {
            OrderStatus::Shipped
        } else {
            match (self.refunded, self.captured) {
                (Some(r), _) if r.is_zero() => OrderStatus::Delivered,
                (None, _) => OrderStatus::Delivered,
                (Some(r), Some(c)) if r == c => OrderStatus::Refunded,
                _ => OrderStatus::PartiallyRefunded,
            }
        }
    }

    /// The money owed for `units` of their lines: their shares of what each line cost the
    /// customer (after its discount, with its tax), so paying back every unit of a line in
    /// any steps gives back exactly what it cost.
    pub(super) fn value_of(&self, units: &[LineUnits]) -> Result<Vec<RefundLine>, OrderError> {
        units
            .iter()
            .map(|u| {
                let line = self.line(&u.sku)?;
                // Units already paid back (cancelled or received) took their shares first.
                let done = line.cancelled + line.returned;
                let paid = line.line.paid();
                let share = unit_share(
                    paid.amount(),
                    line.line.quantity.get(),
                    done,
                    u.quantity.get(),
                );
                let amount =
                    Money::new(share, paid.currency()).map_err(|_| OrderError::AmountOverflow)?;
                let quantity = line.line.quantity.get();
                let tax = line.line.tax.and_then(|t| {
                    let share = unit_share(t.amount(), quantity, done, u.quantity.get());
                    Money::new(share, t.currency()).ok()
                });
                Ok(RefundLine {
                    sku: u.sku.clone(),
                    quantity: u.quantity,
                    amount,
                    tax,
                })
            })
            .collect()
    }

    /// The id of the next refund this order requests.
    pub(super) fn next_refund_id(&self) -> RefundId {
        let order = self.id.map(|id| id.as_uuid()).unwrap_or_default();
        let n = self.refunds.len() + 1;
        RefundId::new(uuid::Uuid::new_v5(&order, format!("refund-{n}").as_bytes()))
    }

    fn owe(&mut self, reason: RefundReason, lines: Vec<RefundLine>, shipping: Option<Money>) {
        let shipping = shipping.filter(|s| !s.is_zero());
        if self.captured.is_none() && (!lines.is_empty() || shipping.is_some()) {
            self.owed.push(OwedRefund {
                reason,
                lines,
                shipping,
            });
        }
    }
}

/// The value of `lines`, in the order's currency.
pub(super) fn total_of(lines: &[RefundLine], currency: crate::money::Currency) -> Money {
    Money::sum(currency, lines.iter().map(|l| l.amount)).unwrap_or(Money::zero(currency))
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
                guest_email,
                lines,
                total,
                shipping,
                ..
            } => {
                self.shipping_paid = shipping.as_ref().map(|s| s.total);
                self.shipping_tax = shipping.as_ref().map(|s| s.tax);
                self.id = Some(order_id);
                self.customer_id = customer_id;
                self.guest_email = guest_email;
                self.lines = lines
                    .into_iter()
                    .map(|line| LineProgress {
                        line,
                        reserved: false,
                        shipped: 0,
                        delivered: 0,
                        cancelled: 0,
                        in_returns: 0,
                        returned: 0,
                        delivered_at: None,
                    })
                    .collect();
                self.total = Some(total);
                self.status = OrderStatus::Placed;
            }
            OrderEvent::OrderLineReserved { sku, status } => {
                if let Some(line) = self.line_mut(&sku) {
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
            OrderEvent::OrderPaymentVoided { .. } => self.voided = true,
            OrderEvent::OrderCancelled { .. } => {
                let units: Vec<LineUnits> = unshipped_units(&self.lines);
                let owed = self.value_of(&units).unwrap_or_default();
                for line in &mut self.lines {
                    line.cancelled += line.unshipped();
                }
                self.owe(RefundReason::Cancellation, owed, self.shipping_paid);
                self.status = OrderStatus::Cancelled;
            }
            OrderEvent::OrderRemainderCancelled { lines, status, .. } => {
                let owed = self.value_of(&lines).unwrap_or_default();
                for units in &lines {
                    if let Some(line) = self.line_mut(&units.sku) {
                        line.cancelled += units.quantity.get();
                    }
                }
                self.owe(RefundReason::Cancellation, owed, None);
                self.status = status;
            }
            OrderEvent::OrderShipped {
                tracking_number,
                carrier,
                shipped_at,
                lines,
                status,
                ..
            } => {
                for units in &lines {
                    if let Some(line) = self.line_mut(&units.sku) {
                        line.shipped = line.shipped.saturating_add(units.quantity.get());
                    }
                }
                self.shipments.push(Shipment {
                    tracking_number,
                    carrier,
                    shipped_at,
                    lines,
                    delivered: false,
                });
                self.status = status;
            }
            OrderEvent::OrderDelivered {
                tracking_numbers,
                lines,
                delivered_at,
                status,
            } => {
                if lines.is_empty() {
                    // An upcast 1.0 event: everything shipped arrived.
                    for line in &mut self.lines {
                        line.delivered = line.shipped;
                    }
                    for shipment in &mut self.shipments {
                        shipment.delivered = true;
                    }
                } else {
                    for units in &lines {
                        if let Some(line) = self.line_mut(&units.sku) {
                            line.delivered = line.delivered.saturating_add(units.quantity.get());
                            line.delivered_at = delivered_at.or(line.delivered_at);
                        }
                    }
                    for shipment in &mut self.shipments {
                        if tracking_numbers.contains(&shipment.tracking_number) {
                            shipment.delivered = true;
                        }
                    }
                }
                self.status = status;
            }
            OrderEvent::OrderReturnRequested {
                return_id, lines, ..
            } => {
                for units in &lines {
                    if let Some(line) = self.line_mut(&units.sku) {
                        line.in_returns += units.quantity.get();
                    }
                }
                self.returns.insert(
                    return_id,
                    Return {
                        lines,
                        received: false,
                    },
                );
            }
            OrderEvent::OrderReturnReceived {
                return_id, lines, ..
            } => {
                // Valued before the units count as returned (as `decide` valued them).
                let units: Vec<LineUnits> = lines
                    .iter()
                    .map(|l| LineUnits {
                        sku: l.sku.clone(),
                        quantity: l.quantity,
                    })
                    .collect();
                let owed = self.value_of(&units).unwrap_or_default();
                let announced = self
                    .returns
                    .get(&return_id)
                    .map(|r| r.lines.clone())
                    .unwrap_or_default();
                for units in &announced {
                    let received: u32 = lines
                        .iter()
                        .filter(|l| l.sku == units.sku)
                        .map(|l| l.quantity.get())
                        .sum();
                    if let Some(line) = self.line_mut(&units.sku) {
                        // Announced units that never came back stay with the customer.
                        line.in_returns = line
                            .in_returns
                            .saturating_sub(units.quantity.get().saturating_sub(received));
                        line.returned += received;
                    }
                }
                self.owe(RefundReason::Return { return_id }, owed, None);
                if let Some(r) = self.returns.get_mut(&return_id) {
                    r.received = true;
                }
            }
            OrderEvent::OrderRefundRequested {
                refund_id,
                amount,
                reason,
                lines,
                ..
            } => {
                if let Some(i) = self.owed.iter().position(|o| o.reason == reason) {
                    self.owed.remove(i);
                }
                self.refunds.insert(
                    refund_id,
                    Refund {
                        amount,
                        lines,
                        state: RefundState::Pending,
                    },
                );
            }
            OrderEvent::OrderRefunded {
                refund_id,
                total_refunded,
                status,
                ..
            } => {
                if let Some(refund) = refund_id.and_then(|id| self.refunds.get_mut(&id)) {
                    refund.state = RefundState::Refunded;
                }
                self.refunded = Some(total_refunded);
                self.status = status;
            }
            OrderEvent::OrderRefundFailed { refund_id, .. } => {
                if let Some(refund) = self.refunds.get_mut(&refund_id) {
                    refund.state = RefundState::Failed;
                }
            }
            OrderEvent::OrderPersonalDataErased { .. } => {
                self.personal_data_erased = true;
                if let Some(email) = &self.guest_email {
                    self.guest_email = Some(Personal::erased(email.subject()));
                }
            }
        }
    }
}

/// Each line's units neither shipped nor cancelled.
pub(super) fn unshipped_units(lines: &[LineProgress]) -> Vec<LineUnits> {
    lines
        .iter()
        .filter_map(|l| {
            crate::values::Quantity::new(l.unshipped())
                .ok()
                .map(|quantity| LineUnits {
                    sku: l.line.sku.clone(),
                    quantity,
                })
        })
        .collect()
}
