//! Pricing: what a cart costs once its promotions and tax are applied (ADR 0020).
//!
//! Pure and deterministic, so the cart view (query API) and the checkout (command API) price
//! the same lines the same way, and the order records the result. The order is fixed:
//! promotions on the list prices, then tax on what is left of each line, then shipping.
//! Every amount is whole minor units: each promotion's discount is rounded once (half up)
//! and spread over its lines by largest remainder, tax is rounded per line (half up), and
//! the order's figures are sums of the line figures, so they reconcile exactly in any
//! currency exponent.

mod rate;
mod rules;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use rate::Rate;
pub use rules::{Discount, PromotionRule, Stacking, Target, TaxRule};

use crate::money::{Currency, Money};
use crate::shipping::{ShippingMethod, ShippingMethodId};
use crate::values::{
    Brand, CategoryPath, CountryCode, CouponCode, ProductName, PromotionId, PromotionName,
    Quantity, Sku,
};

/// A line to price: what the cart captured from the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricingLine {
    /// The SKU.
    pub sku: Sku,
    /// Units.
    pub quantity: Quantity,
    /// List price of one unit.
    pub unit_price: Money,
    /// The product's category, when known (category promotions match on it).
    pub category: Option<CategoryPath>,
    /// The product's brand, when known (brand promotions match on it).
    pub brand: Option<Brand>,
    /// Weight of one unit in grams, when known (weight-based shipping rates use it).
    #[serde(default)]
    pub weight_grams: Option<u32>,
}

/// A priced line. `total` is what the customer pays for it: `line_total - discount`, plus
/// `tax` when prices exclude tax (with tax-inclusive prices the tax is inside).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedLine {
    /// The SKU.
    pub sku: Sku,
    /// Units.
    pub quantity: Quantity,
    /// List price of one unit.
    pub unit_price: Money,
    /// `unit_price * quantity`.
    pub line_total: Money,
    /// The promotions' share of this line.
    pub discount: Money,
    /// Tax on this line, rounded for the line.
    pub tax: Money,
    /// What the customer pays for this line.
    pub total: Money,
}

/// A promotion that took money off (or made shipping free).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedDiscount {
    /// The promotion.
    pub promotion_id: PromotionId,
    /// Its name, as shoppers see it.
    pub name: PromotionName,
    /// The code that unlocked it; `None` for an automatic promotion.
    pub code: Option<CouponCode>,
    /// Money it took off the lines (zero for free shipping).
    pub amount: Money,
    /// It makes shipping free.
    #[serde(default)]
    pub free_shipping: bool,
}

/// Why a promotion offered to the pricing took nothing off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PassedOverReason {
    /// The subtotal is below the promotion's minimum.
    MinimumSubtotal,
    /// Its amounts are in another currency than the cart.
    CurrencyMismatch,
    /// No line is of the product, category or brand it targets (or, for buy X get Y, too
    /// few units are).
    NoEligibleLines,
    /// Another promotion gave more, and the two cannot be combined.
    NotCombinable,
}

/// A promotion that was offered and not applied, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassedOver {
    /// The promotion.
    pub promotion_id: PromotionId,
    /// Its code, if it has one.
    pub code: Option<CouponCode>,
    /// Why.
    pub reason: PassedOverReason,
}

/// A priced cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Priced {
    /// The lines, in the order given.
    pub lines: Vec<PricedLine>,
    /// The promotions applied, in the order they were applied.
    pub discounts: Vec<AppliedDiscount>,
    /// The promotions offered and not applied.
    pub passed_over: Vec<PassedOver>,
    /// Sum of the line totals before discounts.
    pub subtotal: Money,
    /// Sum of the discounts.
    pub discount_total: Money,
    /// Sum of the line taxes.
    pub tax: Money,
    /// What the customer pays (sum of the priced lines' totals).
    pub total: Money,
    /// The tax applied.
    pub tax_rule: TaxRule,
    /// The shipping chosen, priced after the goods (absent: none charged).
    #[serde(default)]
    pub shipping: Option<PricedShipping>,
}

