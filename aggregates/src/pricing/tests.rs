use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::money::Currency;

fn cur(code: &str) -> Currency {
    Currency::new(code).unwrap()
}

fn line(sku: &str, quantity: u32, price: i64, currency: &str) -> PricingLine {
    PricingLine {
        sku: Sku::new(sku).unwrap(),
        quantity: Quantity::new(quantity).unwrap(),
        unit_price: Money::new(price, cur(currency)).unwrap(),
        category: Some(CategoryPath::new(["kitchen", "teapots"]).unwrap()),
        brand: Some(Brand::new("Kyusu").unwrap()),
        weight_grams: None,
    }
}

fn rule(n: u128, discount: Discount) -> PromotionRule {
    PromotionRule {
        id: PromotionId::new(Uuid::from_u128(n)),
        name: PromotionName::new(format!("promotion {n}")).unwrap(),
        code: None,
        discount,
        applies_to: Target::Cart,
        min_subtotal: None,
        stacking: Stacking::Combinable,
    }
}

fn pct(s: &str) -> Rate {
    Rate::parse(s).unwrap()
}

fn vat(rate: &str, inclusive: bool) -> TaxRule {
    TaxRule {
        rate: pct(rate),
        prices_include_tax: inclusive,
    }
}

fn amounts(priced: &Priced) -> Vec<(i64, i64, i64)> {
    priced
        .lines
        .iter()
        .map(|l| (l.discount.amount(), l.tax.amount(), l.total.amount()))
        .collect()
}

#[test]
fn a_percentage_off_the_cart_is_rounded_once_and_spread_by_largest_remainder() {
    // 10% of 3 x 0.33 EUR = 9.9 cents: 10 cents, spread 3/3/4 over three equal lines.
    let lines = [
        line("A", 1, 33, "EUR"),
        line("B", 1, 33, "EUR"),
        line("C", 1, 33, "EUR"),
    ];
    let priced = price(
        &lines,
        &[rule(1, Discount::Percent(pct("10")))],
        TaxRule::none(true),
    )
    .unwrap();
    assert_eq!(priced.discount_total.amount(), 10);
    let shares: Vec<i64> = priced.lines.iter().map(|l| l.discount.amount()).collect();
    assert_eq!(shares, vec![4, 3, 3]);
    assert_eq!(priced.total.amount(), 89);
    assert_eq!(priced.discounts[0].amount.amount(), 10);
}

#[test]
fn tax_exclusive_prices_get_tax_added_per_line_after_discounts() {
    // 2 x 10.00 EUR less 5.00 EUR, 19% VAT on 15.00: 2.85.
    let lines = [line("A", 2, 1000, "EUR")];
    let five = Money::new(500, Currency::EUR).unwrap();
    let priced = price(&lines, &[rule(1, Discount::Amount(five))], vat("19", false)).unwrap();
    assert_eq!(amounts(&priced), vec![(500, 285, 1785)]);
    assert_eq!(
        (
            priced.subtotal.amount(),
            priced.tax.amount(),
            priced.total.amount()
        ),
        (2000, 285, 1785)
    );
}

#[test]
fn tax_inclusive_prices_keep_their_total_and_show_the_tax_inside() {
    let lines = [line("A", 1, 11900, "EUR"), line("B", 3, 100, "EUR")];
    let priced = price(&lines, &[], vat("19", true)).unwrap();
    // 119.00 holds 19.00; 3.00 holds 0.479: 0.48.
    assert_eq!(amounts(&priced), vec![(0, 1900, 11900), (0, 48, 300)]);
    assert_eq!(priced.tax.amount(), 1948);
    assert_eq!(priced.total.amount(), 12200);
}

#[test]
fn zero_two_and_three_decimal_currencies_round_to_their_own_minor_unit() {
    // JPY has no minor unit: 8% of 1,234 yen is 98.72 yen, charged 99.
    let yen = price(&[line("A", 1, 1234, "JPY")], &[], vat("8", false)).unwrap();
    assert_eq!((yen.tax.amount(), yen.total.amount()), (99, 1333));
    // KWD has three decimals: 12.345 KWD less 15% (1.85175: 1.852), no VAT.
    let kwd = price(
        &[line("A", 1, 12345, "KWD")],
        &[rule(1, Discount::Percent(pct("15")))],
        TaxRule::none(false),
    )
    .unwrap();
    assert_eq!(
        (kwd.discount_total.amount(), kwd.total.amount()),
        (1852, 10493)
    );
    // EUR: 12.5% off 9.99 is 1.24875: 1.25.
    let eur = price(
        &[line("A", 1, 999, "EUR")],
        &[rule(1, Discount::Percent(pct("12.5")))],
        TaxRule::none(true),
    )
    .unwrap();
    assert_eq!(eur.discount_total.amount(), 125);
}

