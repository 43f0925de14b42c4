//! The HTTP application: state, router, OpenAPI document and the server task.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::routing::{delete, patch, post, put};
use axum::Router;
use mercato_event_store::SnapshotPolicy;
use mercato_web::docs::Conventions;
use mercato_web::health::Dependencies;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::{Modify, OpenApi};

use crate::config::CommandApiConfig;
use crate::routes::{
    auth, carts, customers, orders, policies, products, promotions, returns, stock,
};
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
        carts::apply_coupon,
        carts::remove_coupon,
        promotions::create_promotion,
        promotions::update_promotion,
        promotions::activate_promotion,
        promotions::deactivate_promotion,
        policies::set_tax_rate,
        policies::remove_tax_rate,
        policies::set_tax_settings,
        policies::define_shipping_method,
        policies::retire_shipping_method,
        orders::cancel,
        orders::ship,
        orders::deliver,
        orders::refund,
        orders::request_return,
        orders::erase_personal_data,
        returns::receive,
    ),
    modifiers(&Conventions, &Writes),
    tags(
        (name = "auth"), (name = "customers"), (name = "catalog"), (name = "stock"),
        (name = "carts"), (name = "orders"), (name = "returns"), (name = "promotions"),
        (name = "tax"), (name = "shipping")
    )
)]
pub struct ApiDoc;

/// What every write shares, from the idempotency guard (`crate::idempotency`) and the
/// stores: `Idempotency-Key` (not on sign-in, which ignores it) with its 409 and 422
/// answers, 413 and 422 `pan_not_allowed` on every request, 409 `version_conflict` where
/// `If-Match` is taken, and `Mercato-Position` / `Idempotent-Replayed` on success.
struct Writes;

