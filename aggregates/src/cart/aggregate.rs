use std::collections::BTreeMap;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{CartCommand, CartError, CartEvent, CartLine, CartServices};
use crate::money::{Currency, Money};
use crate::pricing::{self, Priced, PricingLine};
use crate::values::{
    Brand, CartId, CategoryPath, CouponCode, CustomerId, OrderId, ProductName, PromotionId,
    Quantity, Sku,
};

/// Lifecycle of a cart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CartStatus {
    /// Not opened yet.
    #[default]
    Absent,
    /// Accepting changes.
    Open,
    /// Handed to an order; frozen.
    CheckedOut,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Line {
    name: ProductName,
    quantity: Quantity,
    unit_price: Money,
    #[serde(default)]
    category: Option<CategoryPath>,
    #[serde(default)]
    brand: Option<Brand>,
    #[serde(default)]
    weight_grams: Option<u32>,
}

/// A shopping cart (aggregate id: the cart UUID).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cart {
    id: Option<CartId>,
    status: CartStatus,
    customer_id: Option<CustomerId>,
    currency: Option<Currency>,
    lines: BTreeMap<Sku, Line>,
    order_id: Option<OrderId>,
    #[serde(default)]
    coupons: BTreeMap<CouponCode, PromotionId>,
    /// The pricing the cart was checked out with.
    #[serde(default)]
    pricing: Option<Priced>,
}

impl Cart {
    /// The most lines a cart may hold.
    pub const MAX_LINES: usize = 50;
    /// The most units one line may hold.
    pub const MAX_LINE_QUANTITY: u32 = 999;
    /// The most coupon codes a cart may hold.
    pub const MAX_COUPONS: usize = 5;

    /// The coupon codes added, with their promotions.
    pub fn coupons(&self) -> &BTreeMap<CouponCode, PromotionId> {
        &self.coupons
    }

    /// The pricing the cart was checked out with (`None` before checkout, or for a cart
    /// checked out before pricing existed).
    pub fn checkout_pricing(&self) -> Option<&Priced> {
        self.pricing.as_ref()
    }

    /// The lines as the pricing takes them.
    pub fn pricing_lines(&self) -> Vec<PricingLine> {
        self.lines
            .iter()
            .map(|(sku, line)| PricingLine {
                sku: sku.clone(),
                quantity: line.quantity,
                unit_price: line.unit_price,
                category: line.category.clone(),
                brand: line.brand.clone(),
                weight_grams: line.weight_grams,
            })
            .collect()
    }

    /// Lifecycle status.
    pub fn status(&self) -> CartStatus {
        self.status
    }

    /// The customer, if known.
    pub fn customer_id(&self) -> Option<CustomerId> {
        self.customer_id
    }

    /// The order the cart was checked out into.
    pub fn order_id(&self) -> Option<OrderId> {
        self.order_id
    }

    /// Current lines with totals, in SKU order.
    pub fn lines(&self) -> Result<Vec<CartLine>, CartError> {
        self.lines
            .iter()
            .map(|(sku, line)| {
                Ok(CartLine {
                    sku: sku.clone(),
                    name: line.name.clone(),
                    quantity: line.quantity,
                    unit_price: line.unit_price,
                    line_total: line_total(line.unit_price, line.quantity)?,
                })
            })
            .collect()
    }

    fn currency(&self) -> Result<Currency, CartError> {
        self.currency.ok_or(CartError::NotFound)
    }

    /// Cart total if line `sku` were replaced by `replacement` (or removed when `None`).
    fn total_with(&self, sku: &Sku, replacement: Option<Money>) -> Result<Money, CartError> {
        let others = self
            .lines
            .iter()
            .filter(|(line_sku, _)| *line_sku != sku)
            .map(|(_, line)| line_total(line.unit_price, line.quantity))
            .collect::<Result<Vec<_>, _>>()?;
        Money::sum(self.currency()?, others.into_iter().chain(replacement))
            .map_err(|_| CartError::AmountOverflow)
    }

    fn check_open(&self) -> Result<(), CartError> {
        match self.status {
            CartStatus::Absent => Err(CartError::NotFound),
            CartStatus::CheckedOut => Err(CartError::CheckedOut),
            CartStatus::Open => Ok(()),
        }
    }

    fn line_quantity(quantity: u32) -> Result<Quantity, CartError> {
        let limit = CartError::LineQuantityLimit {
            max: Cart::MAX_LINE_QUANTITY,
        };
        if quantity > Cart::MAX_LINE_QUANTITY {
            return Err(limit);
        }
        Quantity::new(quantity).map_err(|_| limit)
    }

