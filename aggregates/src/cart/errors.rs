use crate::money::Currency;
use crate::pricing::{PricingError, ShippingUnavailable};
use crate::values::{CouponCode, Sku};

/// Why a cart command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    /// `OpenCart` on an existing cart.
    #[error("cart already exists")]
    AlreadyExists,
    /// Any other command before `OpenCart`.
    #[error("cart not found")]
    NotFound,
    /// Any command after checkout.
    #[error("cart is checked out")]
    CheckedOut,
    /// The catalog knows no such SKU.
    #[error("product {0} not found")]
    ProductNotFound(Sku),
    /// The product is unpublished or discontinued.
    #[error("product {0} is not for sale")]
    ProductNotSellable(Sku),
    /// The product is priced in another currency than the cart.
    #[error("product is priced in {product}, cart is in {cart}")]
    CurrencyMismatch {
        /// The cart's currency.
        cart: Currency,
        /// The product's currency.
        product: Currency,
    },
    /// The catalog could not be asked; retry later.
    #[error("catalog unavailable")]
    CatalogUnavailable,
    /// Adding a new line beyond [`super::Cart::MAX_LINES`].
    #[error("a cart may have at most {max} lines")]
    TooManyLines {
        /// The limit.
        max: usize,
    },
    /// A line quantity beyond [`super::Cart::MAX_LINE_QUANTITY`].
    #[error("a cart line may hold at most {max} units")]
    LineQuantityLimit {
        /// The limit.
        max: u32,
    },
    /// The SKU has no line in the cart.
    #[error("product {0} is not in the cart")]
    ItemNotInCart(Sku),
    /// `CheckOutCart` on an empty cart.
    #[error("cart is empty")]
    EmptyCart,
    /// `CheckOutCart` by another customer than the cart's.
    #[error("cart belongs to another customer")]
    CustomerMismatch,
    /// A total does not fit in 64-bit minor units.
    #[error("amount overflow")]
    AmountOverflow,
    /// More coupon codes than a cart may hold.
    #[error("a cart holds at most {max} coupon codes")]
    TooManyCoupons {
        /// The limit.
        max: usize,
    },
    /// `RemoveCoupon` of a code not in the cart.
    #[error("coupon {0} is not in the cart")]
    CouponNotInCart(CouponCode),
    /// The pricing failed (lines in mixed currencies, or too large amounts).
    #[error("the cart cannot be priced: {0}")]
    Pricing(PricingError),
    /// The chosen shipping method cannot ship this cart.
    #[error("{0}")]
    Shipping(ShippingUnavailable),
}

impl CartError {
    /// Stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            CartError::AlreadyExists => "cart_already_exists",
            CartError::NotFound => "cart_not_found",
            CartError::CheckedOut => "cart_checked_out",
            CartError::ProductNotFound(_) => "product_not_found",
            CartError::ProductNotSellable(_) => "product_not_sellable",
            CartError::CurrencyMismatch { .. } => "currency_mismatch",
            CartError::CatalogUnavailable => "catalog_unavailable",
            CartError::TooManyLines { .. } => "too_many_lines",
            CartError::LineQuantityLimit { .. } => "line_quantity_limit",
            CartError::ItemNotInCart(_) => "item_not_in_cart",
            CartError::EmptyCart => "cart_empty",
            CartError::CustomerMismatch => "customer_mismatch",
            CartError::AmountOverflow => "amount_overflow",
            CartError::TooManyCoupons { .. } => "too_many_coupons",
            CartError::CouponNotInCart(_) => "coupon_not_in_cart",
            CartError::Pricing(_) => "pricing_failed",
            CartError::Shipping(_) => "shipping_unavailable",
        }
    }
}
impl CartError {
    /// What kind of refusal this is.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        match self {
            CartError::NotFound => K::NotFound,
            CartError::AlreadyExists | CartError::CheckedOut => K::Conflict,
            // A product the request names is the request's fault, not a missing target.
            CartError::ProductNotFound(_)
            | CartError::ProductNotSellable(_)
            | CartError::CurrencyMismatch { .. }
            | CartError::TooManyLines { .. }
            | CartError::LineQuantityLimit { .. }
            | CartError::ItemNotInCart(_)
            | CartError::EmptyCart
            | CartError::CustomerMismatch
            | CartError::AmountOverflow
            | CartError::TooManyCoupons { .. }
            | CartError::Pricing(_)
            | CartError::Shipping(_) => K::Invalid,
            CartError::CouponNotInCart(_) => K::NotFound,
            CartError::CatalogUnavailable => K::Unavailable,
        }
    }
}
crate::impl_error_code!(CartError);
