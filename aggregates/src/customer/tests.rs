use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent};

use super::*;
use crate::personal::Personal;
use crate::test_support::fixtures::{address, at, customer_id};
use crate::values::{Email, PasswordHash, PersonName, PhoneNumber};

fn fixture() -> TestFramework<Customer> {
    TestFramework::with(())
}

fn email(s: &str) -> Email {
    Email::new(s).unwrap()
}

fn name(s: &str) -> PersonName {
    PersonName::new(s).unwrap()
}

fn hash() -> PasswordHash {
    PasswordHash::new("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA").unwrap()
}

fn registered() -> CustomerEvent {
    CustomerEvent::CustomerRegistered {
        customer_id: customer_id(1),
        email: Personal::new(email("ada@example.com")),
        name: Personal::new(name("Ada Lovelace")),
        password_hash: Personal::new(hash()),
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
        password_hash: hash(),
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
            name: Personal::new(name("Ada King")),
            email: Personal::new(email("ada@example.org")),
            phone: Some(Personal::new(PhoneNumber::new("+44 20 7946 0958").unwrap())),
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
            address: Personal::new(address()),
        }]);
    fixture()
        .given(vec![
            registered(),
            CustomerEvent::CustomerAddressChanged {
                address: Personal::new(address()),
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
        address: Personal::new(address()),
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
    assert!(!debug.contains("Ada") && !debug.contains("example.com") && !debug.contains("argon"));
}

#[test]
fn event_types_and_codes_are_stable() {
    assert_eq!(registered().event_type(), "CustomerRegistered");
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
        name: Personal::new(name("Ada King")),
        email: Personal::new(email("ada@example.org")),
        phone: Some(Personal::new(phone.clone())),
    });
    assert_eq!(customer.phone().map(Personal::expose), Some(&phone));
    customer.apply(forgotten());
    assert!(customer.phone().is_none());
}
