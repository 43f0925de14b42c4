use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ProcessCommand, ProcessEvent, ProcessInput, TargetedCommand};
use crate::money::Money;
use crate::order::{CancellationReason, OrderCommand};
use crate::payment::PaymentCommand;
use crate::promotion::PromotionCommand;
use crate::stock::StockCommand;
use crate::values::{OrderId, PaymentId, PaymentMethodToken, PromotionId, Quantity, RefundId, Sku};

/// Tunables of the order process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessPolicy {
    /// How long stock stays reserved waiting for payment; also the payment deadline.
    pub reservation_ttl: Duration,
}

impl Default for ProcessPolicy {
    fn default() -> Self {
        ProcessPolicy {
            reservation_ttl: Duration::minutes(15),
        }
    }
}

/// Where an order's process is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessPhase {
    /// No `OrderPlaced` seen yet.
    #[default]
    NotStarted,
    /// Waiting for every line's reservation outcome.
    Reserving,
    /// Every line reserved; waiting for the payment outcome.
    Authorizing,
    /// Payment authorized, `ConfirmOrder` sent; waiting for `OrderConfirmed` (or an
    /// `OrderCancelled` that won the race).
    Confirming,
    /// Order confirmed, `CapturePayment` sent; waiting for the capture.
    Capturing,
    /// Order confirmed, stock reserved, payment captured: the checkout is done and the
    /// process follows fulfilment (commits shipped units, releases cancelled ones, restocks
    /// returns, makes refunds) until the order is cancelled.
    Completed,
    /// Cancelling (the checkout gave up, or someone cancelled the order): waiting for
    /// reservations to be released and the money given back (an authorization voided, a
    /// capture refunded in full).
    Compensating,
    /// Order cancelled, every reservation released, nothing kept: the payment declined,
    /// voided, never requested, or refunded in full (final).
    Cancelled,
}

/// Reservation progress of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineReservation {
    /// `ReserveStock` sent, no outcome yet.
    Requested,
    /// Units held.
    Reserved,
    /// Not enough stock; nothing held.
    Rejected,
    /// `ReleaseReservation` sent.
    ReleaseRequested,
    /// Units given back.
    Released,
}

/// Payment progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentProgress {
    /// No `AuthorizePayment` sent.
    #[default]
    NotRequested,
    /// `AuthorizePayment` sent, no outcome yet.
    Requested,
    /// Authorized; captured only once the order is confirmed (the capture is requested in
    /// `capturing`, and may still arrive after a cancellation, which then refunds it).
    Authorized,
    /// Declined.
    Declined,
    /// Captured.
    Captured,
    /// Authorized too late, or the order was cancelled before confirmation; `VoidPayment`
    /// sent.
    VoidRequested,
    /// Voided.
    Voided,
}

/// Where one refund of the order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundProgress {
    /// `RefundPayment` sent.
    Requested,
    /// Made, and recorded on the order.
    Refunded,
    /// Refused by the gateway, and recorded on the order.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Line {
    quantity: Quantity,
    reservation: LineReservation,
}

/// The state of one checkout (one per order), serializable so the runtime can persist it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderProcess {
    order_id: Option<OrderId>,
    phase: ProcessPhase,
    lines: BTreeMap<Sku, Line>,
    total: Option<Money>,
    payment_method: Option<PaymentMethodToken>,
    payment_id: Option<PaymentId>,
    payment: PaymentProgress,
    deadline: Option<DateTime<Utc>>,
    cancel_reason: Option<CancellationReason>,
    processed: BTreeSet<Uuid>,
    /// Whether the order recorded the authorization (so it can record a void).
    #[serde(default)]
    authorization_recorded: bool,
    /// The captured amount, once captured.
    #[serde(default)]
    captured: Option<Money>,
    /// Refunded on the payment so far (requested by the order).
    #[serde(default)]
    refunded: Option<Money>,
    /// The order's refunds, by id.
    #[serde(default)]
    refunds: BTreeMap<RefundId, RefundProgress>,
    /// The promotions applied to the order (their uses are given back on cancellation).
    #[serde(default)]
    promotions: Vec<PromotionId>,
}

