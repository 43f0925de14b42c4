/// Why a promotion command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromotionError {
    /// No such promotion.
    #[error("promotion not found")]
    NotFound,
    /// `CreatePromotion` for an id that exists.
    #[error("promotion already exists")]
    AlreadyExists,
    /// The end is not after the start.
    #[error("a promotion must end after it starts")]
    InvalidWindow,
    /// A limit of zero uses.
    #[error("a usage limit must be at least 1")]
    InvalidLimit,
    /// Buy X get Y outside 1-100 units each.
    #[error("buy and get must each be 1-100 units")]
    InvalidBuyXGetY,
    /// A percentage of zero, or an amount of zero.
    #[error("a discount must take something off")]
    EmptyDiscount,
    /// `ActivatePromotion` on an active one, or the reverse.
    #[error("the promotion is already {0}")]
    AlreadyInState(&'static str),
    /// It is deactivated.
    #[error("this promotion is not active")]
    NotActive,
    /// Its window has not started or is over.
    #[error("this promotion is not running now")]
    OutsideWindow,
    /// Every use is held.
    #[error("this promotion has been used {limit} times, its limit")]
    UsageLimitReached {
        /// The limit.
        limit: u32,
    },
    /// The customer used it as often as allowed.
    #[error("this promotion can be used {limit} times per customer")]
    CustomerLimitReached {
        /// The limit.
        limit: u32,
    },
    /// A per-customer limit, and a guest.
    #[error("sign in to use this promotion")]
    SignInRequired,
}

impl PromotionError {
    /// Stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            PromotionError::NotFound => "promotion_not_found",
            PromotionError::AlreadyExists => "promotion_already_exists",
            PromotionError::InvalidWindow => "invalid_window",
            PromotionError::InvalidLimit => "invalid_usage_limit",
            PromotionError::InvalidBuyXGetY => "invalid_buy_x_get_y",
            PromotionError::EmptyDiscount => "empty_discount",
            PromotionError::AlreadyInState(_) => "promotion_already_in_state",
            PromotionError::NotActive => "promotion_not_active",
            PromotionError::OutsideWindow => "promotion_not_running",
            PromotionError::UsageLimitReached { .. } => "promotion_usage_limit_reached",
            PromotionError::CustomerLimitReached { .. } => "promotion_customer_limit_reached",
            PromotionError::SignInRequired => "promotion_requires_sign_in",
        }
    }

    /// What kind of refusal this is.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        match self {
            PromotionError::NotFound => K::NotFound,
            PromotionError::AlreadyExists
            | PromotionError::AlreadyInState(_)
            | PromotionError::NotActive
            | PromotionError::OutsideWindow
            | PromotionError::UsageLimitReached { .. }
            | PromotionError::CustomerLimitReached { .. } => K::Conflict,
            PromotionError::InvalidWindow
            | PromotionError::InvalidLimit
            | PromotionError::InvalidBuyXGetY
            | PromotionError::EmptyDiscount
            | PromotionError::SignInRequired => K::Invalid,
        }
    }
}
crate::impl_error_code!(PromotionError);