#[test]
fn buy_two_get_one_frees_the_cheapest_unit_of_each_group() {
    let lines = [line("A", 2, 3000, "EUR"), line("B", 2, 1000, "EUR")];
    let b2g1 = rule(1, Discount::BuyXGetY { buy: 2, get: 1 });
    let priced = price(&lines, &[b2g1], TaxRule::none(true)).unwrap();
    // Units by price: 30, 30, 10 | 10: one full group, its cheapest (10.00 of B) is free.
    assert_eq!(amounts(&priced), vec![(0, 0, 6000), (1000, 0, 1000)]);
    let too_few = price(
        &[line("A", 2, 3000, "EUR")],
        &[rule(1, Discount::BuyXGetY { buy: 2, get: 1 })],
        TaxRule::none(true),
    )
    .unwrap();
    assert!(too_few.discounts.is_empty());
    assert_eq!(
        too_few.passed_over[0].reason,
        PassedOverReason::NoEligibleLines
    );
}

#[test]
fn targets_limit_a_promotion_to_a_product_category_or_brand() {
    let mut mug = line("MUG", 1, 1000, "EUR");
    mug.category = Some(CategoryPath::new(["kitchen", "mugs"]).unwrap());
    mug.brand = Some(Brand::new("Other").unwrap());
    let pot = line("POT", 1, 5000, "EUR");
    let lines = [mug, pot];
    let targeted = |n, target| PromotionRule {
        applies_to: target,
        ..rule(n, Discount::Percent(pct("10")))
    };
    for (target, expected) in [
        (Target::Product(Sku::new("MUG").unwrap()), vec![100, 0]),
        (
            Target::Category(CategoryPath::new(["kitchen", "teapots"]).unwrap()),
            vec![0, 500],
        ),
        (
            Target::Category(CategoryPath::new(["kitchen"]).unwrap()),
            vec![100, 500],
        ),
        (Target::Brand(Brand::new("Kyusu").unwrap()), vec![0, 500]),
    ] {
        let priced = price(&lines, &[targeted(1, target.clone())], TaxRule::none(true)).unwrap();
        let shares: Vec<i64> = priced.lines.iter().map(|l| l.discount.amount()).collect();
        assert_eq!(shares, expected, "{target:?}");
    }
}

#[test]
fn an_exclusive_promotion_applies_alone_when_it_gives_more() {
    let lines = [line("A", 1, 10000, "EUR")];
    let ten = rule(1, Discount::Percent(pct("10")));
    let five = rule(2, Discount::Percent(pct("5")));
    let big = PromotionRule {
        stacking: Stacking::Exclusive,
        ..rule(3, Discount::Percent(pct("20")))
    };
    let small = PromotionRule {
        stacking: Stacking::Exclusive,
        ..rule(4, Discount::Percent(pct("12")))
    };
    let priced = price(
        &lines,
        &[ten.clone(), five.clone(), big.clone(), small.clone()],
        TaxRule::none(true),
    )
    .unwrap();
    assert_eq!(priced.discounts.len(), 1);
    assert_eq!(priced.discounts[0].promotion_id, big.id);
    assert_eq!(priced.discount_total.amount(), 2000);
    let reasons: Vec<_> = priced.passed_over.iter().map(|p| p.reason).collect();
    assert_eq!(reasons, vec![PassedOverReason::NotCombinable; 3]);
    // 10% then 5% of the rest (14.50) beats the exclusive 12%.
    let combined = price(&lines, &[ten, five, small], TaxRule::none(true)).unwrap();
    assert_eq!(combined.discount_total.amount(), 1450);
}

#[test]
fn a_minimum_subtotal_or_another_currency_passes_a_promotion_over() {
    let lines = [line("A", 1, 4999, "EUR")];
    let min = PromotionRule {
        min_subtotal: Some(Money::new(5000, Currency::EUR).unwrap()),
        ..rule(1, Discount::Percent(pct("10")))
    };
    let usd = rule(2, Discount::Amount(Money::new(100, Currency::USD).unwrap()));
    let priced = price(&lines, &[min, usd], TaxRule::none(true)).unwrap();
    assert!(priced.discounts.is_empty());
    let reasons: Vec<_> = priced.passed_over.iter().map(|p| p.reason).collect();
    assert_eq!(
        reasons,
        vec![
            PassedOverReason::MinimumSubtotal,
            PassedOverReason::CurrencyMismatch
        ]
    );
    assert_eq!(priced.total.amount(), 4999);
}

#[test]
fn a_fixed_amount_never_takes_more_than_the_lines_cost() {
    let lines = [line("A", 1, 300, "EUR")];
    let priced = price(
        &lines,
        &[rule(
            1,
            Discount::Amount(Money::new(1000, Currency::EUR).unwrap()),
        )],
        vat("20", false),
    )
    .unwrap();
    assert_eq!(amounts(&priced), vec![(300, 0, 0)]);
}