/// The outcome of handling one input: the next state and the commands to send, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessDecision {
    /// The state to persist.
    pub process: OrderProcess,
    /// The commands to send (with deterministic ids).
    pub commands: Vec<ProcessCommand>,
}

impl OrderProcess {
    /// The payment id used for an order's checkout (UUID v5 of the order id).
    pub fn payment_id_for(order_id: OrderId) -> PaymentId {
        PaymentId::new(Uuid::new_v5(
            &order_id.as_uuid(),
            b"mercato.checkout.payment",
        ))
    }

    /// The order, once started.
    pub fn order_id(&self) -> Option<OrderId> {
        self.order_id
    }

    /// Current phase.
    pub fn phase(&self) -> ProcessPhase {
        self.phase
    }

    /// Payment progress.
    pub fn payment(&self) -> PaymentProgress {
        self.payment
    }

    /// The payment id, once started.
    pub fn payment_id(&self) -> Option<PaymentId> {
        self.payment_id
    }

    /// The order's refunds and where each is.
    pub fn refunds(&self) -> &BTreeMap<RefundId, RefundProgress> {
        &self.refunds
    }

    /// Reservation progress per line.
    pub fn lines(&self) -> BTreeMap<Sku, LineReservation> {
        self.lines
            .iter()
            .map(|(sku, line)| (sku.clone(), line.reservation))
            .collect()
    }

    /// Why the checkout is cancelling, if it is: the reason the order recorded once its
    /// `OrderCancelled` is seen, else the reason the checkout sent.
    pub fn cancel_reason(&self) -> Option<&CancellationReason> {
        self.cancel_reason.as_ref()
    }

    /// When the runtime must feed [`ProcessEvent::PaymentDeadlinePassed`], while it still
    /// matters (reserving or authorizing).
    pub fn deadline(&self) -> Option<DateTime<Utc>> {
        matches!(
            self.phase,
            ProcessPhase::Reserving | ProcessPhase::Authorizing
        )
        .then_some(self.deadline)
        .flatten()
    }

    /// True once the order is cancelled and everything is given back (nothing can follow).
    pub fn is_finished(&self) -> bool {
        self.phase == ProcessPhase::Cancelled
    }

    /// Handles one input. Pure: the same state and input always give the same decision.
    ///
    /// An input whose `event_id` was already handled yields the unchanged state and no
    /// commands: the runtime stores the new state and its commands together, so a
    /// redelivery after that needs nothing; a redelivery before it replays from the old
    /// state and yields identical commands with identical ids. Inputs for another order, or
    /// that are meaningless in the current phase, change nothing.
    pub fn handle(&self, input: &ProcessInput, policy: &ProcessPolicy) -> ProcessDecision {
        let unchanged = || ProcessDecision {
            process: self.clone(),
            commands: Vec::new(),
        };
        if self.processed.contains(&input.event_id) {
            return unchanged();
        }
        if let Some(order_id) = self.order_id {
            if order_id != input.event.order_id() {
                return unchanged();
            }
        }
        let mut next = self.clone();
        let mut out = Outbox {
            event_id: input.event_id,
            commands: Vec::new(),
        };
        next.step(&input.event, policy, &mut out);
        if matches!(input.event, ProcessEvent::OrderCancelled { .. }) {
            next.release_promotions(&mut out);
        }
        next.processed.insert(input.event_id);
        next.finish_compensation();
        ProcessDecision {
            process: next,
            commands: out.commands,
        }
    }

