//! Recommendations over HTTP end to end: orders checked out through the command API and
//! confirmed by the order process feed "bought together" and "popular in this category",
//! served by the query API; a rebuild of the projection gives the same answer.

use mercato_projections::rebuild::{rebuild, RebuildOptions};
use serde_json::{json, Value};

use crate::stack::Stack;

fn items(answer: &Value) -> Vec<(String, String, i64)> {
    answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["sku"].as_str().unwrap().to_owned(),
                i["reason"].as_str().unwrap().to_owned(),
                i["score"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn expected(list: &[(&str, &str, i64)]) -> Vec<(String, String, i64)> {
    list.iter()
        .map(|(s, r, n)| ((*s).to_owned(), (*r).to_owned(), *n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommendations_rank_bought_together_then_category_best_sellers_and_survive_a_rebuild() {
    let s = Stack::start().await;
    let admin = s.admin().await;
    type Item<'a> = (&'a str, &'a str, &'a [&'a str]);
    let catalog: &[Item] = &[
        ("MUG-1", "Ceramic Mug", &["kitchen", "mugs"]),
        ("MUG-2", "Travel Mug", &["kitchen", "mugs"]),
        ("MUG-3", "Espresso Cup", &["kitchen", "mugs"]),
        ("MUG-4", "Giant Mug", &["kitchen", "mugs"]),
        ("TEA-1", "Green Tea", &["kitchen", "tea"]),
        ("SPOON-1", "Tea Spoon", &["kitchen", "cutlery"]),
        ("PLATE-1", "Dinner Plate", &["kitchen", "plates"]),
    ];
    for (sku, name, category) in catalog {
        s.product(
            &admin,
            sku,
            name,
            "Acme",
            category,
            1_000,
            "A kitchen thing",
        )
        .await;
        s.receive(&admin, sku, "main", 100).await;
    }
    let (_, ada, _) = s.customer("ada@example.com", "Ada Lovelace").await;

    let confirmed: &[&[(&str, u32)]] = &[
        &[("MUG-1", 1), ("TEA-1", 2), ("SPOON-1", 1)],
        &[("MUG-1", 1), ("TEA-1", 1)],
        &[("MUG-1", 1), ("PLATE-1", 1)],
        &[("MUG-2", 3)],
        &[("MUG-3", 1), ("MUG-4", 5)],
    ];
    let mut orders = Vec::new();
    for lines in confirmed {
        orders.push(s.checkout(&ada, lines, "tok_visa").await);
    }
    // Declined, so cancelled before it was ever confirmed: it counts nothing.
    let declined = s
        .checkout(&ada, &[("MUG-1", 1), ("MUG-3", 4)], "tok_decline")
        .await;
    for order in &orders {
        s.eventually(&format!("/v1/orders/{order}"), Some(&ada), |o| {
            o["status"] == "confirmed"
        })
        .await;
    }
    s.eventually(&format!("/v1/orders/{declined}"), Some(&ada), |o| {
        o["status"] == "cancelled"
    })
    .await;
    // Recommended products must be published: these two leave the catalog.
    s.ok(
        200,
        "/v1/products/PLATE-1/unpublish",
        Some(&admin),
        json!({}),
    )
    .await;
    s.ok(200, "/v1/products/MUG-4/unpublish", Some(&admin), json!({}))
        .await;

    // Bought with MUG-1: TEA-1 in two orders, SPOON-1 in one (PLATE-1 is unpublished, the
    // declined order's MUG-3 never counted); then the best sellers among mugs: MUG-2 (3
    // units), MUG-3 (1; MUG-4 sold 5 but is unpublished; MUG-1 itself is never listed).
    let want = expected(&[
        ("TEA-1", "bought_together", 2),
        ("SPOON-1", "bought_together", 1),
        ("MUG-2", "popular_in_category", 3),
        ("MUG-3", "popular_in_category", 1),
    ]);
    let path = "/v1/products/MUG-1/recommendations";
    let answer = s.eventually(path, None, |r| items(r) == want).await;
    assert_eq!(answer["sku"], "MUG-1");
    assert_eq!(answer["items"][0]["name"], "Green Tea");
    assert_eq!(
        answer["items"][0]["price"],
        json!({"amount": 1000, "currency": "EUR"})
    );
    let first_two = s
        .get("/v1/products/MUG-1/recommendations?limit=2", None, &[])
        .await;
    assert_eq!(first_two.status, 200, "{}", first_two.body);
    assert_eq!(items(&first_two.body), want[..2]);
    // TEA-1's only partners are MUG-1 (2 orders) and SPOON-1 (1); no tea sold otherwise.
    let tea = s.get("/v1/products/TEA-1/recommendations", None, &[]).await;
    assert_eq!(
        items(&tea.body),
        expected(&[
            ("MUG-1", "bought_together", 2),
            ("SPOON-1", "bought_together", 1)
        ])
    );

    // Bad input is a problem.
    for (path, status, code) in [
        (
            "/v1/products/MUG-1/recommendations?limit=0",
            400,
            "invalid_limit",
        ),
        (
            "/v1/products/MUG-1/recommendations?limit=51",
            400,
            "invalid_limit",
        ),
        (
            "/v1/products/MUG-1/recommendations?limit=ten",
            400,
            "invalid_query",
        ),
        (
            "/v1/products/MUG-1/recommendations?lmit=3",
            400,
            "invalid_query",
        ),
        (
            "/v1/products/bad%20sku!/recommendations",
            400,
            "invalid_sku",
        ),
        (
            "/v1/products/NOPE-1/recommendations",
            404,
            "product_not_found",
        ),
        (
            "/v1/products/PLATE-1/recommendations",
            404,
            "product_not_found",
        ),
    ] {
        let a = s.get(path, None, &[]).await;
        assert_eq!(a.status, status, "{path}: {}", a.body);
        assert_eq!(a.body["code"], code, "{path}");
        assert_eq!(
            a.headers["content-type"], "application/problem+json",
            "{path}"
        );
    }

    // A rebuild from the log builds the same read model.
    rebuild(
        s.pool(),
        "recommendations",
        &RebuildOptions::default(),
        |_| {},
    )
    .await
    .unwrap();
    let rebuilt = s.get(path, None, &[]).await;
    assert_eq!(rebuilt.status, 200);
    assert_eq!(rebuilt.body, answer);
}