impl Modify for Writes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use mercato_web::docs::{document, for_each_operation, header};
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        use utoipa::openapi::{RefOr, Required};
        for_each_operation(openapi, |op| {
            let params = op.parameters.get_or_insert_with(Vec::new);
            let conditional = params.iter().any(|p| p.name == "If-Match");
            if op.operation_id.as_deref() != Some("token") {
                params.push(
                    ParameterBuilder::new()
                        .name("Idempotency-Key")
                        .parameter_in(ParameterIn::Header)
                        .required(Required::False)
                        .description(Some(
                            "Makes the request safe to retry: the same key with the same \
                             request gets the first answer again (for 24 hours)",
                        ))
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(SchemaType::Type(Type::String))
                                .min_length(Some(1))
                                .max_length(Some(255))
                                .pattern(Some("^[!-~]([ -~]*[!-~])?$")),
                        ))
                        .build(),
                );
                document(
                    op,
                    "409",
                    "A conflict with the current state, or a request with this Idempotency-Key \
                     is still in progress",
                );
            }
            if conditional {
                document(
                    op,
                    "409",
                    "`version_conflict`: the aggregate is not at the `If-Match` version",
                );
            }
            document(op, "413", "The body is larger than the configured limit");
            document(
                op,
                "422",
                "A business rule refused the request, the request holds a card number \
                 (`pan_not_allowed`), or its Idempotency-Key was used with another request",
            );
            for (status, response) in &mut op.responses.responses {
                if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                    response.headers.insert(
                        "Mercato-Position".to_owned(),
                        header(
                            Type::String,
                            "The write's consistency token, for `Mercato-Min-Position` on the \
                             query API",
                        ),
                    );
                    response.headers.insert(
                        "Idempotent-Replayed".to_owned(),
                        header(
                            Type::String,
                            "`true` on an answer replayed for an Idempotency-Key",
                        ),
                    );
                }
            }
        });
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
        .route("/v1/carts/{id}/coupons", post(carts::apply_coupon))
        .route(
            "/v1/carts/{id}/coupons/{code}",
            delete(carts::remove_coupon),
        )
        .route("/v1/promotions", post(promotions::create_promotion))
        .route("/v1/promotions/{id}", patch(promotions::update_promotion))
        .route(
            "/v1/promotions/{id}/activate",
            post(promotions::activate_promotion),
        )
        .route(
            "/v1/promotions/{id}/deactivate",
            post(promotions::deactivate_promotion),
        )
        .route(
            "/v1/tax/rates/{country}",
            put(policies::set_tax_rate).delete(policies::remove_tax_rate),
        )
        .route("/v1/tax/settings", put(policies::set_tax_settings))
        .route(
            "/v1/shipping-methods/{id}",
            put(policies::define_shipping_method).delete(policies::retire_shipping_method),
        )
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use mercato_aggregates::values::{CountryCode, Quantity, Sku, WarehouseId};
    use mercato_aggregates::Currency;
    use mercato_web::schema::{CODE_PATTERN, COUNTRY_PATTERN, CURRENCY_PATTERN};
    use proptest::prelude::*;
    use serde_json::Value;
    use utoipa::OpenApi as _;

    use super::ApiDoc;

    fn spec() -> Value {
        serde_json::to_value(ApiDoc::openapi()).unwrap()
    }

    #[test]
    fn every_error_is_documented_as_a_problem_and_every_write_takes_a_key() {
        let spec = spec();
        let mut ids = HashSet::new();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let name = format!("{method} {path}");
                let id = op["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_owned()), "{name}: operationId {id} twice");
                let responses = op["responses"].as_object().unwrap();
                for status in ["413", "422", "503"] {
                    assert!(responses.contains_key(status), "{name}: no {status}");
                }
                for (status, response) in responses {
                    if status.starts_with(['4', '5']) {
                        let content = response["content"]
                            .as_object()
                            .unwrap_or_else(|| panic!("{name} {status}: {response}"));
                        assert_eq!(
                            content.keys().collect::<Vec<_>>(),
                            ["application/problem+json"],
                            "{name} {status}"
                        );
                    }
                }
                let params: Vec<&str> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                assert_eq!(
                    params.contains(&"Idempotency-Key"),
                    id != "token",
                    "{name}: Idempotency-Key on every write but the sign-in"
                );
                if params.contains(&"If-Match") {
                    assert!(
                        responses.contains_key("409"),
                        "{name}: If-Match without 409"
                    );
                }
                if op.get("requestBody").is_some() {
                    for status in ["400", "415"] {
                        assert!(responses.contains_key(status), "{name}: no {status}");
                    }
                }
            }
        }
        assert_eq!(ids.len(), 36);
    }

    fn matches(pattern: &str) -> impl Fn(&str) -> bool {
        let re = regex::Regex::new(pattern).unwrap();
        move |s| re.is_match(s)
    }

    proptest! {
        /// The documented patterns accept exactly what the domain's validators accept.
        #[test]
        fn the_documented_patterns_are_the_validators(
            text in "[A-Za-z0-9._\\- /@\u{e9}\u{0}]{0,70}",
        ) {
            let code = matches(CODE_PATTERN);
            prop_assert_eq!(code(&text), Sku::new(text.as_str()).is_ok());
            prop_assert_eq!(code(&text), WarehouseId::new(text.as_str()).is_ok());
            prop_assert_eq!(matches(CURRENCY_PATTERN)(&text), Currency::new(&text).is_ok());
            prop_assert_eq!(matches(COUNTRY_PATTERN)(&text), CountryCode::new(text.as_str()).is_ok());
        }

        #[test]
        fn short_upper_case_codes_agree_too(text in "[A-Za-z]{1,4}") {
            prop_assert_eq!(matches(CURRENCY_PATTERN)(&text), Currency::new(&text).is_ok());
            prop_assert_eq!(matches(COUNTRY_PATTERN)(&text), CountryCode::new(text.as_str()).is_ok());
        }
    }

    #[test]
    fn the_documented_quantity_range_is_the_domains() {
        let spec = spec();
        let quantity = &spec["components"]["schemas"]["Quantity"];
        assert_eq!(quantity["minimum"], 1);
        assert_eq!(quantity["maximum"], Quantity::MAX);
        assert!(Quantity::new(0).is_err() && Quantity::new(Quantity::MAX + 1).is_err());
    }
}