    fn step(&mut self, event: &ProcessEvent, policy: &ProcessPolicy, out: &mut Outbox) {
        use ProcessPhase as P;
        match (self.phase, event) {
            (
                P::NotStarted,
                ProcessEvent::OrderPlaced {
                    order_id,
                    lines,
                    total,
                    payment_method,
                    placed_at,
                    promotions,
                },
            ) => {
                let expires_at = *placed_at + policy.reservation_ttl;
                self.order_id = Some(*order_id);
                self.promotions = promotions.clone();
                self.phase = P::Reserving;
                self.total = Some(*total);
                self.payment_method = Some(payment_method.clone());
                self.payment_id = Some(Self::payment_id_for(*order_id));
                self.deadline = Some(expires_at);
                for line in lines {
                    // A repeated SKU is merged by the order already; keep the first.
                    if self.lines.contains_key(&line.sku) {
                        continue;
                    }
                    self.lines.insert(
                        line.sku.clone(),
                        Line {
                            quantity: line.quantity,
                            reservation: LineReservation::Requested,
                        },
                    );
                    out.stock(
                        &format!("reserve:{}", line.sku),
                        &line.sku,
                        StockCommand::ReserveStock {
                            sku: line.sku.clone(),
                            order_id: *order_id,
                            quantity: line.quantity,
                            expires_at,
                        },
                    );
                }
            }
            (P::NotStarted, _) => {}
            (_, ProcessEvent::OrderPlaced { .. }) => {}
            (P::Confirming, ProcessEvent::OrderConfirmed { .. }) => {
                let Some(payment_id) = self.payment_id else {
                    return;
                };
                self.phase = P::Capturing;
                out.payment("capture", payment_id, PaymentCommand::CapturePayment);
            }
            (_, ProcessEvent::OrderConfirmed { .. }) => {}
            (
                P::Reserving | P::Authorizing | P::Confirming,
                ProcessEvent::OrderCancelled { reason, .. },
            ) => {
                // Cancelled by someone else (a customer or the merchant): undo without
                // sending a CancelOrder of our own.
                self.phase = P::Compensating;
                self.cancel_reason = Some(reason.clone());
                self.release_lines(out, |state| {
                    matches!(
                        state,
                        LineReservation::Reserved | LineReservation::Requested
                    )
                });
                if self.payment == PaymentProgress::Authorized {
                    self.void(out);
                }
            }
            (P::Capturing | P::Completed, ProcessEvent::OrderCancelled { reason, .. }) => {
                // Cancelled after the confirmation, before any unit shipped: every line is
                // held, and the money comes back as a refund the order requests (with the
                // cancellation once captured, or when the capture in flight is recorded).
                self.phase = P::Compensating;
                self.cancel_reason = Some(reason.clone());
                self.release_lines(out, |state| state == LineReservation::Reserved);
            }
            (P::Compensating | P::Cancelled, ProcessEvent::OrderCancelled { reason, .. }) => {
                // Our own CancelOrder, or an outside one that overtook it: the releases
                // are already sent; keep the reason the order recorded.
                self.cancel_reason = Some(reason.clone());
            }
            (phase, ProcessEvent::StockReserved { sku, .. }) => {
                let Some(line) = self.lines.get_mut(sku) else {
                    return;
                };
                if line.reservation != LineReservation::Requested {
                    return;
                }
                match phase {
                    P::Reserving => {
                        line.reservation = LineReservation::Reserved;
                        self.order(
                            out,
                            &format!("record-reserved:{sku}"),
                            OrderCommand::RecordStockReserved { sku: sku.clone() },
                        );
                        if self.all_lines(LineReservation::Reserved) {
                            self.request_payment(out);
                        }
                    }
                    _ => {
                        // Reserved after the checkout gave up: give it back.
                        line.reservation = LineReservation::ReleaseRequested;
                        self.release(out, sku);
                    }
                }
            }
            (
                phase,
                ProcessEvent::StockRejected {
                    sku,
                    requested,
                    available,
                    ..
                },
            ) => {
                let Some(line) = self.lines.get_mut(sku) else {
                    return;
                };
                if line.reservation != LineReservation::Requested {
                    return;
                }
                line.reservation = LineReservation::Rejected;
                if phase == P::Reserving {
                    self.order(
                        out,
                        &format!("record-rejected:{sku}"),
                        OrderCommand::RecordStockRejected {
                            sku: sku.clone(),
                            requested: *requested,
                            available: *available,
                        },
                    );
                    self.compensate(out, CancellationReason::OutOfStock { sku: sku.clone() });
                }
            }
            (_, ProcessEvent::StockReleased { sku, .. }) => {
                if let Some(line) = self.lines.get_mut(sku) {
                    if matches!(
                        line.reservation,
                        LineReservation::Reserved | LineReservation::ReleaseRequested
                    ) {
                        line.reservation = LineReservation::Released;
                    }
                }
            }
            (
                phase,
                ProcessEvent::PaymentAuthorized {
                    payment_id, amount, ..
                },
            ) => {
                if Some(*payment_id) != self.payment_id
                    || self.payment != PaymentProgress::Requested
                {
                    return;
                }
                if phase == P::Authorizing {
                    self.payment = PaymentProgress::Authorized;
                    self.authorization_recorded = true;
                    self.phase = P::Confirming;
                    self.order(
                        out,
                        "record-authorized",
                        OrderCommand::RecordPaymentAuthorized {
                            payment_id: *payment_id,
                            amount: *amount,
                        },
                    );
                    // No capture yet: a cancellation may still win the race against the
                    // confirmation, and money must only move for a confirmed order.
                    self.order(out, "confirm", OrderCommand::ConfirmOrder);
                } else {
                    // Authorized after the checkout gave up: release the hold on the card.
                    self.void(out);
                }
            }
            (
                phase,
                ProcessEvent::PaymentDeclined {
                    payment_id, reason, ..
                },
            ) => {
                if Some(*payment_id) != self.payment_id
                    || self.payment != PaymentProgress::Requested
                {
                    return;
                }
                self.payment = PaymentProgress::Declined;
                if phase == P::Authorizing {
                    self.order(
                        out,
                        "record-declined",
                        OrderCommand::RecordPaymentDeclined {
                            payment_id: *payment_id,
                            reason: *reason,
                        },
                    );
                    self.compensate(out, CancellationReason::PaymentDeclined { reason: *reason });
                }
            }
            (
                phase,
                ProcessEvent::PaymentCaptured {
                    payment_id, amount, ..
                },
            ) => {
                // Only a requested capture arrives: in `capturing`, or in `compensating`
                // when the order was cancelled while it was in flight (the order then
                // requests its refund as it records the capture).
                if Some(*payment_id) != self.payment_id
                    || self.payment != PaymentProgress::Authorized
                {
                    return;
                }
                self.payment = PaymentProgress::Captured;
                self.captured = Some(*amount);
                if phase == P::Capturing {
                    self.phase = P::Completed;
                }
                self.order(
                    out,
                    "record-captured",
                    OrderCommand::RecordPaymentCaptured {
                        payment_id: *payment_id,
                        amount: *amount,
                    },
                );
            }
            (_, ProcessEvent::PaymentVoided { payment_id, .. }) => {
                if Some(*payment_id) == self.payment_id
                    && self.payment == PaymentProgress::VoidRequested
                {
                    self.payment = PaymentProgress::Voided;
                    if self.authorization_recorded {
                        self.order(
                            out,
                            "record-voided",
                            OrderCommand::RecordPaymentVoided {
                                payment_id: *payment_id,
                            },
                        );
                    }
                }
            }
            (_, ProcessEvent::OrderShipped { lines, .. }) => {
                for line in lines {
                    self.stock_command(
                        out,
                        &format!("commit:{}", line.sku),
                        &line.sku,
                        |sku, order_id| StockCommand::CommitReservation {
                            sku,
                            order_id,
                            quantity: Some(line.quantity),
                        },
                    );
                }
            }
            (_, ProcessEvent::OrderRemainderCancelled { skus, .. }) => {
                // The unshipped units of these lines are what their reservations still hold.
                for sku in skus {
                    if let Some(line) = self.lines.get_mut(sku) {
                        line.reservation = LineReservation::ReleaseRequested;
                    }
                    self.release(out, sku);
                }
            }
            (
                _,
                ProcessEvent::ReturnReceived {
                    return_id,
                    warehouse,
                    restock,
                    ..
                },
            ) => {
                for line in restock {
                    self.stock_command(
                        out,
                        &format!("restock:{}", line.sku),
                        &line.sku,
                        |sku, order_id| StockCommand::RestockReturn {
                            sku,
                            warehouse: warehouse.clone(),
                            quantity: line.quantity,
                            order_id,
                            return_id: *return_id,
                        },
                    );
                }
            }
            (
                _,
                ProcessEvent::RefundRequested {
                    refund_id, amount, ..
                },
            ) => {
                let Some(payment_id) = self.payment_id else {
                    return;
                };
                if self.refunds.contains_key(refund_id) {
                    return;
                }
                self.refunds.insert(*refund_id, RefundProgress::Requested);
                out.payment(
                    &format!("refund:{refund_id}"),
                    payment_id,
                    PaymentCommand::RefundPayment {
                        refund_id: *refund_id,
                        amount: *amount,
                    },
                );
            }
            (
                _,
                ProcessEvent::PaymentRefunded {
                    payment_id,
                    refund_id,
                    amount,
                    total_refunded,
                    ..
                },
            ) => {
                if Some(*payment_id) != self.payment_id
                    || self.refunds.get(refund_id) != Some(&RefundProgress::Requested)
                {
                    return;
                }
                self.refunds.insert(*refund_id, RefundProgress::Refunded);
                self.refunded = Some(*total_refunded);
                self.order(
                    out,
                    &format!("record-refund:{refund_id}"),
                    OrderCommand::RecordRefund {
                        refund_id: *refund_id,
                        amount: *amount,
                    },
                );
            }
            (
                _,
                ProcessEvent::PaymentRefundFailed {
                    payment_id,
                    refund_id,
                    ..
                },
            ) => {
                if Some(*payment_id) != self.payment_id
                    || self.refunds.get(refund_id) != Some(&RefundProgress::Requested)
                {
                    return;
                }
                self.refunds.insert(*refund_id, RefundProgress::Failed);
                self.order(
                    out,
                    &format!("record-refund-failed:{refund_id}"),
                    OrderCommand::RecordRefundFailed {
                        refund_id: *refund_id,
                    },
                );
            }
            (P::Reserving | P::Authorizing, ProcessEvent::PaymentDeadlinePassed { .. }) => {
                self.compensate(out, CancellationReason::ReservationExpired);
            }
            (_, ProcessEvent::PaymentDeadlinePassed { .. }) => {}
        }
    }