/// The shipping of a priced cart: the method's quote, less a free-shipping promotion, with
/// the destination's tax (inside the quote when prices include tax, added otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedShipping {
    /// The method.
    pub method_id: ShippingMethodId,
    /// Its name.
    pub name: ProductName,
    /// What the method charges for this parcel.
    pub amount: Money,
    /// Taken off by a free-shipping promotion.
    pub discount: Money,
    /// Tax on the shipping.
    pub tax: Money,
    /// What the customer pays for shipping.
    pub total: Money,
}

impl Priced {
    /// Whether a promotion applied makes shipping free.
    pub fn free_shipping(&self) -> bool {
        self.discounts.iter().any(|d| d.free_shipping)
    }

    /// Whether the figures add up to the minor unit: each line's total is its list total
    /// less its discount (plus its tax when prices exclude tax), no discount exceeds its
    /// line, and the cart's subtotal, discounts, tax and total are the sums of the lines'.
    /// An order refuses a pricing that does not.
    pub fn reconciles(&self) -> bool {
        let inclusive = self.tax_rule.prices_include_tax;
        let lines_add_up = self.lines.iter().all(|l| {
            let net = l.line_total.amount() - l.discount.amount();
            let expected = if inclusive { net } else { net + l.tax.amount() };
            net >= 0 && l.total.amount() == expected && (!inclusive || l.tax.amount() <= net)
        });
        let sum = |f: fn(&PricedLine) -> i64| self.lines.iter().map(f).sum::<i64>();
        let applied: i64 = self.discounts.iter().map(|d| d.amount.amount()).sum();
        let (shipping_tax, shipping_total, shipping_adds_up) = match &self.shipping {
            None => (0, 0, true),
            Some(s) => {
                let net = s.amount.amount() - s.discount.amount();
                let expected = if inclusive { net } else { net + s.tax.amount() };
                (
                    s.tax.amount(),
                    s.total.amount(),
                    net >= 0 && s.total.amount() == expected,
                )
            }
        };
        lines_add_up
            && shipping_adds_up
            && sum(|l| l.line_total.amount()) == self.subtotal.amount()
            && sum(|l| l.discount.amount()) == self.discount_total.amount()
            && applied == self.discount_total.amount()
            && sum(|l| l.tax.amount()) + shipping_tax == self.tax.amount()
            && sum(|l| l.total.amount()) + shipping_total == self.total.amount()
    }
}

/// Why a cart cannot be priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// The lines are in more than one currency.
    #[error("every line must be in the same currency")]
    CurrencyMismatch,
    /// An amount does not fit in 64-bit minor units.
    #[error("amount overflow")]
    AmountOverflow,
    /// There is nothing to price.
    #[error("nothing to price")]
    NoLines,
}

