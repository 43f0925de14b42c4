use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::pricing::{Discount, Rate, Stacking, Target};
use crate::test_support::execute;
use crate::test_support::fixtures::{at, customer_id, eur, order_id};
use crate::values::{CouponCode, PromotionId, PromotionName};

fn terms() -> PromotionTerms {
    PromotionTerms {
        name: PromotionName::new("Spring sale").unwrap(),
        code: Some(CouponCode::new("SPRING").unwrap()),
        discount: Discount::Percent(Rate::parse("10").unwrap()),
        applies_to: Target::Cart,
        min_subtotal: None,
        stacking: Stacking::Combinable,
        starts_at: Some(at(0)),
        ends_at: Some(at(30)),
        usage_limit: Some(2),
        per_customer_limit: None,
    }
}

fn created(terms: PromotionTerms) -> Promotion {
    let mut promotion = Promotion::default();
    let command = PromotionCommand::CreatePromotion {
        promotion_id: PromotionId::new(Uuid::from_u128(7)),
        terms,
        active: true,
    };
    execute(&mut promotion, command, &()).unwrap();
    promotion
}

fn run(
    promotion: &mut Promotion,
    command: PromotionCommand,
) -> Result<Vec<PromotionEvent>, PromotionError> {
    // `execute` applies the events, as the framework does.
    execute(promotion, command, &())
}

fn reserve(order: u128, customer: Option<u128>, minute: u32) -> PromotionCommand {
    PromotionCommand::ReserveRedemption {
        order_id: order_id(order),
        customer_id: customer.map(customer_id),
        at: at(minute),
    }
}

#[test]
fn bad_terms_are_refused() {
    let mut promotion = Promotion::default();
    let mut create = |terms| {
        execute(
            &mut promotion,
            PromotionCommand::CreatePromotion {
                promotion_id: PromotionId::new(Uuid::from_u128(1)),
                terms,
                active: true,
            },
            &(),
        )
    };
    let backwards = PromotionTerms {
        starts_at: Some(at(30)),
        ends_at: Some(at(0)),
        ..terms()
    };
    assert_eq!(create(backwards), Err(PromotionError::InvalidWindow));
    let zero = PromotionTerms {
        usage_limit: Some(0),
        ..terms()
    };
    assert_eq!(create(zero), Err(PromotionError::InvalidLimit));
    let nothing = PromotionTerms {
        discount: Discount::Amount(eur(0)),
        ..terms()
    };
    assert_eq!(create(nothing), Err(PromotionError::EmptyDiscount));
    let group = PromotionTerms {
        discount: Discount::BuyXGetY { buy: 0, get: 1 },
        ..terms()
    };
    assert_eq!(create(group), Err(PromotionError::InvalidBuyXGetY));
    assert_eq!(PromotionError::InvalidWindow.code(), "invalid_window");
}

#[test]
fn uses_are_held_up_to_the_limit_and_given_back_by_a_release() {
    let mut promotion = created(terms());
    assert_eq!(run(&mut promotion, reserve(1, None, 5)).unwrap().len(), 1);
    // The same order again holds nothing more.
    assert!(run(&mut promotion, reserve(1, None, 5)).unwrap().is_empty());
    run(&mut promotion, reserve(2, None, 5)).unwrap();
    assert_eq!(
        run(&mut promotion, reserve(3, None, 5)),
        Err(PromotionError::UsageLimitReached { limit: 2 })
    );
    let released = run(
        &mut promotion,
        PromotionCommand::ReleaseRedemption {
            order_id: order_id(1),
        },
    )
    .unwrap();
    assert_eq!(
        released,
        vec![PromotionEvent::PromotionRedemptionReleased {
            order_id: order_id(1),
            uses: 1
        }]
    );
    // Releasing again, or a late reservation of the released order, holds nothing.
    assert!(run(
        &mut promotion,
        PromotionCommand::ReleaseRedemption {
            order_id: order_id(1)
        }
    )
    .unwrap()
    .is_empty());
    assert!(run(&mut promotion, reserve(1, None, 6)).unwrap().is_empty());
    assert_eq!(promotion.uses(), 1);
    run(&mut promotion, reserve(3, None, 6)).unwrap();
    assert_eq!(promotion.uses(), 2);
}

#[test]
fn the_window_and_the_active_flag_bound_new_uses() {
    let mut promotion = created(terms());
    assert_eq!(
        run(&mut promotion, reserve(1, None, 30)),
        Err(PromotionError::OutsideWindow)
    );
    run(&mut promotion, PromotionCommand::DeactivatePromotion).unwrap();
    assert_eq!(
        run(&mut promotion, reserve(1, None, 5)),
        Err(PromotionError::NotActive)
    );
    assert_eq!(
        run(&mut promotion, PromotionCommand::DeactivatePromotion),
        Err(PromotionError::AlreadyInState("inactive"))
    );
    run(&mut promotion, PromotionCommand::ActivatePromotion).unwrap();
    run(&mut promotion, reserve(1, None, 5)).unwrap();
}

#[test]
fn a_per_customer_limit_counts_each_customer_and_refuses_guests() {
    let mut promotion = created(PromotionTerms {
        usage_limit: None,
        per_customer_limit: Some(1),
        ..terms()
    });
    run(&mut promotion, reserve(1, Some(1), 5)).unwrap();
    assert_eq!(
        run(&mut promotion, reserve(2, Some(1), 5)),
        Err(PromotionError::CustomerLimitReached { limit: 1 })
    );
    run(&mut promotion, reserve(3, Some(2), 5)).unwrap();
    assert_eq!(
        run(&mut promotion, reserve(4, None, 5)),
        Err(PromotionError::SignInRequired)
    );
}

#[test]
fn an_update_changes_terms_and_is_checked_like_a_creation() {
    let mut promotion = created(terms());
    let longer = PromotionChanges {
        ends_at: Some(Some(at(59))),
        usage_limit: Some(None),
        ..Default::default()
    };
    run(
        &mut promotion,
        PromotionCommand::UpdatePromotion { changes: longer },
    )
    .unwrap();
    for order in 1..=5 {
        run(&mut promotion, reserve(order, None, 45)).unwrap();
    }
    let backwards = PromotionChanges {
        starts_at: Some(Some(at(59))),
        ..Default::default()
    };
    assert_eq!(
        run(
            &mut promotion,
            PromotionCommand::UpdatePromotion { changes: backwards }
        ),
        Err(PromotionError::InvalidWindow)
    );
}

proptest! {
    /// Whatever the order of reservations and releases, the uses held never exceed the
    /// limit, and every order holds at most one.
    #[test]
    fn held_uses_never_exceed_the_limit(
        limit in 1u32..10,
        steps in prop::collection::vec((1u128..20, any::<bool>()), 1..80),
    ) {
        let mut promotion = created(PromotionTerms { usage_limit: Some(limit), ..terms() });
        for (order, release) in steps {
            let command = if release {
                PromotionCommand::ReleaseRedemption { order_id: order_id(order) }
            } else {
                reserve(order, None, 5)
            };
            let _ = run(&mut promotion, command);
            prop_assert!(promotion.uses() <= limit);
        }
    }
}
