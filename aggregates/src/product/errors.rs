use crate::money::Currency;

/// Why a product command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    /// `CreateProduct` on a product that already exists.
    #[error("product already exists")]
    AlreadyExists,
    /// Any other command before `CreateProduct`.
    #[error("product not found")]
    NotFound,
    /// Any change to a discontinued product.
    #[error("product is discontinued")]
    Discontinued,
    /// `PublishProduct` on a published product.
    #[error("product is already published")]
    AlreadyPublished,
    /// `UnpublishProduct` on a product that is not published.
    #[error("product is not published")]
    NotPublished,
    /// A new price in another currency than the product's.
    #[error("price must stay in {current}, not {requested}")]
    CurrencyChange {
        /// The product's currency.
        current: Currency,
        /// The currency of the refused price.
        requested: Currency,
    },
    /// More images than [`super::ProductDetails::MAX_IMAGES`].
    #[error("a product may have at most {max} images")]
    TooManyImages {
        /// The limit.
        max: usize,
    },
}

impl ProductError {
    /// Stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ProductError::AlreadyExists => "product_already_exists",
            ProductError::NotFound => "product_not_found",
            ProductError::Discontinued => "product_discontinued",
            ProductError::AlreadyPublished => "product_already_published",
            ProductError::NotPublished => "product_not_published",
            ProductError::CurrencyChange { .. } => "currency_change_not_allowed",
            ProductError::TooManyImages { .. } => "too_many_images",
        }
    }
}
impl ProductError {
    /// What kind of refusal this is.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        match self {
            ProductError::NotFound => K::NotFound,
            ProductError::AlreadyExists
            | ProductError::Discontinued
            | ProductError::AlreadyPublished
            | ProductError::NotPublished => K::Conflict,
            ProductError::CurrencyChange { .. } | ProductError::TooManyImages { .. } => K::Invalid,
        }
    }
}
crate::impl_error_code!(ProductError);