#[test]
fn unit_shares_of_a_paid_line_add_up_to_what_was_paid() {
    // 3 units that cost 10.00 together: 3.33, 3.33, 3.34.
    assert_eq!(
        [
            unit_share(1000, 3, 0, 1),
            unit_share(1000, 3, 1, 1),
            unit_share(1000, 3, 2, 1)
        ],
        [333, 333, 334]
    );
    assert_eq!(unit_share(1000, 3, 0, 3), 1000);
    assert_eq!(unit_share(1000, 3, 3, 1), 0);
}

fn currency() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("JPY"), Just("EUR"), Just("KWD")]
}

fn discount(currency: &'static str) -> impl Strategy<Value = Discount> {
    prop_oneof![
        (1u32..=100_000).prop_map(|t| Discount::Percent(Rate::from_thousandths(t).unwrap())),
        (1i64..100_000).prop_map(move |a| Discount::Amount(Money::new(a, cur(currency)).unwrap())),
        (1u32..4, 1u32..3).prop_map(|(buy, get)| Discount::BuyXGetY { buy, get }),
    ]
}

prop_compose! {
    fn cart()(currency in currency())(
        currency in Just(currency),
        lines in prop::collection::vec((1u32..20, 0i64..1_000_000, 0usize..3), 1..8),
        rules in prop::collection::vec((discount(currency), 0usize..4, any::<bool>()), 0..5),
        rate in 0u32..=30_000,
        inclusive in any::<bool>(),
    ) -> (Vec<PricingLine>, Vec<PromotionRule>, TaxRule) {
        let brands = ["A", "B", "C"];
        let lines = lines.into_iter().enumerate().map(|(i, (q, p, b))| PricingLine {
            brand: Some(Brand::new(brands[b]).unwrap()),
            ..line(&format!("SKU-{i}"), q, p, currency)
        }).collect();
        let rules = rules.into_iter().enumerate().map(|(i, (discount, target, exclusive))| PromotionRule {
            applies_to: match target {
                0 => Target::Cart,
                1 => Target::Brand(Brand::new("A").unwrap()),
                2 => Target::Product(Sku::new("SKU-0").unwrap()),
                _ => Target::Category(CategoryPath::new(["kitchen"]).unwrap()),
            },
            stacking: if exclusive { Stacking::Exclusive } else { Stacking::Combinable },
            ..rule(i as u128 + 1, discount)
        }).collect();
        (lines, rules, TaxRule { rate: Rate::from_thousandths(rate).unwrap(), prices_include_tax: inclusive })
    }
}

proptest! {
    #[test]
    fn every_figure_reconciles_to_the_minor_unit((lines, rules, tax) in cart()) {
        let priced = price(&lines, &rules, tax).unwrap();
        prop_assert!(priced.reconciles());
        let sum = |f: fn(&PricedLine) -> i64| priced.lines.iter().map(f).sum::<i64>();
        prop_assert_eq!(sum(|l| l.discount.amount()), priced.discount_total.amount());
        prop_assert_eq!(priced.discounts.iter().map(|d| d.amount.amount()).sum::<i64>(), priced.discount_total.amount());
        prop_assert_eq!(sum(|l| l.tax.amount()), priced.tax.amount());
        prop_assert_eq!(sum(|l| l.total.amount()), priced.total.amount());
        prop_assert_eq!(sum(|l| l.line_total.amount()), priced.subtotal.amount());
        for l in &priced.lines {
            prop_assert!(l.discount.amount() <= l.line_total.amount());
            let net = l.line_total.amount() - l.discount.amount();
            if tax.prices_include_tax {
                prop_assert_eq!(l.total.amount(), net);
                prop_assert!(l.tax.amount() <= net);
            } else {
                prop_assert_eq!(l.total.amount(), net + l.tax.amount());
            }
        }
        let expected = priced.subtotal.amount() - priced.discount_total.amount()
            + if tax.prices_include_tax { 0 } else { priced.tax.amount() };
        prop_assert_eq!(priced.total.amount(), expected);
        // Every promotion offered is either applied or passed over with a reason.
        prop_assert_eq!(priced.discounts.len() + priced.passed_over.len(), rules.len());
    }

    #[test]
    fn partial_refunds_never_give_back_more_than_was_paid(
        paid in 0i64..10_000_000,
        units in 1u32..50,
        steps in prop::collection::vec(1u32..10, 1..20),
    ) {
        let mut done = 0;
        let mut refunded = 0;
        for step in steps {
            let count = step.min(units - done);
            let share = unit_share(paid, units, done, count);
            prop_assert!(share >= 0);
            refunded += share;
            done += count;
            prop_assert!(refunded <= paid);
            if done == units { break; }
        }
        refunded += unit_share(paid, units, done, units - done);
        prop_assert_eq!(refunded, paid);
    }
}
