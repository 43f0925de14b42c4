//! The HTTP application: state, router, OpenAPI document and the server task.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::routing::{delete, patch, post};
use axum::Router;
use mercato_event_store::SnapshotPolicy;
use mercato_web::health::Dependencies;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::config::CommandApiConfig;
use crate::routes::{auth, carts, customers, orders, products, returns, stock};
use crate::state::{AppState, Deps};

/// The OpenAPI 3.1 document of the command API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Mercato command API", version = "1"),
    paths(
        auth::token,
        customers::register,
        customers::update,
        customers::forget,
        customers::change_password,
        products::create,
        products::update,
        products::change_price,
        products::publish,
        products::unpublish,
        products::discontinue,
        stock::receive,
        stock::adjust,
        carts::create,
        carts::add_item,
        carts::change_item,
        carts::remove_item,
        carts::checkout,
        orders::cancel,
        orders::ship,
        orders::deliver,
        orders::refund,
        orders::request_return,
        orders::erase_personal_data,
        returns::receive,
    ),
    components(schemas(mercato_web::problem::ProblemBody, mercato_web::FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth"), (name = "customers"), (name = "catalog"), (name = "stock"),
        (name = "carts"), (name = "orders"), (name = "returns")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The full router (routes, docs, health) over `state`.
pub(crate) fn router(state: AppState, deps: Option<Dependencies>) -> Router {
    let http = mercato_web::layers::HttpSettings {
        body_limit: state.config().body_limit,
        cors_origins: state.config().cors_origins.clone(),
    };
    let v1 = Router::new()
        .route("/v1/auth/token", post(auth::token))
        .route("/v1/customers", post(customers::register))
        .route(
            "/v1/customers/{id}/password",
            post(customers::change_password),
        )
        .route(
            "/v1/customers/{id}",
            patch(customers::update).delete(customers::forget),
        )
        .route("/v1/products", post(products::create))
        .route("/v1/products/{sku}", patch(products::update))
        .route("/v1/products/{sku}/price", post(products::change_price))
        .route("/v1/products/{sku}/publish", post(products::publish))
        .route("/v1/products/{sku}/unpublish", post(products::unpublish))
        .route(
            "/v1/products/{sku}/discontinue",
            post(products::discontinue),
        )
        .route("/v1/stock/{sku}/receipts", post(stock::receive))
        .route("/v1/stock/{sku}/adjustments", post(stock::adjust))
        .route("/v1/carts", post(carts::create))
        .route("/v1/carts/{id}/items", post(carts::add_item))
        .route(
            "/v1/carts/{id}/items/{sku}",
            patch(carts::change_item).delete(carts::remove_item),
        )
        .route("/v1/carts/{id}/checkout", post(carts::checkout))
        .route("/v1/orders/{id}/cancel", post(orders::cancel))
        .route("/v1/orders/{id}/shipments", post(orders::ship))
        .route("/v1/orders/{id}/deliveries", post(orders::deliver))
        .route("/v1/orders/{id}/refunds", post(orders::refund))
        .route("/v1/orders/{id}/returns", post(orders::request_return))
        .route(
            "/v1/orders/{id}/personal-data",
            delete(orders::erase_personal_data),
        )
        .route("/v1/returns/{id}/receive", post(returns::receive))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::idempotency::guard,
        ))
        .with_state(state);
    let mut app = v1.merge(mercato_web::docs::router(ApiDoc::openapi()));
    if let Some(deps) = deps {
        app = app.merge(mercato_web::health::router(deps));
    }
    mercato_web::layers::finish(app, &http)
}

/// The router without health routes, for in-process tests (`tower::ServiceExt::oneshot`).
pub fn test_router(config: CommandApiConfig, pool: PgPool) -> Router {
    router(
        AppState::new(config, pool, &SnapshotPolicy::default()),
        None,
    )
}

/// The command API server, bound and ready to run.
pub struct CommandApi {
    listener: TcpListener,
    router: Router,
    pool: PgPool,
    config: CommandApiConfig,
}

impl CommandApi {
    /// Binds `config.addr` (port 0 picks a free port) and builds the router.
    pub async fn build(config: CommandApiConfig, deps: Deps) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        let state = AppState::new(config.clone(), deps.pool.clone(), &deps.snapshots);
        let health = Dependencies {
            pool: deps.pool.clone(),
            nats: deps.nats_client.clone(),
        };
        Ok(Self {
            listener,
            router: router(state, Some(health)),
            pool: deps.pool,
            config,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.addr)
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serves until `shutdown`, finishing in-flight requests; expires old idempotency keys
    /// and throttle counters in the background.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let pool = self.pool.clone();
        let ttl = self.config.idempotency_ttl;
        let stop = shutdown.clone();
        let janitor = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {
                        match crate::idempotency::expire(&pool, ttl).await {
                            Ok(n) if n > 0 => tracing::info!(expired = n, "idempotency keys expired"),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "expiring idempotency keys failed"),
                        }
                        if let Err(e) = crate::throttle::expire(&pool).await {
                            tracing::warn!(error = %e, "expiring throttle counters failed");
                        }
                    }
                }
            }
        });
        tracing::info!(addr = %self.local_addr(), "command api listening");
        let served = mercato_web::serve(self.listener, self.router, shutdown.clone()).await;
        shutdown.cancel();
        let _ = janitor.await;
        served.context("command api server failed")
    }
}