    fn all_lines(&self, state: LineReservation) -> bool {
        self.lines.values().all(|line| line.reservation == state)
    }

    fn request_payment(&mut self, out: &mut Outbox) {
        let (Some(order_id), Some(payment_id), Some(amount), Some(payment_method)) = (
            self.order_id,
            self.payment_id,
            self.total,
            self.payment_method.clone(),
        ) else {
            return;
        };
        self.phase = ProcessPhase::Authorizing;
        self.payment = PaymentProgress::Requested;
        out.payment(
            "authorize",
            payment_id,
            PaymentCommand::AuthorizePayment {
                payment_id,
                order_id,
                amount,
                payment_method,
            },
        );
    }

    /// Gives up: releases every held reservation and cancels the order with the reason.
    fn compensate(&mut self, out: &mut Outbox, reason: CancellationReason) {
        self.phase = ProcessPhase::Compensating;
        self.cancel_reason = Some(reason.clone());
        self.release_lines(out, |state| state == LineReservation::Reserved);
        self.order(out, "cancel", OrderCommand::CancelOrder { reason });
    }

    /// Sends `ReleaseReservation` for every line in a selected state. A held line becomes
    /// `ReleaseRequested`; a pending one stays `Requested`: its release is queued behind its
    /// reservation on the same stock record (or is an event-free no-op), and a late
    /// `StockReserved` is released again anyway.
    fn release_lines(&mut self, out: &mut Outbox, selected: impl Fn(LineReservation) -> bool) {
        let chosen: Vec<Sku> = self
            .lines
            .iter()
            .filter(|(_, line)| selected(line.reservation))
            .map(|(sku, _)| sku.clone())
            .collect();
        for sku in chosen {
            if let Some(line) = self.lines.get_mut(&sku) {
                if line.reservation == LineReservation::Reserved {
                    line.reservation = LineReservation::ReleaseRequested;
                }
            }
            self.release(out, &sku);
        }
    }

