//! `GET /openapi.json` and the interactive docs at `/docs` (Swagger UI, vendored assets),
//! and [`Conventions`], the answers every operation of both APIs shares.

use axum::Router;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Header, OpenApi, Ref, RefOr, Response, Schema};
use utoipa::{Modify, PartialSchema, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use crate::problem::{FieldError, ProblemBody, PROBLEM_JSON};

/// Routes serving `spec` at `/openapi.json` and Swagger UI at `/docs`.
pub fn router(spec: OpenApi) -> Router {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", spec))
}

/// What every operation of Mercato's APIs has in common, written into their OpenAPI
/// documents so that they match what the servers answer (checked by `.ci/schemathesis.sh`):
///
/// - every error answer is an RFC 9457 problem: each 4xx and 5xx response is documented as
///   `application/problem+json` with the [`ProblemBody`] schema, whatever the handler's
///   annotation says;
/// - the answers the shared extractors and middleware give are documented on every operation
///   they can reach: 400 for a parameter, a header or a text that is not valid; 401 where a
///   token is accepted; 400, 413, 415 and 422 where there is a JSON body; 503 with
///   `Retry-After` when the database is unavailable; `Retry-After` on every 429;
/// - a parameter is never `null` (an optional one is left out), whatever its Rust type;
/// - the `bearer` security scheme (a JWT from `POST /v1/auth/token`) and the shared value
///   schemas ([`crate::schema`]) are in the components.
pub struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut OpenApi) {
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
        for (name, schema) in [
            (ProblemBody::name(), ProblemBody::schema()),
            (FieldError::name(), FieldError::schema()),
        ]
        .into_iter()
        .chain(crate::schema::all())
        {
            components
                .schemas
                .entry(name.into_owned())
                .or_insert(schema);
        }
        for_each_operation(openapi, |op| {
            for param in op.parameters.iter_mut().flatten() {
                if let Some(schema) = &mut param.schema {
                    not_null(schema);
                }
            }
            let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let has_body = op.request_body.is_some();
            if has_params || has_body {
                document(
                    op,
                    "400",
                    "A path or query parameter, a header or a text that is not valid, or (with a \
                     body) malformed JSON",
                );
            }
            if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                document(
                    op,
                    "401",
                    "The bearer token is missing, invalid, expired or revoked",
                );
            }
            if has_body {
                document(op, "413", "The body is larger than the configured limit");
                document(op, "415", "The body is not sent as `application/json`");
                document(op, "422", "A field is missing or not valid (see `errors`)");
            }
            document(
                op,
                "503",
                "A dependency (the database) is unavailable; retry after `Retry-After` seconds",
            );
            for (status, response) in &mut op.responses.responses {
                let RefOr::T(response) = response else {
                    continue;
                };
                if is_error(status) {
                    as_problem(response);
                }
                if status == "429" || status == "503" {
                    response
                        .headers
                        .entry("Retry-After".to_owned())
                        .or_insert_with(|| {
                            header(Type::Integer, "Seconds to wait before trying again")
                        });
                }
            }
        });
    }
}

/// Calls `f` with every operation of the document.
pub fn for_each_operation(openapi: &mut OpenApi, mut f: impl FnMut(&mut Operation)) {
    for item in openapi.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            f(op);
        }
    }
}

/// Documents the answer `status` of `op` with `description` (a problem, for an error
/// status), unless it is documented.
pub fn document(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| {
            let mut response = Response::new(description);
            if is_error(status) {
                as_problem(&mut response);
            }
            RefOr::T(response)
        });
}

fn is_error(status: &str) -> bool {
    status.starts_with('4') || status.starts_with('5')
}

/// Makes `response`'s body an RFC 9457 problem.
fn as_problem(response: &mut Response) {
    response.content.clear();
    response.content.insert(
        PROBLEM_JSON.to_owned(),
        Content::new(Some(Ref::from_schema_name(ProblemBody::name()))),
    );
}

/// A response header of `kind` (a string or an integer) described by `description`.
pub fn header(kind: Type, description: &str) -> Header {
    let mut header = Header::new(ObjectBuilder::new().schema_type(SchemaType::Type(kind)));
    header.description = Some(description.to_owned());
    header
}

/// Drops `null` from a parameter's schema: an `Option` parameter is left out, never null.
fn not_null(schema: &mut RefOr<Schema>) {
    let RefOr::T(inner) = schema else {
        return;
    };
    match inner {
        Schema::Object(object) => {
            if let SchemaType::Array(types) = &object.schema_type {
                let mut types: Vec<Type> = types
                    .iter()
                    .filter(|t| **t != Type::Null)
                    .cloned()
                    .collect();
                if types.len() == 1 {
                    object.schema_type = SchemaType::Type(types.remove(0));
                }
            }
        }
        Schema::OneOf(one_of) => {
            let is_null = |s: &RefOr<Schema>| {
                matches!(s, RefOr::T(Schema::Object(o))
                    if o.schema_type == SchemaType::Type(Type::Null))
            };
            let mut rest: Vec<RefOr<Schema>> = one_of
                .items
                .iter()
                .filter(|s| !is_null(s))
                .cloned()
                .collect();
            if rest.len() == 1 {
                *schema = rest.remove(0);
            }
        }
        _ => {}
    }
}