    async fn decide(
        &self,
        command: CartCommand,
        services: &CartServices,
    ) -> Result<Vec<CartEvent>, CartError> {
        if let CartCommand::OpenCart {
            cart_id,
            customer_id,
            currency,
        } = command
        {
            if self.status != CartStatus::Absent {
                return Err(CartError::AlreadyExists);
            }
            return Ok(vec![CartEvent::CartOpened {
                cart_id,
                customer_id,
                currency,
            }]);
        }
        self.check_open()?;
        let event = match command {
            CartCommand::OpenCart { .. } => return Err(CartError::AlreadyExists),
            CartCommand::AddCartItem { sku, quantity } => {
                let existing = self.lines.get(&sku);
                if existing.is_none() && self.lines.len() >= Cart::MAX_LINES {
                    return Err(CartError::TooManyLines {
                        max: Cart::MAX_LINES,
                    });
                }
                let current = existing.map_or(0, |line| line.quantity.get());
                let line_quantity = Self::line_quantity(current.saturating_add(quantity.get()))?;
                let entry = services
                    .catalog()
                    .lookup(&sku)
                    .await
                    .map_err(|_| CartError::CatalogUnavailable)?
                    .ok_or_else(|| CartError::ProductNotFound(sku.clone()))?;
                if !entry.sellable {
                    return Err(CartError::ProductNotSellable(sku));
                }
                let cart_currency = self.currency()?;
                if entry.unit_price.currency() != cart_currency {
                    return Err(CartError::CurrencyMismatch {
                        cart: cart_currency,
                        product: entry.unit_price.currency(),
                    });
                }
                let line_total = line_total(entry.unit_price, line_quantity)?;
                let cart_total = self.total_with(&sku, Some(line_total))?;
                CartEvent::CartItemAdded {
                    sku,
                    name: entry.name,
                    category: entry.category,
                    brand: entry.brand,
                    weight_grams: entry.weight_grams,
                    unit_price: entry.unit_price,
                    quantity_added: quantity,
                    line_quantity,
                    line_total,
                    cart_total,
                }
            }
            CartCommand::ChangeCartItemQuantity { sku, quantity } => {
                let Some(line) = self.lines.get(&sku) else {
                    return Err(CartError::ItemNotInCart(sku));
                };
                let quantity = Self::line_quantity(quantity.get())?;
                if line.quantity == quantity {
                    return Ok(vec![]);
                }
                let line_total = line_total(line.unit_price, quantity)?;
                let cart_total = self.total_with(&sku, Some(line_total))?;
                CartEvent::CartItemQuantityChanged {
                    sku,
                    quantity,
                    line_total,
                    cart_total,
                }
            }
            CartCommand::RemoveCartItem { sku } => {
                if !self.lines.contains_key(&sku) {
                    return Err(CartError::ItemNotInCart(sku));
                }
                let cart_total = self.total_with(&sku, None)?;
                CartEvent::CartItemRemoved { sku, cart_total }
            }
            CartCommand::ApplyCoupon { code, promotion_id } => {
                if self.coupons.contains_key(&code) {
                    return Ok(vec![]);
                }
                if self.coupons.len() >= Cart::MAX_COUPONS {
                    return Err(CartError::TooManyCoupons {
                        max: Cart::MAX_COUPONS,
                    });
                }
                CartEvent::CartCouponApplied { code, promotion_id }
            }
            CartCommand::RemoveCoupon { code } => {
                if !self.coupons.contains_key(&code) {
                    return Err(CartError::CouponNotInCart(code));
                }
                CartEvent::CartCouponRemoved { code }
            }
            CartCommand::CheckOutCart {
                order_id,
                customer_id,
                pricing,
            } => {
                if self.lines.is_empty() {
                    return Err(CartError::EmptyCart);
                }
                // An anonymous cart checked out without a customer is a guest's checkout.
                let customer_id = match (self.customer_id, customer_id) {
                    (Some(owner), Some(requester)) if owner != requester => {
                        return Err(CartError::CustomerMismatch)
                    }
                    (Some(owner), _) => Some(owner),
                    (None, requester) => requester,
                };
                let lines = self.lines()?;
                let total = Money::sum(self.currency()?, lines.iter().map(|l| l.line_total))
                    .map_err(|_| CartError::AmountOverflow)?;
                let pricing = match pricing {
                    None => None,
                    Some(p) => {
                        let lines = self.pricing_lines();
                        let priced = pricing::price(&lines, &p.promotions, p.tax)
                            .map_err(CartError::Pricing)?;
                        Some(match p.shipping {
                            None => priced,
                            Some(s) => pricing::with_shipping(
                                priced,
                                &lines,
                                s.method_id,
                                &s.method,
                                &s.country,
                            )
                            .map_err(CartError::Shipping)?,
                        })
                    }
                };
                CartEvent::CartCheckedOut {
                    order_id,
                    customer_id,
                    lines,
                    total,
                    pricing,
                }
            }
        };
        Ok(vec![event])
    }
}

fn line_total(unit_price: Money, quantity: Quantity) -> Result<Money, CartError> {
    unit_price
        .checked_mul(quantity.get())
        .map_err(|_| CartError::AmountOverflow)
}

impl Aggregate for Cart {
    const TYPE: &'static str = "Cart";
    type Command = CartCommand;
    type Event = CartEvent;
    type Error = CartError;
    type Services = CartServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command, services).await? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            CartEvent::CartOpened {
                cart_id,
                customer_id,
                currency,
            } => {
                self.id = Some(cart_id);
                self.customer_id = customer_id;
                self.currency = Some(currency);
                self.status = CartStatus::Open;
            }
            CartEvent::CartItemAdded {
                sku,
                name,
                category,
                brand,
                weight_grams,
                unit_price,
                line_quantity,
                ..
            } => {
                self.lines.insert(
                    sku,
                    Line {
                        name,
                        quantity: line_quantity,
                        unit_price,
                        category,
                        brand,
                        weight_grams,
                    },
                );
            }
            CartEvent::CartCouponApplied { code, promotion_id } => {
                self.coupons.insert(code, promotion_id);
            }
            CartEvent::CartCouponRemoved { code } => {
                self.coupons.remove(&code);
            }
            CartEvent::CartItemQuantityChanged { sku, quantity, .. } => {
                if let Some(line) = self.lines.get_mut(&sku) {
                    line.quantity = quantity;
                }
            }
            CartEvent::CartItemRemoved { sku, .. } => {
                self.lines.remove(&sku);
            }
            CartEvent::CartCheckedOut {
                order_id,
                customer_id,
                pricing,
                ..
            } => {
                self.pricing = pricing;
                self.order_id = Some(order_id);
                self.customer_id = customer_id.or(self.customer_id);
                self.status = CartStatus::CheckedOut;
            }
        }
    }
}
