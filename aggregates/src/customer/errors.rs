/// Why a customer command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomerError {
    /// `RegisterCustomer` on an existing customer.
    #[error("customer already exists")]
    AlreadyExists,
    /// Any other command before `RegisterCustomer`.
    #[error("customer not found")]
    NotFound,
    /// Any command after `ForgetCustomer`.
    #[error("customer has been forgotten")]
    Forgotten,
}

impl CustomerError {
    /// Stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            CustomerError::AlreadyExists => "customer_already_exists",
            CustomerError::NotFound => "customer_not_found",
            CustomerError::Forgotten => "customer_forgotten",
        }
    }
}
impl CustomerError {
    /// What kind of refusal this is.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        match self {
            CustomerError::NotFound => K::NotFound,
            CustomerError::AlreadyExists | CustomerError::Forgotten => K::Conflict,
        }
    }
}
crate::impl_error_code!(CustomerError);
