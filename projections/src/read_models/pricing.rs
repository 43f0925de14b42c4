//! Pricing: the promotions (with the uses they hold), the shop's tax rates and its shipping
//! methods, for the back office's lists and for pricing a cart's view and its shipping
//! options (the checkout prices from the aggregates themselves).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use mercato_aggregates::promotion::{apply_changes, PromotionEvent, PromotionTerms};
use mercato_aggregates::shipping::{ShippingEvent, ShippingMethod};
use mercato_aggregates::tax::TaxEvent;
use mercato_event_store::RecordedEvent;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{distinct, rows};
use crate::decode::decode;
use crate::error::ProjectionError;
use crate::projection::Projection;

/// Promotions and tax rates.
pub struct Pricing;

#[async_trait::async_trait]
impl Projection for Pricing {
    fn name(&self) -> &'static str {
        "pricing"
    }
    fn version(&self) -> i32 {
        1
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Promotion", "TaxPolicy", "ShippingPolicy"]
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[
            "PromotionCreated",
            "PromotionUpdated",
            "PromotionActivated",
            "PromotionDeactivated",
            "PromotionRedemptionReserved",
            "PromotionRedemptionReleased",
            "TaxRateSet",
            "TaxRateRemoved",
            "TaxInclusionSet",
            "ShippingMethodDefined",
            "ShippingMethodRetired",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &[
            "promotions",
            "tax_rates",
            "tax_settings",
            "shipping_methods",
        ]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let ids = distinct(
            events
                .iter()
                .filter(|e| e.aggregate_type == "Promotion")
                .map(|e| e.aggregate_id.clone()),
        );
        let mut promotions: HashMap<Uuid, PromotionRow> =
            rows::load::<PromotionRow>(conn, "promotions", "promotion_id", "uuid", &ids)
                .await?
                .into_iter()
                .map(|p| (p.promotion_id, p))
                .collect();
        let mut changed = HashSet::new();
        // `None`: the rate was removed.
        let mut rates: HashMap<String, Option<RateRow>> = HashMap::new();
        let mut settings = None;
        // `None`: the method was retired.
        let mut methods: HashMap<String, Option<MethodRow>> = HashMap::new();
        for event in events {
            let at = event.recorded_at;
            if event.aggregate_type == "ShippingPolicy" {
                match decode::<ShippingEvent>(event)? {
                    ShippingEvent::ShippingMethodDefined { method_id, method } => {
                        let row = MethodRow {
                            method_id: method_id.as_str().to_owned(),
                            name: method.name.as_str().to_owned(),
                            method,
                            updated_at: at,
                        };
                        methods.insert(row.method_id.clone(), Some(row));
                    }
                    ShippingEvent::ShippingMethodRetired { method_id } => {
                        methods.insert(method_id.as_str().to_owned(), None);
                    }
                }
                continue;
            }
            if event.aggregate_type == "TaxPolicy" {
                match decode::<TaxEvent>(event)? {
                    TaxEvent::TaxRateSet {
                        country,
                        postal_prefix,
                        rate,
                    } => {
                        let prefix = postal_prefix.map(|p| p.as_str().to_owned());
                        let row = RateRow {
                            key: rate_key(country.as_str(), prefix.as_deref()),
                            country: country.as_str().to_owned(),
                            postal_prefix: prefix,
                            rate: rate.to_string(),
                            rate_thousandths: i32::try_from(rate.thousandths()).unwrap_or(0),
                            updated_at: at,
                        };
                        rates.insert(row.key.clone(), Some(row));
                    }
                    TaxEvent::TaxRateRemoved {
                        country,
                        postal_prefix,
                    } => {
                        let key =
                            rate_key(country.as_str(), postal_prefix.as_ref().map(|p| p.as_str()));
                        rates.insert(key, None);
                    }
                    TaxEvent::TaxInclusionSet { prices_include_tax } => {
                        settings = Some(SettingsRow {
                            shop: "shop".to_owned(),
                            prices_include_tax,
                            updated_at: at,
                        });
                    }
                }
                continue;
            }
            let id =
                Uuid::parse_str(&event.aggregate_id).map_err(|e| ProjectionError::Invalid {
                    event_id: event.event_id,
                    reason: format!("promotion id: {e}"),
                })?;
            let decoded = decode::<PromotionEvent>(event)?;
            if let PromotionEvent::PromotionCreated { terms, active, .. } = &decoded {
                promotions.entry(id).or_insert_with(|| PromotionRow {
                    promotion_id: id,
                    name: terms.name.as_str().to_owned(),
                    code: terms.code.as_ref().map(|c| c.as_str().to_owned()),
                    terms: terms.clone(),
                    active: *active,
                    uses: 0,
                    created_at: at,
                    updated_at: at,
                });
                changed.insert(id);
                continue;
            }
            let Some(row) = promotions.get_mut(&id) else {
                continue;
            };
            match decoded {
                PromotionEvent::PromotionCreated { .. } => {}
                PromotionEvent::PromotionUpdated { changes } => {
                    row.terms = apply_changes(row.terms.clone(), changes);
                    row.name = row.terms.name.as_str().to_owned();
                }
                PromotionEvent::PromotionActivated => row.active = true,
                PromotionEvent::PromotionDeactivated => row.active = false,
                PromotionEvent::PromotionRedemptionReserved { uses, .. }
                | PromotionEvent::PromotionRedemptionReleased { uses, .. } => {
                    row.uses = i32::try_from(uses).unwrap_or(i32::MAX);
                }
            }
            row.updated_at = at;
            changed.insert(id);
        }
        let upserts: Vec<&PromotionRow> =
            changed.iter().filter_map(|id| promotions.get(id)).collect();
        rows::upsert(conn, "promotions", &["promotion_id"], &upserts).await?;
        let (kept, removed): (Vec<_>, Vec<_>) = rates.into_iter().partition(|(_, r)| r.is_some());
        let removed: Vec<RateKey> = removed
            .into_iter()
            .map(|(key, _)| RateKey { key })
            .collect();
        rows::delete(conn, "tax_rates", &[("key", "text")], &removed).await?;
        let kept: Vec<RateRow> = kept.into_iter().filter_map(|(_, r)| r).collect();
        rows::upsert(conn, "tax_rates", &["key"], &kept).await?;
        let (kept, retired): (Vec<_>, Vec<_>) = methods.into_iter().partition(|(_, m)| m.is_some());
        let retired: Vec<MethodKey> = retired
            .into_iter()
            .map(|(method_id, _)| MethodKey { method_id })
            .collect();
        rows::delete(conn, "shipping_methods", &[("method_id", "text")], &retired).await?;
        let kept: Vec<MethodRow> = kept.into_iter().filter_map(|(_, m)| m).collect();
        rows::upsert(conn, "shipping_methods", &["method_id"], &kept).await?;
        if let Some(settings) = settings {
            rows::upsert(conn, "tax_settings", &["shop"], &[settings]).await?;
        }
        Ok(())
    }
}

