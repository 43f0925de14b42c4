//! A generated demo catalog: varied, realistic-looking products that are the same for the
//! same seed (the search benchmark uses it too).

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// One generated product, shaped like the body of `POST /v1/products`.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoProduct {
    /// `SKU-000001`, ...
    pub sku: String,
    /// Brand, adjective, noun and model.
    pub name: String,
    /// Two or three sentences.
    pub description: String,
    /// The brand.
    pub brand: String,
    /// The category path, e.g. `["electronics", "audio", "headphones"]`.
    pub category: Vec<String>,
    /// Price in euro cents.
    pub price_cents: i64,
    /// Colour, material and so on.
    pub attributes: Vec<(String, String)>,
}

impl DemoProduct {
    /// The request body for `POST /v1/products`.
    pub fn body(&self) -> Value {
        let attributes: serde_json::Map<String, Value> = self
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        json!({
            "sku": self.sku,
            "name": self.name,
            "description": self.description,
            "brand": self.brand,
            "category": self.category,
            "price": {"amount": self.price_cents, "currency": "EUR"},
            "attributes": attributes,
            "images": [format!("https://images.mercato.example/{}.jpg", self.sku.to_lowercase())],
        })
    }
}

struct Department {
    path: &'static [&'static str],
    nouns: &'static [&'static str],
    brands: &'static [&'static str],
    /// Price range in whole euros.
    price: (i64, i64),
    uses: &'static [&'static str],
}

const DEPARTMENTS: &[Department] = &[
    Department {
        path: &["electronics", "audio", "headphones"],
        nouns: &["Headphones", "Earbuds", "Headset", "Earphones"],
        brands: &["Sonora", "Auralis", "Bassline", "Nordtone"],
        price: (19, 399),
        uses: &["commuting", "the gym", "long flights", "home office calls"],
    },
    Department {
        path: &["electronics", "audio", "speakers"],
        nouns: &["Speaker", "Soundbar", "Bookshelf Speakers", "Subwoofer"],
        brands: &["Sonora", "Bassline", "Klangwerk"],
        price: (29, 899),
        uses: &["parties", "living rooms", "the garden", "movie nights"],
    },
    Department {
        path: &["electronics", "computers", "laptops"],
        nouns: &["Laptop", "Notebook", "Ultrabook", "Chromebook"],
        brands: &["Vertex", "Lumio", "Quantis", "Fenwick"],
        price: (299, 2899),
        uses: &["students", "developers", "video editing", "travel"],
    },
    Department {
        path: &["electronics", "computers", "keyboards"],
        nouns: &["Keyboard", "Mechanical Keyboard", "Keypad"],
        brands: &["Vertex", "Clackwork", "Lumio"],
        price: (15, 249),
        uses: &["gaming", "programmers", "writers", "compact desks"],
    },
    Department {
        path: &["home", "kitchen", "cookware"],
        nouns: &["Frying Pan", "Saucepan", "Dutch Oven", "Wok", "Stockpot"],
        brands: &["Casa Ferro", "Kochhaus", "Ember & Oak"],
        price: (12, 349),
        uses: &[
            "everyday cooking",
            "searing steaks",
            "slow braises",
            "induction hobs",
        ],
    },
    Department {
        path: &["home", "kitchen", "coffee"],
        nouns: &[
            "Espresso Machine",
            "Coffee Grinder",
            "French Press",
            "Pour-Over Kettle",
        ],
        brands: &["Barista Bros", "Kochhaus", "Crema"],
        price: (19, 1299),
        uses: &[
            "morning espresso",
            "filter coffee",
            "small kitchens",
            "coffee enthusiasts",
        ],
    },
    Department {
        path: &["home", "furniture", "chairs"],
        nouns: &["Office Chair", "Armchair", "Dining Chair", "Stool"],
        brands: &["Nordhem", "Ember & Oak", "Sittwell"],
        price: (39, 1199),
        uses: &[
            "long working days",
            "reading corners",
            "dining rooms",
            "small apartments",
        ],
    },
    Department {
        path: &["sports", "outdoor", "camping"],
        nouns: &[
            "Tent",
            "Sleeping Bag",
            "Camping Stove",
            "Backpack",
            "Headlamp",
        ],
        brands: &["Trailhead", "Summit Gear", "Fjellbu"],
        price: (9, 699),
        uses: &[
            "weekend trips",
            "alpine treks",
            "festival camping",
            "bikepacking",
        ],
    },
    Department {
        path: &["sports", "running", "shoes"],
        nouns: &["Running Shoes", "Trail Shoes", "Racing Flats"],
        brands: &["Stride", "Velox", "Trailhead"],
        price: (49, 249),
        uses: &[
            "marathon training",
            "muddy trails",
            "daily easy runs",
            "race day",
        ],
    },
    Department {
        path: &["sports", "fitness", "weights"],
        nouns: &["Kettlebell", "Dumbbell Set", "Resistance Bands", "Yoga Mat"],
        brands: &["Ironclad", "Velox", "Flexa"],
        price: (9, 399),
        uses: &[
            "home workouts",
            "strength training",
            "mobility work",
            "small spaces",
        ],
    },
    Department {
        path: &["toys", "games", "board-games"],
        nouns: &["Board Game", "Card Game", "Puzzle", "Strategy Game"],
        brands: &["Meeple & Co", "Rollwell", "Tabletop Works"],
        price: (9, 129),
        uses: &[
            "family evenings",
            "two players",
            "party nights",
            "long winter weekends",
        ],
    },
    Department {
        path: &["garden", "tools", "power-tools"],
        nouns: &[
            "Lawn Mower",
            "Hedge Trimmer",
            "Leaf Blower",
            "Cordless Drill",
        ],
        brands: &["Gartenkraft", "Ironclad", "GreenEdge"],
        price: (39, 999),
        uses: &[
            "small gardens",
            "large lawns",
            "weekend projects",
            "professional landscaping",
        ],
    },
];

