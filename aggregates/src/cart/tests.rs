use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent};
use uuid::Uuid;

use super::*;
use crate::money::Currency;
use crate::test_support::fixtures::{customer_id, eur, order_id, qty, sku, usd};
use crate::values::{CartId, ProductName, Sku};

struct StaticCatalog(BTreeMap<Sku, CatalogEntry>);

#[async_trait]
impl CatalogLookup for StaticCatalog {
    async fn lookup(&self, sku: &Sku) -> Result<Option<CatalogEntry>, CatalogUnavailable> {
        Ok(self.0.get(sku).cloned())
    }
}

struct DownCatalog;

#[async_trait]
impl CatalogLookup for DownCatalog {
    async fn lookup(&self, _sku: &Sku) -> Result<Option<CatalogEntry>, CatalogUnavailable> {
        Err(CatalogUnavailable)
    }
}

fn entry(name: &str, price: crate::Money, sellable: bool) -> CatalogEntry {
    CatalogEntry {
        name: ProductName::new(name).unwrap(),
        unit_price: price,
        sellable,
        category: None,
        brand: None,
        weight_grams: None,
    }
}

fn catalog() -> CartServices {
    let entries = [
        ("MUG", entry("Mug", eur(1000), true)),
        ("PLATE", entry("Plate", eur(250), true)),
        ("OLD", entry("Old", eur(100), false)),
        ("DOLLAR", entry("Dollar", usd(100), true)),
        ("GOLD", entry("Gold", eur(i64::MAX / 2), true)),
    ]
    .into_iter()
    .map(|(s, e)| (sku(s), e))
    .collect();
    CartServices::new(Arc::new(StaticCatalog(entries)))
}

fn fixture() -> TestFramework<Cart> {
    TestFramework::with(catalog())
}

fn cart_id() -> CartId {
    CartId::new(Uuid::from_u128(42))
}

fn opened(customer: Option<u128>) -> CartEvent {
    CartEvent::CartOpened {
        cart_id: cart_id(),
        customer_id: customer.map(customer_id),
        currency: Currency::EUR,
    }
}

fn mug_added(quantity_added: u32, line_quantity: u32) -> CartEvent {
    CartEvent::CartItemAdded {
        sku: sku("MUG"),
        name: ProductName::new("Mug").unwrap(),
        category: None,
        brand: None,
        weight_grams: None,
        unit_price: eur(1000),
        quantity_added: qty(quantity_added),
        line_quantity: qty(line_quantity),
        line_total: eur(1000 * i64::from(line_quantity)),
        cart_total: eur(1000 * i64::from(line_quantity)),
    }
}

fn add(s: &str, n: u32) -> CartCommand {
    CartCommand::AddCartItem {
        sku: sku(s),
        quantity: qty(n),
    }
}

#[test]
fn open_cart() {
    fixture()
        .given_no_previous_events()
        .when(CartCommand::OpenCart {
            cart_id: cart_id(),
            customer_id: None,
            currency: Currency::EUR,
        })
        .then_expect_events(vec![opened(None)]);
}

#[test]
fn open_twice_is_refused() {
    fixture()
        .given(vec![opened(None)])
        .when(CartCommand::OpenCart {
            cart_id: cart_id(),
            customer_id: None,
            currency: Currency::EUR,
        })
        .then_expect_error(CartError::AlreadyExists);
}

#[test]
fn commands_before_open_are_refused() {
    fixture()
        .given_no_previous_events()
        .when(add("MUG", 1))
        .then_expect_error(CartError::NotFound);
}

#[test]
fn add_item_captures_catalog_price() {
    fixture()
        .given(vec![opened(None)])
        .when(add("MUG", 2))
        .then_expect_events(vec![mug_added(2, 2)]);
}

#[test]
fn adding_same_sku_grows_the_line() {
    fixture()
        .given(vec![opened(None), mug_added(2, 2)])
        .when(add("MUG", 1))
        .then_expect_events(vec![mug_added(1, 3)]);
}

