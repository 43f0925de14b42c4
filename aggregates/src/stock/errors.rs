use crate::values::{Sku, WarehouseId};

/// Why a stock command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    /// The command names another SKU than this stock record's.
    #[error("command for sku {actual} sent to stock of {expected}")]
    SkuMismatch {
        /// This record's SKU.
        expected: Sku,
        /// The command's SKU.
        actual: Sku,
    },
    /// `AdjustStock` for a warehouse that never received this SKU.
    #[error("warehouse {0} holds no stock of this sku")]
    UnknownWarehouse(WarehouseId),
    /// `AdjustStock` with a delta of zero.
    #[error("adjustment must change the quantity")]
    ZeroAdjustment,
    /// An adjustment would leave fewer units on hand than are reserved.
    #[error("only {available} units are available in {warehouse}, cannot remove {requested}")]
    InsufficientStock {
        /// The warehouse.
        warehouse: WarehouseId,
        /// On hand minus reserved.
        available: u64,
        /// Units the adjustment tried to remove.
        requested: u64,
    },
    /// The warehouse would hold more than [`super::Stock::MAX_ON_HAND`] units.
    #[error("warehouse {warehouse} cannot hold more than {max} units")]
    CapacityExceeded {
        /// The warehouse.
        warehouse: WarehouseId,
        /// The limit.
        max: u64,
    },
    /// `CommitReservation` for an order without a reservation (never made, or released).
    #[error("no reservation for this order")]
    ReservationNotFound,
    /// `CommitReservation` of more units than the order still holds.
    #[error("the order holds only {reserved} units of this sku")]
    CommitExceedsReservation {
        /// Units the order still holds.
        reserved: u32,
    },
}

impl StockError {
    /// Stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            StockError::SkuMismatch { .. } => "sku_mismatch",
            StockError::UnknownWarehouse(_) => "unknown_warehouse",
            StockError::ZeroAdjustment => "zero_adjustment",
            StockError::InsufficientStock { .. } => "insufficient_stock",
            StockError::CapacityExceeded { .. } => "warehouse_capacity_exceeded",
            StockError::ReservationNotFound => "reservation_not_found",
            StockError::CommitExceedsReservation { .. } => "commit_exceeds_reservation",
        }
    }

    /// What kind of refusal this is.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        match self {
            StockError::ReservationNotFound => K::NotFound,
            StockError::CommitExceedsReservation { .. } => K::Conflict,
            StockError::SkuMismatch { .. }
            | StockError::UnknownWarehouse(_)
            | StockError::ZeroAdjustment
            | StockError::InsufficientStock { .. }
            | StockError::CapacityExceeded { .. } => K::Invalid,
        }
    }
}
crate::impl_error_code!(StockError);
