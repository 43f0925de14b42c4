//! Test helpers: run aggregates without a tokio runtime (their futures never wait).

use std::future::Future;
use std::task::{Context, Poll, Waker};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;

/// Polls a future that is ready without waiting (all domain futures with in-memory
/// services are); panics if it ever is not, which would be a test bug.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("domain future did not complete without waiting");
}

/// Handles one command on a live aggregate, as the framework would, returning its events.
pub(crate) fn execute<A: Aggregate>(
    aggregate: &mut A,
    command: A::Command,
    services: &A::Services,
) -> Result<Vec<A::Event>, A::Error> {
    let sink = EventSink::default();
    block_on(aggregate.handle(command, services, &sink))?;
    Ok(block_on(sink.collect()))
}

/// Short constructors for test data.
pub(crate) mod fixtures {
    use chrono::{DateTime, TimeZone, Utc};
    use uuid::Uuid;

    use crate::money::{Currency, Money};
    use crate::values::{
        CountryCode, CustomerId, OrderId, PaymentId, PaymentMethodToken, PersonName, PostalAddress,
        Quantity, Sku, WarehouseId,
    };

    pub(crate) fn sku(s: &str) -> Sku {
        Sku::new(s).unwrap()
    }

    pub(crate) fn eur(amount: i64) -> Money {
        Money::new(amount, Currency::EUR).unwrap()
    }

    pub(crate) fn usd(amount: i64) -> Money {
        Money::new(amount, Currency::USD).unwrap()
    }

    pub(crate) fn qty(n: u32) -> Quantity {
        Quantity::new(n).unwrap()
    }

    pub(crate) fn wh(s: &str) -> WarehouseId {
        WarehouseId::new(s).unwrap()
    }

    pub(crate) fn order_id(n: u128) -> OrderId {
        OrderId::new(Uuid::from_u128(n))
    }

    pub(crate) fn customer_id(n: u128) -> CustomerId {
        CustomerId::new(Uuid::from_u128(0xC000 + n))
    }

    pub(crate) fn payment_id(n: u128) -> PaymentId {
        PaymentId::new(Uuid::from_u128(0xB000 + n))
    }

    pub(crate) fn token() -> PaymentMethodToken {
        PaymentMethodToken::new("tok_visa").unwrap()
    }

    pub(crate) fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 12, minute, 0).unwrap()
    }

    pub(crate) fn address() -> PostalAddress {
        PostalAddress::new(
            PersonName::new("Ada Lovelace").unwrap(),
            "1 Main Street",
            None,
            "London",
            "N1 9GU",
            CountryCode::new("GB").unwrap(),
        )
        .unwrap()
    }
}
