use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{ProductCommand, ProductDetails, ProductError, ProductEvent};
use crate::money::Money;
use crate::values::Sku;

/// Publication status of a product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    /// Not created yet.
    #[default]
    Absent,
    /// Created, never published.
    Draft,
    /// Visible and sellable.
    Published,
    /// Hidden; can be published again.
    Unpublished,
    /// Withdrawn for good.
    Discontinued,
}

/// A catalog product (aggregate id: the SKU).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    sku: Option<Sku>,
    status: ProductStatus,
    details: Option<ProductDetails>,
    price: Option<Money>,
}

impl Product {
    /// The SKU, once created.
    pub fn sku(&self) -> Option<&Sku> {
        self.sku.as_ref()
    }

    /// Publication status.
    pub fn status(&self) -> ProductStatus {
        self.status
    }

    /// Current details, once created.
    pub fn details(&self) -> Option<&ProductDetails> {
        self.details.as_ref()
    }

    /// Current price, once created.
    pub fn price(&self) -> Option<Money> {
        self.price
    }

    /// Whether the product can be put in a cart: published (hence never discontinued).
    pub fn is_sellable(&self) -> bool {
        self.status == ProductStatus::Published
    }

    fn check_details(details: &ProductDetails) -> Result<(), ProductError> {
        if details.images.len() > ProductDetails::MAX_IMAGES {
            return Err(ProductError::TooManyImages {
                max: ProductDetails::MAX_IMAGES,
            });
        }
        Ok(())
    }

    /// Refuses commands on a product that does not exist or is discontinued.
    fn check_changeable(&self) -> Result<(), ProductError> {
        match self.status {
            ProductStatus::Absent => Err(ProductError::NotFound),
            ProductStatus::Discontinued => Err(ProductError::Discontinued),
            _ => Ok(()),
        }
    }

    fn decide(&self, command: ProductCommand) -> Result<Vec<ProductEvent>, ProductError> {
        if let ProductCommand::CreateProduct {
            sku,
            details,
            price,
        } = command
        {
            if self.status != ProductStatus::Absent {
                return Err(ProductError::AlreadyExists);
            }
            Self::check_details(&details)?;
            return Ok(vec![ProductEvent::ProductCreated {
                sku,
                details,
                price,
            }]);
        }
        self.check_changeable()?;
        let event = match command {
            ProductCommand::CreateProduct { .. } => return Err(ProductError::AlreadyExists),
            ProductCommand::UpdateProductDetails { details } => {
                Self::check_details(&details)?;
                if self.details.as_ref() == Some(&details) {
                    return Ok(vec![]);
                }
                ProductEvent::ProductDetailsUpdated { details }
            }
            ProductCommand::ChangeProductPrice { price } => {
                let Some(old_price) = self.price else {
                    return Err(ProductError::NotFound);
                };
                if old_price.currency() != price.currency() {
                    return Err(ProductError::CurrencyChange {
                        current: old_price.currency(),
                        requested: price.currency(),
                    });
                }
                if old_price == price {
                    return Ok(vec![]);
                }
                ProductEvent::ProductPriceChanged {
                    old_price,
                    new_price: price,
                }
            }
            ProductCommand::PublishProduct => {
                if self.status == ProductStatus::Published {
                    return Err(ProductError::AlreadyPublished);
                }
                ProductEvent::ProductPublished
            }
            ProductCommand::UnpublishProduct => {
                if self.status != ProductStatus::Published {
                    return Err(ProductError::NotPublished);
                }
                ProductEvent::ProductUnpublished
            }
            ProductCommand::DiscontinueProduct => ProductEvent::ProductDiscontinued,
        };
        Ok(vec![event])
    }
}

impl Aggregate for Product {
    const TYPE: &'static str = "Product";
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = ProductError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ProductEvent::ProductCreated {
                sku,
                details,
                price,
            } => {
                self.sku = Some(sku);
                self.details = Some(details);
                self.price = Some(price);
                self.status = ProductStatus::Draft;
            }
            ProductEvent::ProductDetailsUpdated { details } => self.details = Some(details),
            ProductEvent::ProductPriceChanged { new_price, .. } => self.price = Some(new_price),
            ProductEvent::ProductPublished => self.status = ProductStatus::Published,
            ProductEvent::ProductUnpublished => self.status = ProductStatus::Unpublished,
            ProductEvent::ProductDiscontinued => self.status = ProductStatus::Discontinued,
        }
    }
}
