use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::values::{CustomerId, Email, PasswordHash, PersonName, PhoneNumber, PostalAddress};

/// Commands of the [`super::Customer`] aggregate. Email uniqueness across customers is
/// checked by the API against a read model, not here.
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
        /// PHC-format hash of the password (hashing happens in the API).
        password_hash: PasswordHash,
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
    /// Records a GDPR erasure request; the customer can no longer be changed.
    ForgetCustomer {
        /// When the request was made.
        requested_at: DateTime<Utc>,
    },
}