/// Prices `lines` with the best allowed choice among `offered` promotions (every
/// combinable one together, or one exclusive one alone, whichever takes more off; a tie
/// goes to the combinable set), then `tax`.
pub fn price(
    lines: &[PricingLine],
    offered: &[PromotionRule],
    tax: TaxRule,
) -> Result<Priced, PricingError> {
    let currency = lines
        .first()
        .ok_or(PricingError::NoLines)?
        .unit_price
        .currency();
    if lines.iter().any(|l| l.unit_price.currency() != currency) {
        return Err(PricingError::CurrencyMismatch);
    }
    let gross = lines
        .iter()
        .map(|l| {
            l.unit_price
                .checked_mul(l.quantity.get())
                .map(|m| m.amount())
                .map_err(|_| PricingError::AmountOverflow)
        })
        .collect::<Result<Vec<i64>, _>>()?;
    let subtotal = gross
        .iter()
        .try_fold(0i64, |sum, g| sum.checked_add(*g))
        .ok_or(PricingError::AmountOverflow)?;

    let mut offered: Vec<&PromotionRule> = offered.iter().collect();
    offered.sort_by_key(|r| r.id);
    let mut passed_over = Vec::new();
    let mut candidates = Vec::new();
    for rule in offered {
        match rule.refusal(lines, currency, subtotal) {
            Some(reason) => passed_over.push(rule.passed_over(reason)),
            None => candidates.push(rule),
        }
    }
    let combinable: Vec<&PromotionRule> = candidates
        .iter()
        .copied()
        .filter(|r| r.stacking == Stacking::Combinable)
        .collect();
    let mut best = apply(lines, &gross, &combinable);
    let mut chosen = combinable;
    for exclusive in candidates
        .iter()
        .copied()
        .filter(|r| r.stacking == Stacking::Exclusive)
    {
        let alone = apply(lines, &gross, &[exclusive]);
        if total_of(&alone.1) > total_of(&best.1) {
            best = alone;
            chosen = vec![exclusive];
        }
    }
    let (line_discounts, applied) = best;
    for rule in candidates {
        let used = applied.iter().any(|(r, _, _)| r.id == rule.id);
        if !used {
            let reason = if chosen.iter().any(|c| c.id == rule.id) {
                PassedOverReason::NoEligibleLines
            } else {
                PassedOverReason::NotCombinable
            };
            passed_over.push(rule.passed_over(reason));
        }
    }

    let money =
        |amount: i64| Money::new(amount, currency).map_err(|_| PricingError::AmountOverflow);
    let mut priced_lines = Vec::with_capacity(lines.len());
    for ((line, gross), discount) in lines.iter().zip(&gross).zip(&line_discounts) {
        let net = gross - discount;
        let (tax_amount, total) = if tax.prices_include_tax {
            (tax.rate.included_in(net), net)
        } else {
            let t = tax.rate.of(net);
            (t, net.checked_add(t).ok_or(PricingError::AmountOverflow)?)
        };
        priced_lines.push(PricedLine {
            sku: line.sku.clone(),
            quantity: line.quantity,
            unit_price: line.unit_price,
            line_total: money(*gross)?,
            discount: money(*discount)?,
            tax: money(tax_amount)?,
            total: money(total)?,
        });
    }
    let sum = |f: fn(&PricedLine) -> Money| {
        Money::sum(currency, priced_lines.iter().map(f)).map_err(|_| PricingError::AmountOverflow)
    };
    let discounts = applied
        .into_iter()
        .map(|(rule, amount, free_shipping)| {
            Ok(AppliedDiscount {
                promotion_id: rule.id,
                name: rule.name.clone(),
                code: rule.code.clone(),
                amount: money(amount)?,
                free_shipping,
            })
        })
        .collect::<Result<Vec<_>, PricingError>>()?;
    Ok(Priced {
        subtotal: money(subtotal)?,
        discount_total: sum(|l| l.discount)?,
        tax: sum(|l| l.tax)?,
        total: sum(|l| l.total)?,
        lines: priced_lines,
        discounts,
        passed_over,
        tax_rule: tax,
        shipping: None,
    })
}

/// Why a parcel cannot be shipped by a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShippingUnavailable {
    /// The method does not ship to the country, or charges in another currency.
    #[error("this shipping method does not ship there")]
    NotToDestination,
    /// The charge does not fit in 64-bit minor units.
    #[error("amount overflow")]
    AmountOverflow,
}

/// The weight of the goods in grams (units without a known weight weigh nothing).
pub fn weight_of(lines: &[PricingLine]) -> u64 {
    lines
        .iter()
        .map(|l| u64::from(l.weight_grams.unwrap_or(0)) * u64::from(l.quantity.get()))
        .sum()
}

