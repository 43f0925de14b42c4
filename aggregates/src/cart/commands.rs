use serde::{Deserialize, Serialize};

use crate::money::Currency;
use crate::pricing::{PromotionRule, TaxRule};
use crate::shipping::{ShippingMethod, ShippingMethodId};
use crate::values::{
    CartId, CountryCode, CouponCode, CustomerId, OrderId, PromotionId, Quantity, Sku,
};

/// What a checkout prices the cart with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutPricing {
    /// The promotions the buyer may have now: automatic ones and those of the cart's
    /// coupons, each active, running and with a use held for the order where limited.
    pub promotions: Vec<PromotionRule>,
    /// The tax of the destination.
    pub tax: TaxRule,
    /// The shipping chosen, if the shop ships with methods.
    pub shipping: Option<ShippingChoice>,
}

/// The shipping method a checkout chose, and where to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingChoice {
    /// The method's id.
    pub method_id: ShippingMethodId,
    /// The method as it is now.
    pub method: ShippingMethod,
    /// The destination.
    pub country: CountryCode,
}

/// Commands of the [`super::Cart`] aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CartCommand {
    /// Opens a cart for a customer, or anonymously.
    OpenCart {
        /// The cart id (aggregate id).
        cart_id: CartId,
        /// The signed-in customer, if any.
        customer_id: Option<CustomerId>,
        /// Currency of every price in the cart.
        currency: Currency,
    },
    /// Adds units of a SKU, capturing its current name and price from the catalog; adding a
    /// SKU already in the cart adds to its line (and re-captures the price).
    AddCartItem {
        /// What to add.
        sku: Sku,
        /// How many units.
        quantity: Quantity,
    },
    /// Sets the quantity of a line.
    ChangeCartItemQuantity {
        /// Which line.
        sku: Sku,
        /// The new quantity.
        quantity: Quantity,
    },
    /// Removes a line.
    RemoveCartItem {
        /// Which line.
        sku: Sku,
    },
    /// Adds a coupon code (the API has checked that it names a promotion running now);
    /// adding a code already in the cart changes nothing.
    ApplyCoupon {
        /// The code.
        code: CouponCode,
        /// Its promotion.
        promotion_id: PromotionId,
    },
    /// Removes a coupon code.
    RemoveCoupon {
        /// The code.
        code: CouponCode,
    },
    /// Closes the cart and hands its lines, priced, to an order.
    CheckOutCart {
        /// The order to create (the API derives it deterministically from the cart id).
        order_id: OrderId,
        /// The customer checking out: must match a customer's cart; `None` on an anonymous
        /// cart is a guest's checkout.
        customer_id: Option<CustomerId>,
        /// Promotions and tax; `None`: list prices, no tax.
        pricing: Option<CheckoutPricing>,
    },
}
