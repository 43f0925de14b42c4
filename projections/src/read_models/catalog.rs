//! Catalog: product list and detail (availability joins the stock read model).

use mercato_aggregates::product::{ProductDetails, ProductEvent};
use mercato_event_store::RecordedEvent;
use sqlx::PgConnection;

use crate::decode::decode;
use crate::error::ProjectionError;
use crate::runtime::Projection;

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
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let sku = &event.aggregate_id;
        let at = event.recorded_at;
        match decode::<ProductEvent>(event)? {
            ProductEvent::ProductCreated { details, price, .. } => {
                let d = Details::from(&details);
                sqlx::query(
                    "INSERT INTO products (sku, name, description, brand, category, attributes, images, \
                       price_amount, currency, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'draft', $10, $10) \
                     ON CONFLICT (sku) DO NOTHING",
                )
                .bind(sku)
                .bind(d.name)
                .bind(d.description)
                .bind(d.brand)
                .bind(d.category)
                .bind(d.attributes)
                .bind(d.images)
                .bind(price.amount())
                .bind(price.currency().as_str())
                .bind(at)
                .execute(conn)
                .await?;
            }
            ProductEvent::ProductDetailsUpdated { details } => {
                let d = Details::from(&details);
                sqlx::query(
                    "UPDATE products SET name = $2, description = $3, brand = $4, category = $5, \
                       attributes = $6, images = $7, updated_at = $8 WHERE sku = $1",
                )
                .bind(sku)
                .bind(d.name)
                .bind(d.description)
                .bind(d.brand)
                .bind(d.category)
                .bind(d.attributes)
                .bind(d.images)
                .bind(at)
                .execute(conn)
                .await?;
            }
            ProductEvent::ProductPriceChanged { new_price, .. } => {
                sqlx::query(
                    "UPDATE products SET price_amount = $2, currency = $3, updated_at = $4 WHERE sku = $1",
                )
                .bind(sku)
                .bind(new_price.amount())
                .bind(new_price.currency().as_str())
                .bind(at)
                .execute(conn)
                .await?;
            }
            ProductEvent::ProductPublished => set_status(conn, sku, "published", at).await?,
            ProductEvent::ProductUnpublished => set_status(conn, sku, "unpublished", at).await?,
            ProductEvent::ProductDiscontinued => set_status(conn, sku, "discontinued", at).await?,
        }
        Ok(())
    }
}

async fn set_status(
    conn: &mut PgConnection,
    sku: &str,
    status: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), ProjectionError> {
    sqlx::query("UPDATE products SET status = $2, updated_at = $3 WHERE sku = $1")
        .bind(sku)
        .bind(status)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
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
