//! Catalog: product list and detail (availability joins the stock read model).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use mercato_aggregates::product::{ProductDetails, ProductEvent};
use mercato_event_store::RecordedEvent;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::{distinct, rows};
use crate::decode::decode;
use crate::error::ProjectionError;
use crate::projection::Projection;

/// Products with their current details, price and status.
pub struct Catalog;

#[async_trait::async_trait]
impl Projection for Catalog {
    fn name(&self) -> &'static str {
        "catalog"
    }
    fn version(&self) -> i32 {
        1
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Product"]
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[
            "ProductCreated",
            "ProductDetailsUpdated",
            "ProductPriceChanged",
            "ProductPublished",
            "ProductUnpublished",
            "ProductDiscontinued",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["products"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let skus = distinct(events.iter().map(|e| e.aggregate_id.clone()));
        let mut products: HashMap<String, ProductRow> =
            rows::load::<ProductRow>(conn, "products", "sku", "text", &skus)
                .await?
                .into_iter()
                .map(|p| (p.sku.clone(), p))
                .collect();
        let mut changed = HashSet::new();
        for event in events {
            let sku = &event.aggregate_id;
            let at = event.recorded_at;
            let decoded = decode::<ProductEvent>(event)?;
            if let ProductEvent::ProductCreated { details, price, .. } = &decoded {
                // A product is created once; a second creation changes nothing.
                if !products.contains_key(sku) {
                    let d = Details::from(details);
                    products.insert(
                        sku.clone(),
                        ProductRow {
                            sku: sku.clone(),
                            name: d.name,
                            description: d.description,
                            brand: d.brand,
                            category: d.category,
                            attributes: d.attributes,
                            images: d.images,
                            price_amount: price.amount(),
                            currency: price.currency().as_str().to_owned(),
                            status: "draft".to_owned(),
                            created_at: at,
                            updated_at: at,
                        },
                    );
                    changed.insert(sku.clone());
                }
                continue;
            }
            // An event of a product this read model never saw created changes nothing.
            let Some(p) = products.get_mut(sku) else {
                continue;
            };
            match decoded {
                ProductEvent::ProductCreated { .. } => {}
                ProductEvent::ProductDetailsUpdated { details } => {
                    let d = Details::from(&details);
                    p.name = d.name;
                    p.description = d.description;
                    p.brand = d.brand;
                    p.category = d.category;
                    p.attributes = d.attributes;
                    p.images = d.images;
                }
                ProductEvent::ProductPriceChanged { new_price, .. } => {
                    p.price_amount = new_price.amount();
                    p.currency = new_price.currency().as_str().to_owned();
                }
                ProductEvent::ProductPublished => p.status = "published".to_owned(),
                ProductEvent::ProductUnpublished => p.status = "unpublished".to_owned(),
                ProductEvent::ProductDiscontinued => p.status = "discontinued".to_owned(),
            }
            p.updated_at = at;
            changed.insert(sku.clone());
        }
        let changed: Vec<&ProductRow> = changed.iter().filter_map(|s| products.get(s)).collect();
        rows::upsert(conn, "products", &["sku"], &changed).await
    }
}

/// A row of `products`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductRow {
    sku: String,
    name: String,
    description: String,
    brand: String,
    category: Vec<String>,
    attributes: serde_json::Value,
    images: serde_json::Value,
    price_amount: i64,
    currency: String,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

struct Details {
    name: String,
    description: String,
    brand: String,
    category: Vec<String>,
    attributes: serde_json::Value,
    images: serde_json::Value,
}

impl From<&ProductDetails> for Details {
    fn from(d: &ProductDetails) -> Self {
        Self {
            name: d.name.as_str().to_owned(),
            description: d.description.as_str().to_owned(),
            brand: d.brand.as_str().to_owned(),
            category: d.category.segments().to_vec(),
            attributes: serde_json::to_value(d.attributes.entries()).unwrap_or_default(),
            images: serde_json::Value::Array(
                d.images
                    .iter()
                    .map(|i| serde_json::Value::String(i.as_str().to_owned()))
                    .collect(),
            ),
        }
    }
}
