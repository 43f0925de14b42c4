//! Mercato's storefront and back office: server-rendered HTML, progressively enhanced with
//! htmx, over the public command and query APIs only (no database, no shared state with the
//! APIs). Every page and form works without JavaScript.
//!
//! [`Storefront::build`] binds the listener; [`Storefront::run`] serves until shutdown.
#![forbid(unsafe_code)]

mod client;
mod form;
mod pages;
mod session;

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::client::Api;
use crate::session::Sessions;

/// Settings of the storefront (the binary fills them from `MERCATO_*` variables).
#[derive(Debug, Clone)]
pub struct StorefrontConfig {
    /// Listen address (`MERCATO_STOREFRONT_ADDR`, default 127.0.0.1:8082).
    pub addr: SocketAddr,
    /// Base URL of the command API (`MERCATO_COMMAND_API_URL`).
    pub command_api: String,
    /// Base URL of the query API (`MERCATO_QUERY_API_URL`).
    pub query_api: String,
    /// Mark the session cookie `Secure` (`MERCATO_STOREFRONT_SECURE_COOKIE`): set it when
    /// shoppers reach the storefront over https.
    pub secure_cookie: bool,
    /// A session unused this long is forgotten.
    pub session_idle: Duration,
    /// Sessions kept at most (the longest idle goes first).
    pub max_sessions: usize,
}

impl StorefrontConfig {
    /// Local defaults: the APIs on their default local ports.
    pub fn new() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8082)),
            command_api: "http://127.0.0.1:8080".into(),
            query_api: "http://127.0.0.1:8081".into(),
            secure_cookie: false,
            session_idle: Duration::from_secs(12 * 3600),
            max_sessions: 100_000,
        }
    }
}

impl Default for StorefrontConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Why the storefront could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StorefrontError {
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("http server failed: {0}")]
    Serve(std::io::Error),
}

/// What every handler uses.
#[derive(Clone)]
pub(crate) struct AppState {
    pub api: Api,
}

/// A built storefront, listener bound.
pub struct Storefront {
    listener: TcpListener,
    router: Router,
}

impl Storefront {
    /// Binds the listener (port 0 picks a free port).
    pub async fn build(config: StorefrontConfig) -> Result<Self, StorefrontError> {
        let listener =
            TcpListener::bind(config.addr)
                .await
                .map_err(|source| StorefrontError::Bind {
                    addr: config.addr,
                    source,
                })?;
        Ok(Self {
            listener,
            router: router(&config),
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StorefrontError> {
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(StorefrontError::Serve)
    }
}

/// Pages, assets, sessions and the headers every page carries.
pub fn router(config: &StorefrontConfig) -> Router {
    let sessions = Sessions::new(
        config.session_idle,
        config.max_sessions,
        config.secure_cookie,
    );
    let state = AppState {
        api: Api::new(&config.command_api, &config.query_api),
    };
    pages::router()
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            sessions,
            session::layer,
        ))
        .layer(axum::middleware::from_fn(client::shopper_address))
        .layer(axum::middleware::from_fn(mercato_telemetry::record_http))
        .merge(pages::assets())
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Scripts and styles come from this origin only: no inline script or style, so an injected
/// tag cannot run. Forms post to this origin only; nothing frames the pages.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

async fn security_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    // Pages show a session's cart, account and orders: no shared cache may keep them.
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    }
    response
}
