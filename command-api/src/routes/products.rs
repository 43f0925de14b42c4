//! The catalog (admin only).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use mercato_aggregates::product::{ProductCommand, ProductDetails};
use mercato_aggregates::values::{
    Attributes, Brand, CategoryPath, Description, ImageUrl, ProductName, Sku,
};
use mercato_aggregates::ErrorKind;
use mercato_web::{Caller, Json, Path, Problem};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{context, parse_sku, written, IfMatch, MoneyDto, Precondition, WriteResult};
use crate::error::{store_problem, Fields};
use crate::exec::execute;
use crate::idempotency::RequestContext;
use crate::state::AppState;

/// A category: `["apparel", "shirts"]` or `"apparel/shirts"`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum CategoryDto {
    /// Segments.
    Segments(Vec<String>),
    /// Slash-separated path.
    Path(String),
}

impl CategoryDto {
    fn check(&self, f: &mut Fields) -> Option<CategoryPath> {
        let result = match self {
            CategoryDto::Segments(s) => CategoryPath::new(s.clone()),
            CategoryDto::Path(p) => CategoryPath::parse(p),
        };
        f.check("category", result)
    }
}

/// A new product (created as a draft; publish it to sell it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateProduct {
    #[schema(value_type = mercato_web::schema::Sku)]
    sku: String,
    name: String,
    #[serde(default)]
    description: String,
    brand: String,
    category: CategoryDto,
    price: MoneyDto,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    images: Vec<String>,
    /// Shipping weight of one unit in grams (for weight-based shipping rates).
    #[schema(maximum = 1000000)]
    weight_grams: Option<u32>,
}

/// Detail changes; omitted fields keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateProduct {
    name: Option<String>,
    description: Option<String>,
    brand: Option<String>,
    category: Option<CategoryDto>,
    attributes: Option<BTreeMap<String, String>>,
    images: Option<Vec<String>>,
    /// Shipping weight of one unit in grams.
    #[schema(maximum = 1000000)]
    weight_grams: Option<u32>,
}

/// A new price (same currency as before).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePrice {
    price: MoneyDto,
}

fn images(raw: &[String], f: &mut Fields) -> Vec<ImageUrl> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, url)| f.check(&format!("images[{i}]"), ImageUrl::new(url)))
        .collect()
}

/// Creates a product (admin).
#[utoipa::path(post, path = "/v1/products", operation_id = "create_product", tag = "catalog", request_body = CreateProduct, security(("bearer" = [])),
    responses((status = 201, body = WriteResult), (status = 401),
              (status = 403), (status = 409),
              (status = 422)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Json(body): Json<CreateProduct>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let mut f = Fields::default();
    let sku = f.check("sku", Sku::new(&body.sku));
    let name = f.check("name", ProductName::new(&body.name));
    let description = f.check("description", Description::new(&body.description));
    let brand = f.check("brand", Brand::new(&body.brand));
    let category = body.category.check(&mut f);
    let price = body.price.check("price", state.config().max_amount, &mut f);
    let attributes = f.check("attributes", Attributes::new(body.attributes.clone()));
    let images = images(&body.images, &mut f);
    let weight_grams = body.weight_grams.filter(|w| check_weight(*w, &mut f));
    f.finish()?;
    let sku = sku.unwrap();
    let command = ProductCommand::CreateProduct {
        sku: sku.clone(),
        details: ProductDetails {
            name: name.unwrap(),
            description: description.unwrap(),
            brand: brand.unwrap(),
            category: category.unwrap(),
            attributes: attributes.unwrap(),
            images,
            weight_grams,
        },
        price: price.unwrap(),
    };
    let stores = state.stores();
    let w = execute(
        &stores.products,
        sku.as_str(),
        command,
        &context(&req, Some(&caller)),
        None,
    )
    .await
    .map_err(store_problem)?;
    Ok(written(StatusCode::CREATED, WriteResult::from(&w), &w))
}