#[test]
fn add_reports_cart_total_over_all_lines() {
    fixture()
        .given(vec![opened(None), mug_added(2, 2)])
        .when(add("PLATE", 4))
        .then_expect_events(vec![CartEvent::CartItemAdded {
            sku: sku("PLATE"),
            name: ProductName::new("Plate").unwrap(),
            category: None,
            brand: None,
            weight_grams: None,
            unit_price: eur(250),
            quantity_added: qty(4),
            line_quantity: qty(4),
            line_total: eur(1000),
            cart_total: eur(3000),
        }]);
}

#[test]
fn unknown_product_cannot_be_added() {
    fixture()
        .given(vec![opened(None)])
        .when(add("NOPE", 1))
        .then_expect_error(CartError::ProductNotFound(sku("NOPE")));
}

#[test]
fn unsellable_product_cannot_be_added() {
    fixture()
        .given(vec![opened(None)])
        .when(add("OLD", 1))
        .then_expect_error(CartError::ProductNotSellable(sku("OLD")));
}

#[test]
fn product_in_other_currency_cannot_be_added() {
    fixture()
        .given(vec![opened(None)])
        .when(add("DOLLAR", 1))
        .then_expect_error(CartError::CurrencyMismatch {
            cart: Currency::EUR,
            product: Currency::USD,
        });
}

#[test]
fn catalog_outage_is_reported() {
    TestFramework::<Cart>::with(CartServices::new(Arc::new(DownCatalog)))
        .given(vec![opened(None)])
        .when(add("MUG", 1))
        .then_expect_error(CartError::CatalogUnavailable);
}

#[test]
fn line_count_is_limited() {
    let mut history = vec![opened(None)];
    for i in 0..Cart::MAX_LINES {
        history.push(CartEvent::CartItemAdded {
            sku: sku(&format!("SKU{i}")),
            name: ProductName::new("x").unwrap(),
            category: None,
            brand: None,
            weight_grams: None,
            unit_price: eur(1),
            quantity_added: qty(1),
            line_quantity: qty(1),
            line_total: eur(1),
            cart_total: eur(1),
        });
    }
    fixture()
        .given(history.clone())
        .when(add("MUG", 1))
        .then_expect_error(CartError::TooManyLines {
            max: Cart::MAX_LINES,
        });
    // An existing line can still grow.
    fixture()
        .given(history)
        .when(CartCommand::AddCartItem {
            sku: sku("SKU0"),
            quantity: qty(1),
        })
        .then_expect_error(CartError::ProductNotFound(sku("SKU0")));
}

#[test]
fn line_quantity_is_limited() {
    let expected = CartError::LineQuantityLimit {
        max: Cart::MAX_LINE_QUANTITY,
    };
    fixture()
        .given(vec![opened(None), mug_added(2, 2)])
        .when(add("MUG", Cart::MAX_LINE_QUANTITY - 1))
        .then_expect_error(expected.clone());
    fixture()
        .given(vec![opened(None), mug_added(2, 2)])
        .when(CartCommand::ChangeCartItemQuantity {
            sku: sku("MUG"),
            quantity: qty(Cart::MAX_LINE_QUANTITY + 1),
        })
        .then_expect_error(expected);
}

#[test]
fn totals_that_overflow_are_refused() {
    fixture()
        .given(vec![opened(None)])
        .when(add("GOLD", 3))
        .then_expect_error(CartError::AmountOverflow);
}

#[test]
fn change_quantity() {
    fixture()
        .given(vec![opened(None), mug_added(2, 2)])
        .when(CartCommand::ChangeCartItemQuantity {
            sku: sku("MUG"),
            quantity: qty(5),
        })
        .then_expect_events(vec![CartEvent::CartItemQuantityChanged {
            sku: sku("MUG"),
            quantity: qty(5),
            line_total: eur(5000),
            cart_total: eur(5000),
        }]);
}

