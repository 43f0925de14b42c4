use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent};

use super::*;
use crate::test_support::fixtures::{eur, sku, usd};
use crate::values::{Attributes, Brand, CategoryPath, Description, ImageUrl, ProductName};

type Fixture = TestFramework<Product>;

fn details(name: &str) -> ProductDetails {
    ProductDetails {
        name: ProductName::new(name).unwrap(),
        description: Description::new("Soft cotton").unwrap(),
        brand: Brand::new("Acme").unwrap(),
        category: CategoryPath::parse("apparel/shirts").unwrap(),
        attributes: Attributes::default(),
        images: vec![ImageUrl::new("https://cdn.example.com/tshirt.png").unwrap()],
        weight_grams: Some(250),
    }
}

fn created() -> ProductEvent {
    ProductEvent::ProductCreated {
        sku: sku("TSHIRT-RED"),
        details: details("Red T-shirt"),
        price: eur(1999),
    }
}

fn fixture() -> Fixture {
    TestFramework::with(())
}

#[test]
fn create_product() {
    fixture()
        .given_no_previous_events()
        .when(ProductCommand::CreateProduct {
            sku: sku("TSHIRT-RED"),
            details: details("Red T-shirt"),
            price: eur(1999),
        })
        .then_expect_events(vec![created()]);
}

#[test]
fn create_twice_is_refused() {
    fixture()
        .given(vec![created()])
        .when(ProductCommand::CreateProduct {
            sku: sku("TSHIRT-RED"),
            details: details("Red T-shirt"),
            price: eur(1999),
        })
        .then_expect_error(ProductError::AlreadyExists);
}

#[test]
fn too_many_images_is_refused_on_create_and_update() {
    let mut many = details("Red T-shirt");
    many.images = (0..=ProductDetails::MAX_IMAGES)
        .map(|i| ImageUrl::new(format!("https://cdn.example.com/{i}.png")).unwrap())
        .collect();
    let expected = ProductError::TooManyImages {
        max: ProductDetails::MAX_IMAGES,
    };
    fixture()
        .given_no_previous_events()
        .when(ProductCommand::CreateProduct {
            sku: sku("TSHIRT-RED"),
            details: many.clone(),
            price: eur(1999),
        })
        .then_expect_error(expected.clone());
    fixture()
        .given(vec![created()])
        .when(ProductCommand::UpdateProductDetails { details: many })
        .then_expect_error(expected);
}

#[test]
fn commands_before_creation_are_refused() {
    for command in [
        ProductCommand::UpdateProductDetails {
            details: details("x"),
        },
        ProductCommand::ChangeProductPrice { price: eur(1) },
        ProductCommand::PublishProduct,
        ProductCommand::UnpublishProduct,
        ProductCommand::DiscontinueProduct,
    ] {
        fixture()
            .given_no_previous_events()
            .when(command)
            .then_expect_error(ProductError::NotFound);
    }
}

#[test]
fn update_details() {
    fixture()
        .given(vec![created()])
        .when(ProductCommand::UpdateProductDetails {
            details: details("Crimson T-shirt"),
        })
        .then_expect_events(vec![ProductEvent::ProductDetailsUpdated {
            details: details("Crimson T-shirt"),
        }]);
}

#[test]
fn update_with_identical_details_records_nothing() {
    fixture()
        .given(vec![created()])
        .when(ProductCommand::UpdateProductDetails {
            details: details("Red T-shirt"),
        })
        .then_expect_events(vec![]);
}

#[test]
fn change_price() {
    fixture()
        .given(vec![created()])
        .when(ProductCommand::ChangeProductPrice { price: eur(1499) })
        .then_expect_events(vec![ProductEvent::ProductPriceChanged {
            old_price: eur(1999),
            new_price: eur(1499),
        }]);
}

#[test]
fn same_price_records_nothing() {
    fixture()
        .given(vec![created()])
        .when(ProductCommand::ChangeProductPrice { price: eur(1999) })
        .then_expect_events(vec![]);
}

#[test]
fn price_currency_cannot_change() {
    fixture()
        .given(vec![created()])
        .when(ProductCommand::ChangeProductPrice { price: usd(1999) })
        .then_expect_error(ProductError::CurrencyChange {
            current: crate::Currency::EUR,
            requested: crate::Currency::USD,
        });
}

#[test]
fn publish_unpublish_republish() {
    fixture()
        .given(vec![created()])
        .when(ProductCommand::PublishProduct)
        .then_expect_events(vec![ProductEvent::ProductPublished]);
    fixture()
        .given(vec![created(), ProductEvent::ProductPublished])
        .when(ProductCommand::UnpublishProduct)
        .then_expect_events(vec![ProductEvent::ProductUnpublished]);
    fixture()
        .given(vec![
            created(),
            ProductEvent::ProductPublished,
            ProductEvent::ProductUnpublished,
        ])
        .when(ProductCommand::PublishProduct)
        .then_expect_events(vec![ProductEvent::ProductPublished]);
}

#[test]
fn publish_twice_is_refused() {
    fixture()
        .given(vec![created(), ProductEvent::ProductPublished])
        .when(ProductCommand::PublishProduct)
        .then_expect_error(ProductError::AlreadyPublished);
}

#[test]
fn unpublish_when_not_published_is_refused() {
    fixture()
        .given(vec![created()])
        .when(ProductCommand::UnpublishProduct)
        .then_expect_error(ProductError::NotPublished);
}

#[test]
fn discontinue() {
    fixture()
        .given(vec![created(), ProductEvent::ProductPublished])
        .when(ProductCommand::DiscontinueProduct)
        .then_expect_events(vec![ProductEvent::ProductDiscontinued]);
}

#[test]
fn discontinued_product_cannot_be_republished_or_changed() {
    for command in [
        ProductCommand::PublishProduct,
        ProductCommand::UnpublishProduct,
        ProductCommand::DiscontinueProduct,
        ProductCommand::ChangeProductPrice { price: eur(1) },
        ProductCommand::UpdateProductDetails {
            details: details("x"),
        },
    ] {
        fixture()
            .given(vec![created(), ProductEvent::ProductDiscontinued])
            .when(command)
            .then_expect_error(ProductError::Discontinued);
    }
}

#[test]
fn sellable_only_while_published() {
    let mut product = Product::default();
    product.apply(created());
    assert!(!product.is_sellable());
    product.apply(ProductEvent::ProductPublished);
    assert!(product.is_sellable());
    assert_eq!(product.price(), Some(eur(1999)));
    assert_eq!(product.sku(), Some(&sku("TSHIRT-RED")));
    product.apply(ProductEvent::ProductDiscontinued);
    assert!(!product.is_sellable());
    assert_eq!(product.status(), ProductStatus::Discontinued);
}

#[test]
fn event_types_and_versions_are_stable() {
    assert_eq!(created().event_type(), "ProductCreated");
    assert_eq!(created().event_version(), "2.1");
    assert_eq!(
        ProductEvent::ProductDiscontinued.event_type(),
        "ProductDiscontinued"
    );
    assert_eq!(ProductEvent::ProductPublished.event_version(), "1.0");
    let json = serde_json::to_value(ProductEvent::ProductPublished).unwrap();
    assert_eq!(json, serde_json::json!("ProductPublished"));
}

#[test]
fn error_codes_are_stable() {
    assert_eq!(ProductError::AlreadyExists.code(), "product_already_exists");
    assert_eq!(ProductError::Discontinued.code(), "product_discontinued");
    assert_eq!(Product::TYPE, "Product");
}
