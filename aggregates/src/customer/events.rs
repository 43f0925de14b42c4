use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::personal::Personal;
use crate::values::{CustomerId, Email, PersonName, PhoneNumber, PostalAddress};

/// Events of the [`super::Customer`] aggregate. Version 2.0 of the first three: personal
/// data names its subject and is sealed in the store, and the password hash is gone (it
/// lives only with the login credentials); `crate::upcasting` reads 1.0 payloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CustomerEvent {
    /// A customer registered.
    CustomerRegistered {
        /// The customer.
        customer_id: CustomerId,
        /// Email (personal data).
        email: Personal<Email>,
        /// Name (personal data).
        name: Personal<PersonName>,
    },
    /// The profile was replaced.
    CustomerProfileChanged {
        /// Name (personal data).
        name: Personal<PersonName>,
        /// Email (personal data).
        email: Personal<Email>,
        /// Phone (personal data).
        phone: Option<Personal<PhoneNumber>>,
    },
    /// The default shipping address was replaced.
    CustomerAddressChanged {
        /// The address (personal data).
        address: Personal<PostalAddress>,
    },
    /// The customer asked to be forgotten: the key of every [`Personal`] value of this
    /// customer was destroyed just before, and read models drop what they hold.
    CustomerForgotten {
        /// The customer.
        customer_id: CustomerId,
        /// When the request was made.
        requested_at: DateTime<Utc>,
    },
}

impl DomainEvent for CustomerEvent {
    fn event_type(&self) -> String {
        match self {
            CustomerEvent::CustomerRegistered { .. } => "CustomerRegistered",
            CustomerEvent::CustomerProfileChanged { .. } => "CustomerProfileChanged",
            CustomerEvent::CustomerAddressChanged { .. } => "CustomerAddressChanged",
            CustomerEvent::CustomerForgotten { .. } => "CustomerForgotten",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            CustomerEvent::CustomerForgotten { .. } => "1.0",
            _ => "2.0",
        }
        .to_owned()
    }
}