#[test]
fn change_to_same_quantity_records_nothing() {
    fixture()
        .given(vec![opened(None), mug_added(2, 2)])
        .when(CartCommand::ChangeCartItemQuantity {
            sku: sku("MUG"),
            quantity: qty(2),
        })
        .then_expect_events(vec![]);
}

#[test]
fn change_or_remove_missing_item_is_refused() {
    fixture()
        .given(vec![opened(None)])
        .when(CartCommand::ChangeCartItemQuantity {
            sku: sku("MUG"),
            quantity: qty(1),
        })
        .then_expect_error(CartError::ItemNotInCart(sku("MUG")));
    fixture()
        .given(vec![opened(None)])
        .when(CartCommand::RemoveCartItem { sku: sku("MUG") })
        .then_expect_error(CartError::ItemNotInCart(sku("MUG")));
}

#[test]
fn remove_item() {
    fixture()
        .given(vec![opened(None), mug_added(2, 2)])
        .when(CartCommand::RemoveCartItem { sku: sku("MUG") })
        .then_expect_events(vec![CartEvent::CartItemRemoved {
            sku: sku("MUG"),
            cart_total: eur(0),
        }]);
}

fn checked_out(customer: u128) -> CartEvent {
    CartEvent::CartCheckedOut {
        order_id: order_id(1),
        customer_id: Some(customer_id(customer)),
        lines: vec![CartLine {
            sku: sku("MUG"),
            name: ProductName::new("Mug").unwrap(),
            quantity: qty(2),
            unit_price: eur(1000),
            line_total: eur(2000),
        }],
        total: eur(2000),
        pricing: None,
    }
}

#[test]
fn check_out_own_cart() {
    fixture()
        .given(vec![opened(Some(7)), mug_added(2, 2)])
        .when(CartCommand::CheckOutCart {
            order_id: order_id(1),
            customer_id: None,
            pricing: None,
        })
        .then_expect_events(vec![checked_out(7)]);
}

#[test]
fn check_out_anonymous_cart_names_the_customer() {
    fixture()
        .given(vec![opened(None), mug_added(2, 2)])
        .when(CartCommand::CheckOutCart {
            order_id: order_id(1),
            customer_id: Some(customer_id(8)),
            pricing: None,
        })
        .then_expect_events(vec![checked_out(8)]);
}

#[test]
fn an_anonymous_cart_checked_out_without_a_customer_is_a_guests() {
    let mut cart = Cart::default();
    for event in [opened(None), mug_added(2, 2)] {
        cart.apply(event);
    }
    let events = crate::test_support::execute(
        &mut cart,
        CartCommand::CheckOutCart {
            order_id: order_id(1),
            customer_id: None,
            pricing: None,
        },
        &catalog(),
    )
    .unwrap();
    assert!(matches!(
        events[..],
        [CartEvent::CartCheckedOut {
            customer_id: None,
            ..
        }]
    ));
}

#[test]
fn check_out_by_another_customer_is_refused() {
    fixture()
        .given(vec![opened(Some(7)), mug_added(2, 2)])
        .when(CartCommand::CheckOutCart {
            order_id: order_id(1),
            customer_id: Some(customer_id(8)),
            pricing: None,
        })
        .then_expect_error(CartError::CustomerMismatch);
}

#[test]
fn check_out_empty_cart_is_refused() {
    fixture()
        .given(vec![opened(Some(7))])
        .when(CartCommand::CheckOutCart {
            order_id: order_id(1),
            customer_id: None,
            pricing: None,
        })
        .then_expect_error(CartError::EmptyCart);
}

#[test]
fn checked_out_cart_cannot_change() {
    for command in [
        add("MUG", 1),
        CartCommand::ChangeCartItemQuantity {
            sku: sku("MUG"),
            quantity: qty(1),
        },
        CartCommand::RemoveCartItem { sku: sku("MUG") },
        CartCommand::CheckOutCart {
            order_id: order_id(2),
            customer_id: None,
            pricing: None,
        },
    ] {
        fixture()
            .given(vec![opened(Some(7)), mug_added(2, 2), checked_out(7)])
            .when(command)
            .then_expect_error(CartError::CheckedOut);
    }
}

