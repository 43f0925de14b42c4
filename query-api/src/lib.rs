//! Mercato's query API: read models, catalog search and read-your-writes over HTTP.
//!
//! [`QueryApi::build`] opens the replica's search index and binds the listener;
//! [`QueryApi::run`] serves HTTP and feeds the replica's index from its own durable consumer
//! until shutdown. It never writes an event.
#![forbid(unsafe_code)]

mod consistency;
mod respond;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::FromRef;
use axum::Router;
use mercato_projections::search::{SearchIndex, SearchWorker};
use mercato_projections::{ProjectionDeps, ProjectionError};
use mercato_web::docs::Conventions;
use mercato_web::JwtKeys;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use mercato_projections::ProjectionDeps as QueryApiDeps;

/// Settings of the query API (the binary fills them from `MERCATO_*` variables).
#[derive(Debug, Clone)]
pub struct QueryApiConfig {
    /// Listen address (`MERCATO_QUERY_API_ADDR`, default 127.0.0.1:8081).
    pub addr: SocketAddr,
    /// HS256 secret shared with the command API.
    pub jwt_secret: SecretString,
    /// How long a request with `Mercato-Min-Position` waits for the read models (default 2 s).
    pub min_position_wait: Duration,
    /// This replica's search index directory.
    pub index_dir: PathBuf,
    /// This replica's id: names its durable search consumer (`search-<replica_id>`).
    pub replica_id: String,
    /// Request body limit.
    pub body_limit: usize,
    /// Browser origins allowed to call the API cross-origin (`MERCATO_CORS_ORIGINS`); none by
    /// default.
    pub cors_origins: Vec<axum::http::HeaderValue>,
}

impl QueryApiConfig {
    /// Local defaults with `jwt_secret`.
    pub fn new(jwt_secret: SecretString) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            jwt_secret,
            min_position_wait: Duration::from_secs(2),
            index_dir: PathBuf::from("data/search-index"),
            replica_id: "local".into(),
            body_limit: mercato_web::layers::DEFAULT_BODY_LIMIT,
            cors_origins: Vec::new(),
        }
    }
}

/// Why the query API could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum QueryApiError {
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
    /// The search index or its consumer failed.
    #[error(transparent)]
    Projection(#[from] ProjectionError),
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub(crate) pool: PgPool,
    pub(crate) keys: JwtKeys,
    pub(crate) search: SearchIndex,
    pub(crate) min_position_wait: Duration,
}

impl FromRef<AppState> for JwtKeys {
    fn from_ref(state: &AppState) -> Self {
        state.keys.clone()
    }
}

/// A built query API: listener bound, index open.
pub struct QueryApi {
    listener: TcpListener,
    router: Router,
    search: SearchIndex,
    deps: ProjectionDeps,
    replica_id: String,
}

