//! Orders: the order view (status, lines with their ordered, shipped, delivered, cancelled,
//! returned and refunded quantities, totals, payment, shipments, refunds, cancellation
//! reason, where it ships), each customer's order history (`orders` by `customer_id`), and
//! returns (`order_returns`, for the order view and the back office's list by status).
//!
//! The shipping address and a guest's email are personal data: cleared when the customer is
//! forgotten or the guest order's data erased, and read as erased on a rebuild after that
//! (ADR 0013); the destination country stays.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use mercato_aggregates::order::{OrderEvent, RefundReason};
use mercato_aggregates::Personal;
use mercato_event_store::RecordedEvent;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{distinct, rows};
use crate::decode::{decode, tag};
use crate::error::ProjectionError;
use crate::projection::Projection;

/// Order view, history and returns.
pub struct Orders;

#[async_trait::async_trait]
impl Projection for Orders {
    fn name(&self) -> &'static str {
        "orders"
    }
    fn version(&self) -> i32 {
        3
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Order", "Customer"]
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[
            "OrderPlaced",
            "OrderLineReserved",
            "OrderLineRejected",
            "OrderPaymentAuthorized",
            "OrderPaymentDeclined",
            "OrderConfirmed",
            "OrderPaymentCaptured",
            "OrderPaymentVoided",
            "OrderCancelled",
            "OrderRemainderCancelled",
            "OrderShipped",
            "OrderDelivered",
            "OrderReturnRequested",
            "OrderReturnReceived",
            "OrderRefundRequested",
            "OrderRefunded",
            "OrderRefundFailed",
            "OrderPersonalDataErased",
            "CustomerForgotten",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["orders", "order_lines", "order_returns"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let ids = distinct(events.iter().map(|e| e.aggregate_id.clone()));
        let mut orders: HashMap<Uuid, OrderRow> =
            rows::load::<OrderRow>(conn, "orders", "order_id", "uuid", &ids)
                .await?
                .into_iter()
                .map(|o| (o.order_id, o))
                .collect();
        let mut lines: HashMap<Uuid, Vec<LineRow>> = HashMap::new();
        for line in rows::load::<LineRow>(conn, "order_lines", "order_id", "uuid", &ids).await? {
            lines.entry(line.order_id).or_default().push(line);
        }
        let mut returns: HashMap<Uuid, ReturnRow> =
            rows::load::<ReturnRow>(conn, "order_returns", "order_id", "uuid", &ids)
                .await?
                .into_iter()
                .map(|r| (r.return_id, r))
                .collect();
        let mut changed = HashSet::new();
        let mut changed_lines = HashSet::new();
        let mut changed_returns = HashSet::new();
        let mut forgotten = Vec::new();
        for event in events {
            if event.aggregate_type == "Customer" {
                // `CustomerForgotten`: their orders' personal data goes, below.
                forgotten.push(Uuid::parse_str(&event.aggregate_id).map_err(|e| {
                    ProjectionError::Invalid {
                        event_id: event.event_id,
                        reason: format!("customer id: {e}"),
                    }
                })?);
                continue;
            }
            let order_id =
                Uuid::parse_str(&event.aggregate_id).map_err(|e| ProjectionError::Invalid {
                    event_id: event.event_id,
                    reason: format!("order id: {e}"),
                })?;
            let at = event.recorded_at;
            let decoded = decode::<OrderEvent>(event)?;
            if let OrderEvent::OrderPlaced {
                customer_id,
                guest_email,
                lines: placed,
                total,
                subtotal,
                discounts,
                tax,
                tax_rule,
                shipping,
                shipping_address,
                ship_to_country,
                placed_at,
                ..
            } = &decoded
            {
                // An order is placed once; a second placement changes nothing.
                if let Entry::Vacant(slot) = orders.entry(order_id) {
                    let mut row = OrderRow::placed(
                        order_id,
                        customer_id.map(|c| c.as_uuid()),
                        guest_email.is_some(),
                        total.currency().as_str(),
                        total.amount(),
                        *placed_at,
                        at,
                    );
                    row.ship_to_country = Some(ship_to_country.as_str().to_owned());
                    row.subtotal_amount = subtotal.map(|m| m.amount());
                    row.discount_amount = discounts.iter().map(|d| d.amount.amount()).sum();
                    row.discounts = discounts.iter().map(DiscountView::from).collect();
                    row.tax_amount = tax.map_or(0, |m| m.amount());
                    row.tax_rate = tax_rule.map(|t| t.rate.to_string());
                    row.prices_include_tax = tax_rule.map(|t| t.prices_include_tax);
                    row.shipping = shipping.as_ref().map(ShippingView::from);
                    row.shipping_address = shipping_address
                        .expose()
                        .map(serde_json::to_value)
                        .transpose()
                        .map_err(|e| ProjectionError::Invalid {
                            event_id: event.event_id,
                            reason: format!("shipping address: {e}"),
                        })?;
                    row.contact_email = guest_email
                        .as_ref()
                        .and_then(Personal::expose)
                        .map(|e| e.as_str().to_owned());
                    row.personal_data_erased = shipping_address.is_erased();
                    slot.insert(row);
                    changed.insert(order_id);
                }
                let existing = lines.entry(order_id).or_default();
                for (i, line) in placed.iter().enumerate() {
                    let line_no = i as i32 + 1;
                    if existing.iter().any(|l| l.line_no == line_no) {
                        continue;
                    }
                    existing.push(LineRow::placed(order_id, line_no, line));
                    changed_lines.insert(order_id);
                }
                continue;
            }
            // An event of an order this read model never saw placed changes nothing.
            let Some(o) = orders.get_mut(&order_id) else {
                continue;
            };
            let order_lines = lines.entry(order_id).or_default();
            let mut touch = |sku: &str, change: &dyn Fn(&mut LineRow)| {
                if let Some(line) = order_lines.iter_mut().find(|l| l.sku == sku) {
                    change(line);
                }
            };
            match decoded {
                OrderEvent::OrderPlaced { .. } => {}
                OrderEvent::OrderLineReserved { status, .. } => o.status = tag(&status),
                OrderEvent::OrderLineRejected { .. } => o.status = "stock_rejected".to_owned(),
                OrderEvent::OrderPaymentAuthorized { payment_id, .. } => {
                    o.status = "payment_authorized".to_owned();
                    o.payment_state = "authorized".to_owned();
                    o.payment_id = Some(payment_id.as_uuid());
                }
                OrderEvent::OrderPaymentDeclined { payment_id, reason } => {
                    o.status = "payment_declined".to_owned();
                    o.payment_state = "declined".to_owned();
                    o.payment_id = Some(payment_id.as_uuid());
                    o.payment_decline = Some(tag(&reason));
                }
                OrderEvent::OrderConfirmed => o.status = "confirmed".to_owned(),
                OrderEvent::OrderPaymentCaptured { amount, .. } => {
                    o.captured_amount = amount.amount();
                    o.payment_state = o.money_state();
                }
                OrderEvent::OrderPaymentVoided { .. } => o.payment_state = "voided".to_owned(),
                OrderEvent::OrderCancelled { reason } => {
                    o.status = "cancelled".to_owned();
                    o.cancellation_reason = Some(serde_json::to_value(&reason).unwrap_or_default());
                    for line in order_lines.iter_mut() {
                        line.cancelled_quantity = line.quantity - line.shipped_quantity;
                    }
                }
                OrderEvent::OrderRemainderCancelled {
                    reason,
                    lines: cancelled,
                    status,
                    ..
                } => {
                    o.status = tag(&status);
                    o.cancellation_reason = Some(serde_json::to_value(&reason).unwrap_or_default());
                    for units in &cancelled {
                        let n = units.quantity.get() as i32;
                        touch(units.sku.as_str(), &|l| l.cancelled_quantity += n);
                    }
                }
                OrderEvent::OrderShipped {
                    tracking_number,
                    carrier,
                    shipped_at,
                    lines: shipped,
                    status,
                    ..
                } => {
                    for units in &shipped {
                        let n = units.quantity.get() as i32;
                        touch(units.sku.as_str(), &|l| l.shipped_quantity += n);
                    }
                    o.status = tag(&status);
                    o.tracking_numbers.push(tracking_number.as_str().to_owned());
                    o.shipments.push(ShipmentView {
                        tracking_number: tracking_number.as_str().to_owned(),
                        carrier: carrier.map(|c| c.as_str().to_owned()),
                        shipped_at: shipped_at.unwrap_or(at),
                        delivered_at: None,
                        lines: shipped.iter().map(Units::from).collect(),
                    });
                }
                OrderEvent::OrderDelivered {
                    tracking_numbers,
                    lines: delivered,
                    delivered_at,
                    status,
                } => {
                    let delivered_at = delivered_at.unwrap_or(at);
                    if delivered.is_empty() {
                        // An upcast 1.0 event: everything shipped arrived.
                        for line in order_lines.iter_mut() {
                            line.delivered_quantity = line.shipped_quantity;
                        }
                    } else {
                        for units in &delivered {
                            let n = units.quantity.get() as i32;
                            touch(units.sku.as_str(), &|l| l.delivered_quantity += n);
                        }
                    }
                    for shipment in &mut o.shipments {
                        let arrived = delivered.is_empty()
                            || tracking_numbers
                                .iter()
                                .any(|t| t.as_str() == shipment.tracking_number);
                        if arrived && shipment.delivered_at.is_none() {
                            shipment.delivered_at = Some(delivered_at);
                        }
                    }
                    o.status = tag(&status);
                    if o.status == "delivered" {
                        o.delivered_at = Some(delivered_at);
                    }
                }
                OrderEvent::OrderReturnRequested {
                    return_id,
                    lines: requested,
                    reason,
                    requested_at,
                } => {
                    returns
                        .entry(return_id.as_uuid())
                        .or_insert_with(|| ReturnRow {
                            return_id: return_id.as_uuid(),
                            order_id,
                            status: "requested".to_owned(),
                            reason: reason.as_str().to_owned(),
                            lines: requested
                                .iter()
                                .map(|u| ReturnLine {
                                    sku: u.sku.as_str().to_owned(),
                                    quantity: u.quantity.get(),
                                    received: 0,
                                    restocked: 0,
                                })
                                .collect(),
                            warehouse: None,
                            currency: o.currency.clone(),
                            refund_id: None,
                            refund_amount: None,
                            requested_at,
                            received_at: None,
                            updated_at: at,
                        });
                    changed_returns.insert(return_id.as_uuid());
                }
                OrderEvent::OrderReturnReceived {
                    return_id,
                    warehouse,
                    lines: received,
                    received_at,
                    ..
                } => {
                    for units in &received {
                        let n = units.quantity.get() as i32;
                        touch(units.sku.as_str(), &|l| l.returned_quantity += n);
                    }
                    if let Some(r) = returns.get_mut(&return_id.as_uuid()) {
                        r.status = "received".to_owned();
                        r.warehouse = Some(warehouse.as_str().to_owned());
                        r.received_at = Some(received_at);
                        r.updated_at = at;
                        for line in &mut r.lines {
                            for units in received.iter().filter(|u| u.sku.as_str() == line.sku) {
                                line.received += units.quantity.get();
                                if units.restock {
                                    line.restocked += units.quantity.get();
                                }
                            }
                        }
                        changed_returns.insert(return_id.as_uuid());
                    }
                }
                OrderEvent::OrderRefundRequested {
                    refund_id,
                    amount,
                    reason,
                    lines: paid_back,
                    tax,
                    ..
                } => {
                    o.refund_pending_amount += amount.amount();
                    let return_id = match &reason {
                        RefundReason::Return { return_id } => Some(return_id.as_uuid()),
                        _ => None,
                    };
                    if let Some(r) = return_id.and_then(|id| returns.get_mut(&id)) {
                        r.refund_id = Some(refund_id.as_uuid());
                        r.refund_amount = Some(amount.amount());
                        r.updated_at = at;
                        changed_returns.insert(r.return_id);
                    }
                    o.refunds.push(RefundView {
                        refund_id: Some(refund_id.as_uuid()),
                        amount: amount.amount(),
                        tax: tax.map(|t| t.amount()),
                        reason: tag_of(&reason),
                        return_id,
                        status: "requested".to_owned(),
                        lines: paid_back
                            .iter()
                            .map(|l| Units {
                                sku: l.sku.as_str().to_owned(),
                                quantity: l.quantity.get(),
                            })
                            .collect(),
                        requested_at: at,
                        completed_at: None,
                    });
                }
                OrderEvent::OrderRefunded {
                    refund_id,
                    amount,
                    total_refunded,
                    status,
                    lines: paid_back,
                } => {
                    o.status = tag(&status);
                    o.refunded_amount = total_refunded.amount();
                    o.payment_state = o.money_state();
                    for units in &paid_back {
                        let n = units.quantity.get() as i32;
                        touch(units.sku.as_str(), &|l| l.refunded_quantity += n);
                    }
                    let id = refund_id.map(|r| r.as_uuid());
                    match o
                        .refunds
                        .iter_mut()
                        .find(|r| id.is_some() && r.refund_id == id)
                    {
                        Some(refund) => {
                            refund.status = "refunded".to_owned();
                            refund.completed_at = Some(at);
                            o.refund_pending_amount -= amount.amount();
                            if let Some(r) = refund.return_id.and_then(|id| returns.get_mut(&id)) {
                                r.status = "refunded".to_owned();
                                r.updated_at = at;
                                changed_returns.insert(r.return_id);
                            }
                        }
                        // Recorded before refunds were requested: made in one step.
                        None => o.refunds.push(RefundView {
                            refund_id: id,
                            amount: amount.amount(),
                            tax: None,
                            reason: "merchant_request".to_owned(),
                            return_id: None,
                            status: "refunded".to_owned(),
                            lines: vec![],
                            requested_at: at,
                            completed_at: Some(at),
                        }),
                    }
                }
                OrderEvent::OrderRefundFailed { refund_id, amount } => {
                    let id = Some(refund_id.as_uuid());
                    if let Some(refund) = o.refunds.iter_mut().find(|r| r.refund_id == id) {
                        refund.status = "failed".to_owned();
                        refund.completed_at = Some(at);
                        o.refund_pending_amount -= amount.amount();
                    }
                }
                OrderEvent::OrderPersonalDataErased { .. } => o.erase_personal_data(),
            }
            if touches_lines(event) {
                changed_lines.insert(order_id);
            }
            o.shipment_state = shipment_state(order_lines);
            o.updated_at = at;
            changed.insert(order_id);
        }
        let upserts: Vec<&OrderRow> = changed.iter().filter_map(|id| orders.get(id)).collect();
        rows::upsert(conn, "orders", &["order_id"], &upserts).await?;
        let upserts: Vec<&LineRow> = changed_lines
            .iter()
            .filter_map(|id| lines.get(id))
            .flatten()
            .collect();
        rows::upsert(conn, "order_lines", &["order_id", "line_no"], &upserts).await?;
        let upserts: Vec<&ReturnRow> = changed_returns
            .iter()
            .filter_map(|id| returns.get(id))
            .collect();
        rows::upsert(conn, "order_returns", &["return_id"], &upserts).await?;
        if !forgotten.is_empty() {
            sqlx::query(
                "UPDATE orders SET shipping_address = NULL, contact_email = NULL, \
                   personal_data_erased = true \
                 WHERE customer_id = ANY($1) AND NOT personal_data_erased",
            )
            .bind(&forgotten)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// Whether the event changes its order's lines (the others leave them unwritten).
fn touches_lines(event: &RecordedEvent) -> bool {
    matches!(
        event.event_type.as_str(),
        "OrderCancelled"
            | "OrderRemainderCancelled"
            | "OrderShipped"
            | "OrderDelivered"
            | "OrderReturnReceived"
            | "OrderRefunded"
    )
}

/// `not_shipped`, `partially_shipped`, `shipped` or `delivered`, over the units to fulfil
/// (ordered minus cancelled).
fn shipment_state(lines: &[LineRow]) -> String {
    let to_fulfil: i32 = lines
        .iter()
        .map(|l| l.quantity - l.cancelled_quantity)
        .sum();
    let shipped: i32 = lines.iter().map(|l| l.shipped_quantity).sum();
    let delivered: i32 = lines.iter().map(|l| l.delivered_quantity).sum();
    match () {
        _ if shipped == 0 => "not_shipped",
        _ if shipped < to_fulfil => "partially_shipped",
        _ if delivered < to_fulfil => "shipped",
        _ => "delivered",
    }
    .to_owned()
}

/// A refund reason's tag (`cancellation`, `return`, `merchant_request`).
fn tag_of(reason: &RefundReason) -> String {
    match reason {
        RefundReason::Cancellation => "cancellation",
        RefundReason::Return { .. } => "return",
        RefundReason::MerchantRequest => "merchant_request",
    }
    .to_owned()
}

/// A row of `orders`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderRow {
    order_id: Uuid,
    customer_id: Option<Uuid>,
    guest: bool,
    status: String,
    currency: String,
    total_amount: i64,
    placed_at: DateTime<Utc>,
    payment_id: Option<Uuid>,
    payment_state: String,
    payment_decline: Option<String>,
    captured_amount: i64,
    refunded_amount: i64,
    refund_pending_amount: i64,
    shipment_state: String,
    tracking_numbers: Vec<String>,
    shipments: Vec<ShipmentView>,
    refunds: Vec<RefundView>,
    delivered_at: Option<DateTime<Utc>>,
    cancellation_reason: Option<serde_json::Value>,
    /// Where it ships (kept when the personal data goes).
    ship_to_country: Option<String>,
    /// Personal data: the address and a guest's email, `None` once erased.
    shipping_address: Option<serde_json::Value>,
    contact_email: Option<String>,
    personal_data_erased: bool,
    updated_at: DateTime<Utc>,
    /// The lines at list prices (`None` for an order placed before pricing).
    subtotal_amount: Option<i64>,
    discount_amount: i64,
    tax_amount: i64,
    discounts: Vec<DiscountView>,
    tax_rate: Option<String>,
    prices_include_tax: Option<bool>,
    shipping: Option<ShippingView>,
}

/// The shipping charged on an order, in minor units of its currency.
#[derive(Debug, Serialize, Deserialize)]
struct ShippingView {
    method_id: String,
    name: String,
    amount: i64,
    discount: i64,
    tax: i64,
    total: i64,
}

impl From<&mercato_aggregates::pricing::PricedShipping> for ShippingView {
    fn from(s: &mercato_aggregates::pricing::PricedShipping) -> Self {
        ShippingView {
            method_id: s.method_id.as_str().to_owned(),
            name: s.name.as_str().to_owned(),
            amount: s.amount.amount(),
            discount: s.discount.amount(),
            tax: s.tax.amount(),
            total: s.total.amount(),
        }
    }
}

/// A promotion applied to an order, as the order view shows it.
#[derive(Debug, Serialize, Deserialize)]
struct DiscountView {
    promotion_id: Uuid,
    name: String,
    code: Option<String>,
    amount: i64,
    free_shipping: bool,
}

impl From<&mercato_aggregates::pricing::AppliedDiscount> for DiscountView {
    fn from(d: &mercato_aggregates::pricing::AppliedDiscount) -> Self {
        DiscountView {
            promotion_id: d.promotion_id.as_uuid(),
            name: d.name.as_str().to_owned(),
            code: d.code.as_ref().map(|c| c.as_str().to_owned()),
            amount: d.amount.amount(),
            free_shipping: d.free_shipping,
        }
    }
}

impl OrderRow {
    fn erase_personal_data(&mut self) {
        self.shipping_address = None;
        self.contact_email = None;
        self.personal_data_erased = true;
    }

    fn placed(
        order_id: Uuid,
        customer_id: Option<Uuid>,
        guest: bool,
        currency: &str,
        total_amount: i64,
        placed_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            order_id,
            customer_id,
            guest,
            status: "placed".to_owned(),
            currency: currency.to_owned(),
            total_amount,
            placed_at,
            payment_id: None,
            payment_state: "pending".to_owned(),
            payment_decline: None,
            captured_amount: 0,
            refunded_amount: 0,
            refund_pending_amount: 0,
            shipment_state: "not_shipped".to_owned(),
            tracking_numbers: Vec::new(),
            shipments: Vec::new(),
            refunds: Vec::new(),
            delivered_at: None,
            cancellation_reason: None,
            ship_to_country: None,
            shipping_address: None,
            contact_email: None,
            personal_data_erased: false,
            updated_at: at,
            subtotal_amount: None,
            discount_amount: 0,
            tax_amount: 0,
            discounts: Vec::new(),
            tax_rate: None,
            prices_include_tax: None,
            shipping: None,
        }
    }

    /// The payment state the captured and refunded amounts give.
    fn money_state(&self) -> String {
        match () {
            _ if self.captured_amount == 0 => self.payment_state.as_str(),
            _ if self.refunded_amount == 0 => "captured",
            _ if self.refunded_amount >= self.captured_amount => "refunded",
            _ => "partially_refunded",
        }
        .to_owned()
    }
}

/// Units of one line, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Units {
    sku: String,
    quantity: u32,
}

impl From<&mercato_aggregates::order::LineUnits> for Units {
    fn from(units: &mercato_aggregates::order::LineUnits) -> Self {
        Units {
            sku: units.sku.as_str().to_owned(),
            quantity: units.quantity.get(),
        }
    }
}

/// A parcel, as the order view shows it.
#[derive(Debug, Serialize, Deserialize)]
struct ShipmentView {
    tracking_number: String,
    carrier: Option<String>,
    shipped_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
    lines: Vec<Units>,
}

/// A refund, as the order view shows it.
#[derive(Debug, Serialize, Deserialize)]
struct RefundView {
    refund_id: Option<Uuid>,
    amount: i64,
    /// The tax inside `amount` (`None`: an order without tax, or a merchant's amount).
    #[serde(default)]
    tax: Option<i64>,
    reason: String,
    return_id: Option<Uuid>,
    status: String,
    lines: Vec<Units>,
    requested_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

/// A row of `order_lines`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineRow {
    order_id: Uuid,
    line_no: i32,
    sku: String,
    name: String,
    quantity: i32,
    shipped_quantity: i32,
    delivered_quantity: i32,
    cancelled_quantity: i32,
    returned_quantity: i32,
    refunded_quantity: i32,
    unit_price_amount: i64,
    line_total_amount: i64,
    discount_amount: i64,
    tax_amount: i64,
    /// What the customer pays for the line (`None` for an order placed before pricing).
    total_amount: Option<i64>,
}

impl LineRow {
    fn placed(order_id: Uuid, line_no: i32, line: &mercato_aggregates::order::OrderLine) -> Self {
        Self {
            order_id,
            line_no,
            sku: line.sku.as_str().to_owned(),
            name: line.name.as_str().to_owned(),
            quantity: line.quantity.get() as i32,
            shipped_quantity: 0,
            delivered_quantity: 0,
            cancelled_quantity: 0,
            returned_quantity: 0,
            refunded_quantity: 0,
            unit_price_amount: line.unit_price.amount(),
            line_total_amount: line.line_total.amount(),
            discount_amount: line.discount.map_or(0, |m| m.amount()),
            tax_amount: line.tax.map_or(0, |m| m.amount()),
            total_amount: line.total.map(|m| m.amount()),
        }
    }
}

/// A line of a return, as JSON.
#[derive(Debug, Serialize, Deserialize)]
struct ReturnLine {
    sku: String,
    quantity: u32,
    received: u32,
    restocked: u32,
}

/// A row of `order_returns`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReturnRow {
    return_id: Uuid,
    order_id: Uuid,
    status: String,
    reason: String,
    lines: Vec<ReturnLine>,
    warehouse: Option<String>,
    currency: String,
    refund_id: Option<Uuid>,
    refund_amount: Option<i64>,
    requested_at: DateTime<Utc>,
    received_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}