#[test]
fn state_exposes_lines_and_status() {
    let mut cart = Cart::default();
    for event in [opened(Some(7)), mug_added(2, 2), checked_out(7)] {
        cart.apply(event);
    }
    assert_eq!(cart.status(), CartStatus::CheckedOut);
    assert_eq!(cart.order_id(), Some(order_id(1)));
    assert_eq!(cart.customer_id(), Some(customer_id(7)));
    assert_eq!(cart.lines().unwrap().len(), 1);
    assert_eq!(Cart::TYPE, "Cart");
    assert_eq!(opened(None).event_type(), "CartOpened");
    assert_eq!(CartError::EmptyCart.code(), "cart_empty");
}

#[test]
fn coupons_are_held_by_code_and_priced_at_checkout() {
    use crate::pricing::{Discount, PromotionRule, Rate, Stacking, Target, TaxRule};
    use crate::values::{CouponCode, PromotionId, PromotionName};

    let mut cart = Cart::default();
    let run = |cart: &mut Cart, command| crate::test_support::execute(cart, command, &catalog());
    run(
        &mut cart,
        CartCommand::OpenCart {
            cart_id: CartId::new(Uuid::from_u128(1)),
            customer_id: None,
            currency: Currency::EUR,
        },
    )
    .unwrap();
    run(&mut cart, add("MUG", 2)).unwrap();
    let code = CouponCode::normalize(" spring ").unwrap();
    let promotion_id = PromotionId::new(Uuid::from_u128(9));
    let apply = CartCommand::ApplyCoupon {
        code: code.clone(),
        promotion_id,
    };
    assert_eq!(run(&mut cart, apply.clone()).unwrap().len(), 1);
    assert!(run(&mut cart, apply).unwrap().is_empty());
    assert_eq!(cart.coupons().get(&code), Some(&promotion_id));
    for n in 0..Cart::MAX_COUPONS - 1 {
        let other = CouponCode::new(format!("CODE{n}")).unwrap();
        run(
            &mut cart,
            CartCommand::ApplyCoupon {
                code: other,
                promotion_id,
            },
        )
        .unwrap();
    }
    let one_too_many = CartCommand::ApplyCoupon {
        code: CouponCode::new("EXTRA").unwrap(),
        promotion_id,
    };
    assert_eq!(
        run(&mut cart, one_too_many),
        Err(CartError::TooManyCoupons {
            max: Cart::MAX_COUPONS
        })
    );
    let unknown = CartCommand::RemoveCoupon {
        code: CouponCode::new("NOPE").unwrap(),
    };
    assert_eq!(
        run(&mut cart, unknown).unwrap_err().code(),
        "coupon_not_in_cart"
    );

    let rule = PromotionRule {
        id: promotion_id,
        name: PromotionName::new("Spring").unwrap(),
        code: Some(code),
        discount: Discount::Percent(Rate::parse("10").unwrap()),
        applies_to: Target::Cart,
        min_subtotal: None,
        stacking: Stacking::Combinable,
    };
    let tax = TaxRule {
        rate: Rate::parse("20").unwrap(),
        prices_include_tax: false,
    };
    let check_out = CartCommand::CheckOutCart {
        order_id: order_id(1),
        customer_id: None,
        pricing: Some(CheckoutPricing {
            promotions: vec![rule],
            tax,
            shipping: None,
        }),
    };
    run(&mut cart, check_out).unwrap();
    let priced = cart.checkout_pricing().unwrap();
    // 2 x 10.00 less 10% is 18.00, plus 20% tax: 21.60.
    assert_eq!(
        (priced.discount_total, priced.tax, priced.total),
        (eur(200), eur(360), eur(2160))
    );
}
