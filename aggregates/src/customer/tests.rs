use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent};

use super::*;
use crate::personal::{DataSubject, Personal};
use crate::test_support::fixtures::{address, at, customer_id};
use crate::values::{Email, PersonName, PhoneNumber};

fn fixture() -> TestFramework<Customer> {
    TestFramework::with(())
}

fn email(s: &str) -> Email {
    Email::new(s).unwrap()
}

fn name(s: &str) -> PersonName {
    PersonName::new(s).unwrap()
}

/// Personal data of customer 1.
fn mine<T>(value: T) -> Personal<T> {
    Personal::new(DataSubject::Customer(customer_id(1)), value)
}

fn registered() -> CustomerEvent {
    CustomerEvent::CustomerRegistered {
        customer_id: customer_id(1),
        email: mine(email("ada@example.com")),
        name: mine(name("Ada Lovelace")),
    }
}

fn forgotten() -> CustomerEvent {
    CustomerEvent::CustomerForgotten {
        customer_id: customer_id(1),
        requested_at: at(0),
    }
}

fn register() -> CustomerCommand {
    CustomerCommand::RegisterCustomer {
        customer_id: customer_id(1),
        email: email("ada@example.com"),
        name: name("Ada Lovelace"),
    }
}

fn change_profile(phone: Option<&str>) -> CustomerCommand {
    CustomerCommand::ChangeCustomerProfile {
        name: name("Ada King"),
        email: email("ada@example.org"),
        phone: phone.map(|p| PhoneNumber::new(p).unwrap()),
    }
}

#[test]
fn register_customer() {
    fixture()
        .given_no_previous_events()
        .when(register())
        .then_expect_events(vec![registered()]);
}

#[test]
fn register_twice_is_refused() {
    fixture()
        .given(vec![registered()])
        .when(register())
        .then_expect_error(CustomerError::AlreadyExists);
}

#[test]
fn commands_before_registration_are_refused() {
    fixture()
        .given_no_previous_events()
        .when(change_profile(None))
        .then_expect_error(CustomerError::NotFound);
}

#[test]
fn change_profile_records_personal_data_wrapped() {
    fixture()
        .given(vec![registered()])
        .when(change_profile(Some("+44 20 7946 0958")))
        .then_expect_events(vec![CustomerEvent::CustomerProfileChanged {
            name: mine(name("Ada King")),
            email: mine(email("ada@example.org")),
            phone: Some(mine(PhoneNumber::new("+44 20 7946 0958").unwrap())),
        }]);
}

#[test]
fn unchanged_profile_records_nothing() {
    fixture()
        .given(vec![registered()])
        .when(CustomerCommand::ChangeCustomerProfile {
            name: name("Ada Lovelace"),
            email: email("ada@example.com"),
            phone: None,
        })
        .then_expect_events(vec![]);
}

#[test]
fn change_address() {
    fixture()
        .given(vec![registered()])
        .when(CustomerCommand::ChangeCustomerAddress { address: address() })
        .then_expect_events(vec![CustomerEvent::CustomerAddressChanged {
            address: mine(address()),
        }]);
    fixture()
        .given(vec![
            registered(),
            CustomerEvent::CustomerAddressChanged {
                address: mine(address()),
            },
        ])
        .when(CustomerCommand::ChangeCustomerAddress { address: address() })
        .then_expect_events(vec![]);
}

#[test]
fn forget_customer() {
    fixture()
        .given(vec![registered()])
        .when(CustomerCommand::ForgetCustomer {
            requested_at: at(0),
        })
        .then_expect_events(vec![forgotten()]);
}

#[test]
fn forgotten_customer_cannot_change() {
    for command in [
        change_profile(None),
        CustomerCommand::ChangeCustomerAddress { address: address() },
        CustomerCommand::ForgetCustomer {
            requested_at: at(1),
        },
    ] {
        fixture()
            .given(vec![registered(), forgotten()])
            .when(command)
            .then_expect_error(CustomerError::Forgotten);
    }
    fixture()
        .given(vec![registered(), forgotten()])
        .when(register())
        .then_expect_error(CustomerError::AlreadyExists);
}

#[test]
fn forgetting_drops_personal_data_from_state() {
    let mut customer = Customer::default();
    customer.apply(registered());
    customer.apply(CustomerEvent::CustomerAddressChanged {
        address: mine(address()),
    });
    assert!(customer.email().is_some());
    assert!(customer.address().is_some());
    customer.apply(forgotten());
    assert_eq!(customer.status(), CustomerStatus::Forgotten);
    assert!(customer.email().is_none() && customer.name().is_none());
    assert!(customer.address().is_none());
    let snapshot = serde_json::to_string(&customer).unwrap();
    assert!(!snapshot.contains("Ada") && !snapshot.contains("example"));
}

#[test]
fn personal_data_never_reaches_debug_output() {
    let debug = format!("{:?}", registered());
    assert!(!debug.contains("Ada") && !debug.contains("example.com"));
}

#[test]
fn event_types_and_codes_are_stable() {
    assert_eq!(registered().event_type(), "CustomerRegistered");
    assert_eq!(registered().event_version(), "2.0");
    assert_eq!(forgotten().event_version(), "1.0");
    assert_eq!(CustomerError::Forgotten.code(), "customer_forgotten");
    assert_eq!(Customer::TYPE, "Customer");
}

#[test]
fn the_phone_on_file_is_kept_in_state_and_cleared_when_forgotten() {
    let phone = PhoneNumber::new("+44 20 7946 0958").unwrap();
    let mut customer = Customer::default();
    customer.apply(registered());
    assert!(customer.phone().is_none());
    customer.apply(CustomerEvent::CustomerProfileChanged {
        name: mine(name("Ada King")),
        email: mine(email("ada@example.org")),
        phone: Some(mine(phone.clone())),
    });
    assert_eq!(customer.phone().and_then(Personal::expose), Some(&phone));
    customer.apply(forgotten());
    assert!(customer.phone().is_none());
}