/// `priced` with shipping by `method` to `country` (ADR 0021: after the promotions and the
/// goods' tax; a free-shipping promotion takes the charge off; the threshold counts the
/// goods after discounts; the charge is taxed at the goods' rate).
pub fn with_shipping(
    mut priced: Priced,
    lines: &[PricingLine],
    method_id: ShippingMethodId,
    method: &ShippingMethod,
    country: &CountryCode,
) -> Result<Priced, ShippingUnavailable> {
    let currency = priced.total.currency();
    let money = |a: i64| Money::new(a, currency).map_err(|_| ShippingUnavailable::AmountOverflow);
    let goods = money(priced.subtotal.amount() - priced.discount_total.amount())?;
    let amount = method
        .quote(country, weight_of(lines), goods)
        .ok_or(ShippingUnavailable::NotToDestination)?;
    let discount = if priced.free_shipping() {
        amount
    } else {
        Money::zero(currency)
    };
    let net = amount.amount() - discount.amount();
    let rule = priced.tax_rule;
    let (tax, total) = if rule.prices_include_tax {
        (rule.rate.included_in(net), net)
    } else {
        let t = rule.rate.of(net);
        (
            t,
            net.checked_add(t)
                .ok_or(ShippingUnavailable::AmountOverflow)?,
        )
    };
    priced.tax = money(priced.tax.amount() + tax)?;
    priced.total = money(
        priced
            .total
            .amount()
            .checked_add(total)
            .ok_or(ShippingUnavailable::AmountOverflow)?,
    )?;
    priced.shipping = Some(PricedShipping {
        method_id,
        name: method.name.clone(),
        amount,
        discount,
        tax: money(tax)?,
        total: money(total)?,
    });
    Ok(priced)
}

/// What each promotion takes off, applied in sequence.
type Applied<'a> = (Vec<i64>, Vec<(&'a PromotionRule, i64, bool)>);

fn total_of(applied: &[(&PromotionRule, i64, bool)]) -> i64 {
    applied.iter().map(|(_, amount, _)| amount).sum()
}

/// Applies `rules` one after the other (buy X get Y first, then promotions on products,
/// categories and brands, then on the whole cart), each on what the earlier ones left of
/// the lines. Returns each line's discount and each rule's amount.
fn apply<'a>(lines: &[PricingLine], gross: &[i64], rules: &[&'a PromotionRule]) -> Applied<'a> {
    let mut rules = rules.to_vec();
    rules.sort_by_key(|r| (r.application_rank(), r.id));
    let mut left = gross.to_vec();
    let mut applied = Vec::new();
    for rule in rules {
        let eligible: Vec<usize> = (0..lines.len())
            .filter(|&i| rule.applies_to.matches(&lines[i]))
            .collect();
        let taken = match &rule.discount {
            Discount::Percent(rate) => {
                let base: i64 = eligible.iter().map(|&i| left[i]).sum();
                spread(rate.of(base), &eligible, &left)
            }
            Discount::Amount(amount) => {
                let base: i64 = eligible.iter().map(|&i| left[i]).sum();
                spread(amount.amount().min(base), &eligible, &left)
            }
            Discount::BuyXGetY { buy, get } => free_units(lines, &eligible, &left, *buy, *get),
            Discount::FreeShipping {} => vec![0; lines.len()],
        };
        let amount: i64 = taken.iter().sum();
        let free_shipping = matches!(rule.discount, Discount::FreeShipping {});
        if amount > 0 || free_shipping {
            for (l, t) in left.iter_mut().zip(&taken) {
                *l -= t;
            }
            applied.push((rule, amount, free_shipping));
        }
    }
    let discounts = gross.iter().zip(&left).map(|(g, l)| g - l).collect();
    (discounts, applied)
}