impl QueryApi {
    /// Opens the search index and binds the listener (port 0 picks a free port).
    pub async fn build(config: QueryApiConfig, deps: QueryApiDeps) -> Result<Self, QueryApiError> {
        let search = SearchIndex::open(&config.index_dir)?;
        let listener =
            TcpListener::bind(config.addr)
                .await
                .map_err(|source| QueryApiError::Bind {
                    addr: config.addr,
                    source,
                })?;
        let router = router(
            &config,
            deps.pool.clone(),
            deps.client.clone(),
            search.clone(),
        );
        Ok(Self {
            listener,
            router,
            search,
            deps,
            replica_id: config.replica_id,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The replica's search index.
    pub fn search_index(&self) -> SearchIndex {
        self.search.clone()
    }

    /// Serves HTTP and runs the replica's search consumer until `shutdown`; when either
    /// stops on its own, the other is shut down too.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), QueryApiError> {
        let worker = SearchWorker::new(self.search.clone(), self.deps.clone(), &self.replica_id);
        let token = shutdown.child_token();
        let mut search = tokio::spawn(worker.run(token.clone()));
        let serve = mercato_web::serve(self.listener, self.router, token.clone());
        tokio::pin!(serve);
        let result = tokio::select! {
            r = &mut serve => {
                tracing::info!("query api http server stopped");
                token.cancel();
                let _ = (&mut search).await;
                r.map_err(QueryApiError::Serve)
            }
            r = &mut search => {
                tracing::warn!("search index consumer stopped; stopping the query api");
                token.cancel();
                let served = serve.await.map_err(QueryApiError::Serve);
                match r {
                    Ok(Ok(())) => served,
                    Ok(Err(e)) => Err(e.into()),
                    Err(e) => Err(QueryApiError::Projection(ProjectionError::Payload(format!("search task: {e}")))),
                }
            }
        };
        result
    }
}

/// The complete router (routes, docs, health, middleware).
pub fn router(
    config: &QueryApiConfig,
    pool: PgPool,
    nats: async_nats::Client,
    search: SearchIndex,
) -> Router {
    let state = AppState {
        pool: pool.clone(),
        // Customer tokens are checked against their session: a password change or an
        // erasure revokes them here too.
        keys: JwtKeys::new(&config.jwt_secret, Duration::from_secs(3600))
            .with_sessions(mercato_web::auth::Sessions::new(pool.clone())),
        search,
        min_position_wait: config.min_position_wait,
    };
    let app = routes::router()
        .with_state(state)
        .merge(mercato_web::docs::router(ApiDoc::openapi()))
        .merge(mercato_web::health::router(
            mercato_web::health::Dependencies { pool, nats },
        ));
    let http = mercato_web::layers::HttpSettings {
        body_limit: config.body_limit,
        cors_origins: config.cors_origins.clone(),
    };
    mercato_web::layers::finish(app, &http)
}

/// The OpenAPI document of every route.
#[derive(OpenApi)]
#[openapi(
    info(title = "Mercato query API", description = "Read models, catalog search and read-your-writes"),
    paths(
        routes::catalog::list_products,
        routes::catalog::get_product,
        routes::recommendations::recommendations,
        routes::catalog::get_stock,
        routes::search::search,
        routes::carts::get_cart,
        routes::carts::shipping_options,
        routes::orders::list_orders,
        routes::orders::get_order,
        routes::customers::me,
        routes::admin::sales,
        routes::orders::list_returns,
        routes::admin::projections,
        routes::events::events,
        routes::pricing::list_promotions,
        routes::pricing::get_promotion,
        routes::pricing::tax_rates,
    ),
    modifiers(&Conventions, &Revalidation)
)]
pub struct ApiDoc;

/// Reads that take `If-None-Match` answer 304 when the client's copy is current, and send
/// `ETag` and `Cache-Control` with every 200 (`respond::cached`).
struct Revalidation;

impl utoipa::Modify for Revalidation {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use mercato_web::docs::{document, for_each_operation, header};
        use utoipa::openapi::{schema::Type, RefOr};
        for_each_operation(openapi, |op| {
            let revalidates = op
                .parameters
                .iter()
                .flatten()
                .any(|p| p.name == "If-None-Match");
            if !revalidates {
                return;
            }
            document(
                op,
                "304",
                "Not modified: the `If-None-Match` tag is current",
            );
            if let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200") {
                ok.headers.insert(
                    "ETag".to_owned(),
                    header(
                        Type::String,
                        "A strong tag of this answer, for `If-None-Match`",
                    ),
                );
                ok.headers.insert(
                    "Cache-Control".to_owned(),
                    header(Type::String, "Who may cache the answer, and how long"),
                );
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use utoipa::OpenApi as _;

    use super::ApiDoc;

    #[test]
    fn errors_are_problems_and_revalidating_reads_document_304() {
        let spec: Value = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut revalidating = 0;
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let name = format!("{method} {path}");
                let responses = op["responses"].as_object().unwrap();
                assert!(responses.contains_key("503"), "{name}: no 503");
                for (status, response) in responses {
                    if status.starts_with(['4', '5']) {
                        let content = response["content"].as_object();
                        let types: Vec<&String> =
                            content.into_iter().flatten().map(|(k, _)| k).collect();
                        assert_eq!(types, ["application/problem+json"], "{name} {status}");
                    }
                }
                for param in op["parameters"].as_array().into_iter().flatten() {
                    assert_ne!(
                        param["schema"]["type"][1], "null",
                        "{name}: a null parameter"
                    );
                    if param["name"] == "If-None-Match" {
                        revalidating += 1;
                        assert!(responses.contains_key("304"), "{name}: no 304");
                        assert!(responses["200"]["headers"].get("ETag").is_some(), "{name}");
                    }
                }
            }
        }
        assert_eq!(revalidating, 15, "every read of a read model revalidates");
    }
}
