use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::values::{CustomerId, Email, PersonName, PhoneNumber, PostalAddress};

/// Commands of the [`super::Customer`] aggregate. Email uniqueness across customers and the
/// password are the API's (its credentials table), not the aggregate's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CustomerCommand {
    /// Registers a customer.
    RegisterCustomer {
        /// The customer id (aggregate id).
        customer_id: CustomerId,
        /// Sign-in and contact email.
        email: Email,
        /// Full name.
        name: PersonName,
    },
    /// Replaces the profile.
    ChangeCustomerProfile {
        /// Full name.
        name: PersonName,
        /// Sign-in and contact email.
        email: Email,
        /// Phone number, if given.
        phone: Option<PhoneNumber>,
    },
    /// Replaces the default shipping address.
    ChangeCustomerAddress {
        /// The new address.
        address: PostalAddress,
    },
    /// Records a GDPR erasure (after the customer's data key was destroyed); the customer can
    /// no longer be changed.
    ForgetCustomer {
        /// When the request was made.
        requested_at: DateTime<Utc>,
    },
}
