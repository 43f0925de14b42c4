use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::personal::Personal;
use crate::values::{CustomerId, Email, PasswordHash, PersonName, PhoneNumber, PostalAddress};

/// Events of the [`super::Customer`] aggregate.
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
        /// Password hash, shredded with the rest of the subject's data.
        password_hash: Personal<PasswordHash>,
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
    /// The customer asked to be forgotten: read models must drop their personal data, and
    /// crypto-shredding destroys the key of every [`Personal`] value of this customer.
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
        "1.0".to_owned()
    }
}