    /// Releases the hold on the card instead of capturing it.
    fn void(&mut self, out: &mut Outbox) {
        let Some(payment_id) = self.payment_id else {
            return;
        };
        self.payment = PaymentProgress::VoidRequested;
        out.payment("void", payment_id, PaymentCommand::VoidPayment);
    }

    /// Compensation is over once no reservation is held or pending and no money is held:
    /// nothing authorized or pending, or the capture refunded in full.
    fn finish_compensation(&mut self) {
        if self.phase != ProcessPhase::Compensating {
            return;
        }
        let lines_settled = self.lines.values().all(|line| {
            matches!(
                line.reservation,
                LineReservation::Rejected | LineReservation::Released
            )
        });
        let payment_settled = match self.payment {
            PaymentProgress::NotRequested | PaymentProgress::Declined | PaymentProgress::Voided => {
                true
            }
            PaymentProgress::Captured => {
                self.captured.is_some()
                    && self.refunded == self.captured
                    && !self
                        .refunds
                        .values()
                        .any(|r| *r == RefundProgress::Requested)
            }
            _ => false,
        };
        if lines_settled && payment_settled {
            self.phase = ProcessPhase::Cancelled;
        }
    }

    /// Gives back the uses the order's promotions hold (a release of a use not held changes
    /// nothing, so a second cancellation event or an unlimited promotion costs no event).
    fn release_promotions(&self, out: &mut Outbox) {
        let Some(order_id) = self.order_id else {
            return;
        };
        for promotion_id in &self.promotions {
            out.push(
                &format!("release-promotion:{promotion_id}"),
                TargetedCommand::Promotion {
                    promotion_id: *promotion_id,
                    command: PromotionCommand::ReleaseRedemption { order_id },
                },
            );
        }
    }

