use serde::{Deserialize, Serialize};

use crate::money::Currency;
use crate::values::{CartId, CustomerId, OrderId, Quantity, Sku};

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
    /// Closes the cart and hands its lines to an order.
    CheckOutCart {
        /// The order to create (the API derives it deterministically from the cart id).
        order_id: OrderId,
        /// The customer checking out: must match a customer's cart; `None` on an anonymous
        /// cart is a guest's checkout.
        customer_id: Option<CustomerId>,
    },
}
