//! `GET /openapi.json` and the interactive docs at `/docs` (Swagger UI, vendored assets).

use axum::Router;
use utoipa::openapi::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

/// Routes serving `spec` at `/openapi.json` and Swagger UI at `/docs`.
pub fn router(spec: OpenApi) -> Router {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", spec))
}
