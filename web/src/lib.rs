//! HTTP pieces shared by Mercato's command and query APIs: RFC 9457 problems, JWT bearer
//! authentication, extractors whose rejections are problems, the common middleware stack,
//! OpenAPI docs and health routes.
#![forbid(unsafe_code)]

pub mod auth;
pub mod docs;
pub mod extract;
pub mod health;
pub mod layers;
pub mod problem;
pub mod schema;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::{Caller, JwtKeys, OrderAccess, OrderParty, Role};
pub use extract::{parse_query, Json, Path, Query};
pub use problem::{FieldError, Problem};

/// Response header with the consistency token of a write (the position of its last event).
pub const MERCATO_POSITION: &str = "mercato-position";
/// Request header asking the query API to wait until its read models reach a position.
pub const MERCATO_MIN_POSITION: &str = "mercato-min-position";
/// Request header carrying an anonymous cart's secret.
pub const MERCATO_CART_TOKEN: &str = "mercato-cart-token";
/// Request header carrying a guest order's secret.
pub const MERCATO_ORDER_TOKEN: &str = "mercato-order-token";
/// Request header making a POST safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Serves `router` on `listener` until `shutdown` is cancelled, finishing in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // The peer address reaches handlers (`ConnectInfo`): sign-in throttles count per client.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}