    fn release(&self, out: &mut Outbox, sku: &Sku) {
        self.stock_command(out, &format!("release:{sku}"), sku, |sku, order_id| {
            StockCommand::ReleaseReservation { sku, order_id }
        });
    }

    fn stock_command(
        &self,
        out: &mut Outbox,
        discriminator: &str,
        sku: &Sku,
        command: impl FnOnce(Sku, OrderId) -> StockCommand,
    ) {
        if let Some(order_id) = self.order_id {
            out.stock(discriminator, sku, command(sku.clone(), order_id));
        }
    }

    fn order(&self, out: &mut Outbox, discriminator: &str, command: OrderCommand) {
        if let Some(order_id) = self.order_id {
            out.push(discriminator, TargetedCommand::Order { order_id, command });
        }
    }
}

/// Collects commands, giving each the id derived from the causing event.
struct Outbox {
    event_id: Uuid,
    commands: Vec<ProcessCommand>,
}

impl Outbox {
    fn push(&mut self, discriminator: &str, command: TargetedCommand) {
        self.commands.push(ProcessCommand {
            command_id: Uuid::new_v5(&self.event_id, discriminator.as_bytes()),
            command,
        });
    }

    fn stock(&mut self, discriminator: &str, sku: &Sku, command: StockCommand) {
        self.push(
            discriminator,
            TargetedCommand::Stock {
                sku: sku.clone(),
                command,
            },
        );
    }

    fn payment(&mut self, discriminator: &str, payment_id: PaymentId, command: PaymentCommand) {
        self.push(
            discriminator,
            TargetedCommand::Payment {
                payment_id,
                command,
            },
        );
    }
}