const ADJECTIVES: &[&str] = &[
    "Wireless",
    "Compact",
    "Professional",
    "Lightweight",
    "Premium",
    "Classic",
    "Ultra",
    "Ergonomic",
    "Portable",
    "Heavy-Duty",
    "Smart",
    "Foldable",
    "Waterproof",
    "Silent",
];

const COLOURS: &[&str] = &[
    "black", "white", "graphite", "navy", "olive", "red", "sand", "silver",
];
const MATERIALS: &[&str] = &[
    "aluminium",
    "stainless steel",
    "recycled plastic",
    "oak",
    "cast iron",
    "nylon",
    "leather",
    "carbon fibre",
];

/// `n` products for `seed`; the same arguments always give the same catalog.
pub fn products(n: usize, seed: u64) -> Vec<DemoProduct> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|i| product(i, &mut rng)).collect()
}

fn product(i: usize, rng: &mut StdRng) -> DemoProduct {
    let department = &DEPARTMENTS[i % DEPARTMENTS.len()];
    let brand = *department.brands.choose(rng).unwrap_or(&"Mercato");
    let adjective = *ADJECTIVES.choose(rng).unwrap_or(&"Classic");
    let noun = *department.nouns.choose(rng).unwrap_or(&"Thing");
    let model = format!(
        "{}{}",
        ["X", "S", "Pro ", "Air ", "Max ", "Mk"][rng.random_range(0..6)],
        rng.random_range(1..=900)
    );
    let colour = *COLOURS.choose(rng).unwrap_or(&"black");
    let material = *MATERIALS.choose(rng).unwrap_or(&"steel");
    let used_for = *department.uses.choose(rng).unwrap_or(&"everyday use");
    let (low, high) = department.price;
    let euros = rng.random_range(low..=high);
    let cents = [0, 49, 90, 95, 99][rng.random_range(0..5)];
    let description = format!(
        "The {brand} {name} is a {adj} {noun} in {colour}, made from {material}. \
         Designed for {used_for}, it {benefit}. {extra}",
        name = model.trim(),
        adj = adjective.to_lowercase(),
        noun = noun.to_lowercase(),
        benefit = [
            "balances durability with a low weight",
            "comes with a two-year warranty",
            "is easy to clean and built to last",
            "ships in fully recyclable packaging",
        ][rng.random_range(0..4)],
        extra = [
            "A favourite of our customers.",
            "Rated highly for value for money.",
            "Available while stocks last.",
            "",
        ][rng.random_range(0..4)],
    );
    DemoProduct {
        sku: format!("SKU-{:06}", i + 1),
        name: format!("{brand} {adjective} {noun} {}", model.trim()),
        description: description.trim().to_owned(),
        brand: brand.to_owned(),
        category: department.path.iter().map(|s| (*s).to_owned()).collect(),
        price_cents: euros * 100 + cents,
        attributes: vec![
            ("colour".into(), colour.into()),
            ("material".into(), material.into()),
        ],
    }
}

/// A first and last name for demo customer `i`.
pub fn person(i: usize) -> (String, String) {
    const FIRST: &[&str] = &[
        "Ada", "Bruno", "Chloé", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas",
        "Kaja", "Luca", "Maya", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Sven", "Tara",
    ];
    const LAST: &[&str] = &[
        "Novak",
        "Schmidt",
        "García",
        "Rossi",
        "Dubois",
        "Kowalski",
        "Jensen",
        "Silva",
        "Müller",
        "Costa",
        "Berg",
        "Nakamura",
        "Okafor",
        "Lindqvist",
    ];
    (
        FIRST[i % FIRST.len()].to_owned(),
        LAST[(i / FIRST.len() + i * 7) % LAST.len()].to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_catalog_with_unique_skus() {
        let a = products(500, 7);
        assert_eq!(a, products(500, 7));
        let skus: std::collections::HashSet<_> = a.iter().map(|p| &p.sku).collect();
        assert_eq!(skus.len(), 500);
        let categories: std::collections::HashSet<_> = a.iter().map(|p| &p.category).collect();
        assert_eq!(categories.len(), DEPARTMENTS.len());
        assert!(a.iter().all(|p| p.price_cents > 0 && p.name.len() <= 200));
    }
}