/// Spreads `amount` (at most the sum of `left` over `eligible`) over the eligible lines in
/// proportion to what is left of each, by largest remainder: the shares are whole minor
/// units, none exceeds its line, and they add up to `amount` exactly.
fn spread(amount: i64, eligible: &[usize], left: &[i64]) -> Vec<i64> {
    let mut shares = vec![0i64; left.len()];
    let base: i64 = eligible.iter().map(|&i| left[i]).sum();
    if amount <= 0 || base <= 0 {
        return shares;
    }
    let mut remainders = Vec::with_capacity(eligible.len());
    let mut given = 0i64;
    for &i in eligible {
        let exact = i128::from(amount) * i128::from(left[i]);
        let share = i64::try_from(exact / i128::from(base)).unwrap_or(0);
        shares[i] = share;
        given += share;
        remainders.push((exact % i128::from(base), i));
    }
    // Largest remainder first; among equal remainders, the earlier line.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders
        .into_iter()
        .take(usize::try_from(amount - given).unwrap_or(0))
    {
        shares[i] += 1;
    }
    shares
}

/// Buy X get Y: of every `buy + get` eligible units, most expensive first, the cheapest
/// `get` are free. Each free unit's price comes off its own line (capped at what the line
/// has left).
fn free_units(
    lines: &[PricingLine],
    eligible: &[usize],
    left: &[i64],
    buy: u32,
    get: u32,
) -> Vec<i64> {
    let mut taken = vec![0i64; lines.len()];
    let mut units: Vec<(i64, usize)> = eligible
        .iter()
        .flat_map(|&i| {
            std::iter::repeat_n(
                (lines[i].unit_price.amount(), i),
                lines[i].quantity.get() as usize,
            )
        })
        .collect();
    units.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let group = (buy + get) as usize;
    if group == 0 {
        return taken;
    }
    for chunk in units.chunks_exact(group) {
        for &(price, i) in &chunk[buy as usize..] {
            taken[i] = (taken[i] + price).min(left[i]);
        }
    }
    taken
}

impl PromotionRule {
    fn passed_over(&self, reason: PassedOverReason) -> PassedOver {
        PassedOver {
            promotion_id: self.id,
            code: self.code.clone(),
            reason,
        }
    }

    /// Why this rule cannot apply to these lines at all, if it cannot.
    fn refusal(
        &self,
        lines: &[PricingLine],
        currency: Currency,
        subtotal: i64,
    ) -> Option<PassedOverReason> {
        let other_currency = |m: &Money| m.currency() != currency;
        if self.min_subtotal.as_ref().is_some_and(other_currency)
            || matches!(&self.discount, Discount::Amount(m) if other_currency(m))
        {
            return Some(PassedOverReason::CurrencyMismatch);
        }
        if self.min_subtotal.is_some_and(|m| subtotal < m.amount()) {
            return Some(PassedOverReason::MinimumSubtotal);
        }
        let eligible_units: u64 = lines
            .iter()
            .filter(|l| self.applies_to.matches(l))
            .map(|l| u64::from(l.quantity.get()))
            .sum();
        let needed = match self.discount {
            Discount::BuyXGetY { buy, get } => u64::from(buy) + u64::from(get),
            Discount::FreeShipping {} => 0,
            _ => 1,
        };
        if eligible_units < needed {
            return Some(PassedOverReason::NoEligibleLines);
        }
        None
    }

    fn application_rank(&self) -> u8 {
        match (&self.discount, &self.applies_to) {
            (Discount::BuyXGetY { .. }, _) => 0,
            (_, Target::Cart) => 2,
            _ => 1,
        }
    }
}

/// Splits `paid` (what `units` units of a line cost the customer) for a refund of `count`
/// units after `done` of them were already paid back: units are worth
/// `paid * k / units` cumulatively (rounded down), so refunding every unit, in any steps,
/// gives back exactly `paid`, and no step gives back more than its units' share.
pub fn unit_share(paid: i64, units: u32, done: u32, count: u32) -> i64 {
    if units == 0 {
        return 0;
    }
    let upto = |k: u32| {
        let k = i128::from(k.min(units));
        i64::try_from(i128::from(paid) * k / i128::from(units)).unwrap_or(0)
    };
    upto(done.saturating_add(count)) - upto(done)
}