fn rate_key(country: &str, prefix: Option<&str>) -> String {
    match prefix {
        Some(p) => format!("{country}/{p}"),
        None => country.to_owned(),
    }
}

/// A row of `promotions`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromotionRow {
    promotion_id: Uuid,
    name: String,
    code: Option<String>,
    /// The [`PromotionTerms`] as JSON.
    terms: PromotionTerms,
    active: bool,
    /// Uses held now.
    uses: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A row of `tax_rates`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateRow {
    /// `CC` or `CC/prefix`.
    key: String,
    country: String,
    postal_prefix: Option<String>,
    /// The rate in percent, as text (`"8.875"`).
    rate: String,
    rate_thousandths: i32,
    updated_at: DateTime<Utc>,
}

/// The key of a `tax_rates` row.
#[derive(Debug, Serialize)]
struct RateKey {
    key: String,
}

/// The one row of `tax_settings`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsRow {
    shop: String,
    prices_include_tax: bool,
    updated_at: DateTime<Utc>,
}

/// A row of `shipping_methods`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MethodRow {
    method_id: String,
    name: String,
    /// The [`ShippingMethod`] as JSON.
    method: ShippingMethod,
    updated_at: DateTime<Utc>,
}

/// The key of a `shipping_methods` row.
#[derive(Debug, Serialize)]
struct MethodKey {
    method_id: String,
}
