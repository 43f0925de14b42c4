//! Search over HTTP end to end: products written through the command API, found through
//! the query API's search index with typos, prefixes, facets, filters and sorting.

use serde_json::{json, Value};

use crate::stack::Stack;

fn skus(results: &Value) -> Vec<&str> {
    results["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["sku"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_over_http_tolerates_typos_and_serves_prefixes_facets_filters_and_sorting() {
    let s = Stack::start().await;
    let admin = s.admin().await;
    type Item<'a> = (&'a str, &'a str, &'a str, &'a [&'a str], i64, &'a str);
    let items: &[Item] = &[
        (
            "HP-1",
            "Wireless Headphones",
            "Sonix",
            &["audio", "headphones"],
            9_999,
            "Over-ear noise cancelling headphones",
        ),
        (
            "HP-2",
            "Studio Headphones",
            "Acme",
            &["audio", "headphones"],
            14_999,
            "Closed back monitoring headphones",
        ),
        (
            "SP-1",
            "Bluetooth Speaker",
            "Sonix",
            &["audio", "speakers"],
            4_999,
            "Portable waterproof speaker",
        ),
        (
            "KB-1",
            "Mechanical Keyboard",
            "Acme",
            &["computers", "keyboards"],
            12_999,
            "Tactile switches and backlight",
        ),
        (
            "MS-1",
            "Wireless Mouse",
            "Acme",
            &["computers", "mice"],
            2_999,
            "Ergonomic wireless mouse",
        ),
    ];
    for (sku, name, brand, category, price, description) in items {
        s.product(&admin, sku, name, brand, category, *price, description)
            .await;
    }
    s.receive(&admin, "HP-1", "berlin", 3).await;
    s.receive(&admin, "KB-1", "berlin", 1).await;
    let last = s.receive(&admin, "MS-1", "paris", 7).await;
    let search = |q: &str| {
        let path = format!("/v1/search?{q}");
        let last = last.clone();
        let s = &s;
        async move { s.read_after(&path, None, &last).await }
    };

    // Typos: one edit in 5-8 letters (a transposition counts as one), two from 9 letters.
    let r = search("q=keybaord").await;
    assert_eq!(skus(&r), ["KB-1"]);
    let mut r = skus(&search("q=haedphnes").await)
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    r.sort();
    assert_eq!(r, ["HP-1", "HP-2"]);
    assert!(skus(&search("q=muose").await).contains(&"MS-1"));
    assert_eq!(search("q=xylophone").await["total"], 0);

    // Search as you type: the last word is a prefix.
    assert_eq!(skus(&search("q=mechan").await), ["KB-1"]);
    assert_eq!(skus(&search("q=bluetooth%20spea").await), ["SP-1"]);

    // Facets over every match, highlights in the hits.
    let r = search("q=headphones").await;
    assert_eq!(r["total"], 2);
    assert_eq!(r["facets"]["brand"], json!({"Acme": 1, "Sonix": 1}));
    assert_eq!(r["facets"]["category"], json!({"audio": 2}));
    let r = search("q=wireless").await;
    assert_eq!(r["facets"]["category"], json!({"audio": 1, "computers": 1}));
    assert!(r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["highlights"]["name"]
            .as_str()
            .unwrap()
            .contains("<b>Wireless</b>")));
    let r = search("q=headphones&category=audio").await;
    assert_eq!(r["facets"]["category"], json!({"audio/headphones": 2}));

    // Filters and sorting.
    assert_eq!(skus(&search("q=headphones&brand=Acme").await), ["HP-2"]);
    assert_eq!(skus(&search("q=headphones&in_stock=true").await), ["HP-1"]);
    assert_eq!(
        skus(&search("q=wireless&sort=price_asc").await),
        ["MS-1", "HP-1"]
    );
    assert_eq!(
        skus(&search("q=wireless&sort=price_desc").await),
        ["HP-1", "MS-1"]
    );
    assert_eq!(
        skus(&search("q=&category=computers&sort=price_asc").await),
        ["MS-1", "KB-1"]
    );
    assert_eq!(
        skus(&search("q=&min_price=4000&max_price=13000&sort=price_asc").await),
        ["SP-1", "HP-1", "KB-1"]
    );
    let hit = &search("q=mouse").await["hits"][0];
    assert_eq!(hit["price"], json!({"amount": 2999, "currency": "EUR"}));
    assert_eq!(hit["available"], 7);

    // An unpublished product leaves the results.
    let unpublished = s
        .ok(200, "/v1/products/SP-1/unpublish", Some(&admin), json!({}))
        .await
        .position();
    let r = s
        .read_after("/v1/search?q=speaker", None, &unpublished)
        .await;
    assert_eq!(r["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_filters_narrow_a_search_and_facets_count_every_match_not_the_page() {
    let s = Stack::start().await;
    let admin = s.admin().await;
    let shirts: &[(&str, &str, &str)] = &[
        ("SH-1", "red", "M"),
        ("SH-2", "red", "L"),
        ("SH-3", "red", "L"),
        ("SH-4", "blue", "M"),
        ("SH-5", "blue", "L"),
    ];
    for (sku, colour, size) in shirts {
        s.product_with(
            &admin,
            sku,
            &format!("Cotton Shirt {sku}"),
            "Acme",
            &["clothing", "shirts"],
            2_500,
            "A plain shirt",
            json!({"colour": colour, "size": size, "material": "cotton"}),
        )
        .await;
    }
    // Red too, but no shirt: outside the matches, so outside the counts.
    let last = s
        .product_with(
            &admin,
            "SO-1",
            "Wool Sock",
            "Acme",
            &["clothing", "socks"],
            500,
            "A warm sock",
            json!({"colour": "red", "fit type": "slim/regular"}),
        )
        .await;
    let search = |q: &str| {
        let path = format!("/v1/search?{q}");
        let last = last.clone();
        let s = &s;
        async move { s.read_after(&path, None, &last).await }
    };
    let sorted = |r: &Value| {
        let mut v: Vec<String> = skus(r).into_iter().map(str::to_owned).collect();
        v.sort();
        v
    };

    // Counts over all five shirts, while the page holds two.
    let r = search("q=shirt&limit=2").await;
    assert_eq!(r["total"], 5);
    assert_eq!(r["hits"].as_array().unwrap().len(), 2);
    assert_eq!(r["has_more"], true);
    assert_eq!(
        r["facets"]["attributes"],
        json!({"colour": {"blue": 2, "red": 3}, "material": {"cotton": 5}, "size": {"L": 3, "M": 2}})
    );

    // A filter narrows the matches and the counts; repeats of a key are alternatives,
    // different keys must all hold.
    let r = search("q=shirt&attr.colour=red&limit=2").await;
    assert_eq!(r["total"], 3);
    assert_eq!(
        r["facets"]["attributes"],
        json!({"colour": {"red": 3}, "material": {"cotton": 3}, "size": {"L": 2, "M": 1}})
    );
    let r = search("q=shirt&attr.colour=red&attr.colour=blue").await;
    assert_eq!(r["total"], 5);
    let r = search("q=shirt&attr.colour=red&attr.size=M").await;
    assert_eq!(sorted(&r), ["SH-1"]);
    let r = search("attr.colour=red").await;
    assert_eq!(sorted(&r), ["SH-1", "SH-2", "SH-3", "SO-1"]);
    assert_eq!(
        r["facets"]["attributes"]["fit type"],
        json!({"slim/regular": 1})
    );
    let r = search("attr.fit%20type=slim%2Fregular").await;
    assert_eq!(sorted(&r), ["SO-1"]);
    let r = search("q=shirt&attr.colour=green").await;
    assert_eq!(r["total"], 0);
    assert_eq!(r["facets"]["attributes"], json!({}));
    let r = search("q=shirt&attr.Colour=red").await;
    assert_eq!(r["total"], 0, "keys match exactly");

    // Bad filters are problems.
    let long_value = format!("attr.colour={}", "r".repeat(257));
    let long_key = format!("attr.{}=red", "k".repeat(65));
    for (query, code) in [
        ("attr.=red", "invalid_attribute_filter"),
        ("attr.colour=", "invalid_attribute_filter"),
        (long_value.as_str(), "invalid_attribute_filter"),
        (long_key.as_str(), "invalid_attribute_filter"),
        // (Control characters are refused before any route, as everywhere.)
        ("attr.colour=%01", "invalid_text"),
        ("colour=red", "invalid_query"),
    ] {
        let a = s.get(&format!("/v1/search?{query}"), None, &[]).await;
        assert_eq!(a.status, 400, "{query}: {}", a.body);
        assert_eq!(a.body["code"], code, "{query}");
        assert_eq!(a.headers["content-type"], "application/problem+json");
    }
}