/// Changes a product's details (admin).
#[utoipa::path(patch, path = "/v1/products/{sku}", operation_id = "update_product", tag = "catalog", request_body = UpdateProduct,
    params(("sku" = mercato_web::schema::Sku, Path), Precondition), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401),
              (status = 403), (status = 404),
              (status = 422)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(sku): Path<String>,
    IfMatch(expected): IfMatch,
    Json(body): Json<UpdateProduct>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let sku = parse_sku(&sku)?;
    let stores = state.stores();
    let (product, _) = stores
        .products
        .load(sku.as_str())
        .await
        .map_err(store_problem)?;
    let Some(current) = product.details().cloned() else {
        return Err(crate::error::refusal(
            ErrorKind::NotFound,
            "product_not_found",
            "no such product",
        ));
    };
    let mut f = Fields::default();
    let mut details = current;
    if let Some(v) = &body.name {
        details.name = f.check("name", ProductName::new(v)).unwrap_or(details.name);
    }
    if let Some(v) = &body.description {
        details.description = f
            .check("description", Description::new(v))
            .unwrap_or(details.description);
    }
    if let Some(v) = &body.brand {
        details.brand = f.check("brand", Brand::new(v)).unwrap_or(details.brand);
    }
    if let Some(v) = &body.category {
        details.category = v.check(&mut f).unwrap_or(details.category);
    }
    if let Some(v) = &body.attributes {
        details.attributes = f
            .check("attributes", Attributes::new(v.clone()))
            .unwrap_or(details.attributes);
    }
    if let Some(v) = &body.images {
        details.images = images(v, &mut f);
    }
    if let Some(w) = body.weight_grams.filter(|w| check_weight(*w, &mut f)) {
        details.weight_grams = Some(w);
    }
    f.finish()?;
    let command = ProductCommand::UpdateProductDetails { details };
    let w = execute(
        &stores.products,
        sku.as_str(),
        command,
        &context(&req, Some(&caller)),
        expected,
    )
    .await
    .map_err(store_problem)?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

/// Changes a product's price (admin).
#[utoipa::path(post, path = "/v1/products/{sku}/price", tag = "catalog", request_body = ChangePrice,
    params(("sku" = mercato_web::schema::Sku, Path), Precondition), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401),
              (status = 403), (status = 404),
              (status = 422)))]
pub(crate) async fn change_price(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(sku): Path<String>,
    IfMatch(expected): IfMatch,
    Json(body): Json<ChangePrice>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let sku = parse_sku(&sku)?;
    let mut f = Fields::default();
    let price = body.price.check("price", state.config().max_amount, &mut f);
    f.finish()?;
    let command = ProductCommand::ChangeProductPrice {
        price: price.unwrap(),
    };
    simple(&state, &caller, &req, &sku, command, expected).await
}

async fn simple(
    state: &AppState,
    caller: &Caller,
    req: &RequestContext,
    sku: &Sku,
    command: ProductCommand,
    expected: Option<u64>,
) -> Result<Response, Problem> {
    let stores = state.stores();
    let w = execute(
        &stores.products,
        sku.as_str(),
        command,
        &context(req, Some(caller)),
        expected,
    )
    .await
    .map_err(store_problem)?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

macro_rules! lifecycle {
    ($name:ident, $path:literal, $command:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "catalog", params(("sku" = mercato_web::schema::Sku, Path), Precondition), security(("bearer" = [])),
            responses((status = 200, body = WriteResult), (status = 401),
                      (status = 403), (status = 404),
                      (status = 409)))]
        pub(crate) async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            Extension(req): Extension<RequestContext>,
            Path(sku): Path<String>,
            IfMatch(expected): IfMatch,
        ) -> Result<Response, Problem> {
            caller.require_admin()?;
            let sku = parse_sku(&sku)?;
            simple(&state, &caller, &req, &sku, $command, expected).await
        }
    };
}

lifecycle!(
    publish,
    "/v1/products/{sku}/publish",
    ProductCommand::PublishProduct,
    "Publishes a product: it can be sold (admin)."
);
lifecycle!(
    unpublish,
    "/v1/products/{sku}/unpublish",
    ProductCommand::UnpublishProduct,
    "Takes a product off sale (admin)."
);
lifecycle!(
    discontinue,
    "/v1/products/{sku}/discontinue",
    ProductCommand::DiscontinueProduct,
    "Discontinues a product for good (admin)."
);

/// A unit weighs at most a tonne.
fn check_weight(grams: u32, f: &mut Fields) -> bool {
    let ok = grams <= 1_000_000;
    if !ok {
        f.push(
            "weight_grams",
            "invalid_weight",
            "a unit weighs at most 1,000,000 g",
        );
    }
    ok
}
