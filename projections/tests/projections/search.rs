//! The search index on a fixture catalog: typos, prefixes, facets, filters, sorting, and
//! resuming from its commit payload.

use mercato_event_store::Position;
use mercato_projections::search::{SearchIndex, SearchRequest, SearchSort};
use serde_json::json;

use crate::support::Shop;

async fn fixture(shop: &Shop) {
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
    for (sku, name, brand, cat, price, desc) in items {
        shop.product(sku, name, brand, cat, *price, desc).await;
    }
    shop.receive("HP-1", "berlin", 3).await;
    shop.receive("KB-1", "berlin", 1).await;
    shop.receive("MS-1", "paris", 7).await;
}

fn req(q: &str) -> SearchRequest {
    SearchRequest {
        q: q.into(),
        limit: 20,
        ..SearchRequest::default()
    }
}

fn skus(index: &SearchIndex, r: SearchRequest) -> Vec<String> {
    index
        .search_blocking(&r)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.sku)
        .collect()
}

#[tokio::test]
async fn shoppers_find_products_with_typos_prefixes_facets_and_filters() {
    let shop = Shop::new().await;
    fixture(&shop).await;
    let dir = std::env::temp_dir().join(format!("mercato-search-{}", uuid::Uuid::new_v4()));
    let index = SearchIndex::open(&dir).unwrap();
    let events = shop.settled_log(Position::START).await;
    index.apply(events).await.unwrap();

    // One typo in a 8-letter word, two in a 10-letter one, a swap.
    let mut w = skus(&index, req("wireles"));
    w.sort();
    assert_eq!(w, vec!["HP-1", "MS-1"]);
    let mut found = skus(&index, req("haedphonse"));
    found.sort();
    assert_eq!(found, vec!["HP-1", "HP-2"]);
    assert!(skus(&index, req("keybaord")).contains(&"KB-1".to_string()));
    // Short words must match exactly.
    assert!(skus(&index, req("mose ")).is_empty());
    // Search-as-you-type: the last word is a prefix.
    assert_eq!(skus(&index, req("mechan")), vec!["KB-1"]);
    assert_eq!(skus(&index, req("wireless mo")), vec!["MS-1"]);
    // Exact words rank first.
    assert_eq!(skus(&index, req("speaker"))[0], "SP-1");

    // Facets and filters.
    let all = index.search_blocking(&req("")).unwrap();
    assert_eq!(all.total, 5);
    assert_eq!(all.facets.category.get("audio"), Some(&3));
    assert_eq!(all.facets.category.get("computers"), Some(&2));
    assert_eq!(all.facets.brand.get("Acme"), Some(&3));
    let audio = index
        .search_blocking(&SearchRequest {
            category: Some(vec!["audio".into()]),
            ..req("")
        })
        .unwrap();
    assert_eq!(audio.total, 3);
    assert_eq!(audio.facets.category.get("audio/headphones"), Some(&2));
    let mut acme = skus(
        &index,
        SearchRequest {
            brand: Some("Acme".into()),
            in_stock: true,
            ..req("")
        },
    );
    acme.sort();
    assert_eq!(acme, vec!["KB-1", "MS-1"]);
    assert_eq!(
        skus(
            &index,
            SearchRequest {
                min_price: Some(5_000),
                max_price: Some(13_000),
                sort: SearchSort::PriceAsc,
                ..req("")
            }
        ),
        vec!["HP-1", "KB-1"]
    );
    assert_eq!(
        skus(
            &index,
            SearchRequest {
                sort: SearchSort::PriceDesc,
                limit: 2,
                ..req("")
            }
        ),
        vec!["HP-2", "KB-1"]
    );

    // Highlights mark the matched word, typo or not.
    let hit = &index.search_blocking(&req("wireles mouse")).unwrap().hits[0];
    assert!(
        hit.highlights.name.contains("<b>Wireless</b>"),
        "{:?}",
        hit.highlights
    );

    // Unpublished products disappear.
    shop.product_cmd("MS-1", json!("UnpublishProduct")).await;
    let after = index.position().0;
    let more = shop.settled_log(after).await;
    index.apply(more).await.unwrap();
    let left = index.search_blocking(&req("mouse")).unwrap();
    assert!(left.hits.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_index_resumes_from_its_commit_payload() {
    let shop = Shop::new().await;
    fixture(&shop).await;
    let dir = std::env::temp_dir().join(format!("mercato-search-{}", uuid::Uuid::new_v4()));
    let events = shop.settled_log(Position::START).await;
    let (first, rest) = events.split_at(events.len() / 2);
    {
        let index = SearchIndex::open(&dir).unwrap();
        assert!(index.is_fresh());
        index.apply(first.to_vec()).await.unwrap();
        assert_eq!(
            index.committed_position().unwrap(),
            Some(first.last().unwrap().position)
        );
    }
    let index = SearchIndex::open(&dir).unwrap();
    assert!(!index.is_fresh());
    assert_eq!(index.position().0, first.last().unwrap().position);
    // Redelivery of everything (as after a crash before the ack) changes nothing twice.
    index.apply(events.clone()).await.unwrap();
    index.apply(rest.to_vec()).await.unwrap();
    assert_eq!(index.published_count(), 5);
    let hp = index.search_blocking(&req("wireless headphones")).unwrap();
    assert_eq!(hp.hits[0].sku, "HP-1");
    assert_eq!(hp.hits[0].available, 3);
    assert_eq!(
        index.committed_position().unwrap(),
        Some(events.last().unwrap().position)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_gap_in_the_delivered_events_is_filled_from_the_log() {
    let shop = Shop::new().await;
    fixture(&shop).await;
    let events = shop.settled_log(Position::START).await;
    // HP-1's creation (and everything but its last product event) and KB-1's stock receipt
    // were not delivered (waiting for a redelivery after a failure or a crash).
    let last_hp1 = events
        .iter()
        .filter(|e| e.aggregate_type == "Product" && e.aggregate_id == "HP-1")
        .map(|e| e.sequence)
        .max()
        .unwrap();
    let missing = |e: &mercato_event_store::RecordedEvent| {
        (e.aggregate_type == "Product" && e.aggregate_id == "HP-1" && e.sequence < last_hp1)
            || (e.aggregate_type == "Stock" && e.aggregate_id == "KB-1")
    };
    let delivered: Vec<_> = events.iter().filter(|e| !missing(e)).cloned().collect();
    let withheld: Vec<_> = events.iter().filter(|e| missing(e)).cloned().collect();
    assert!(!withheld.is_empty());

    // Without the log, the batch fails (and would be retried until dead-lettered).
    let dir = std::env::temp_dir().join(format!("mercato-search-{}", uuid::Uuid::new_v4()));
    let plain = SearchIndex::open(&dir).unwrap();
    assert!(plain.apply(delivered.clone()).await.is_err());
    drop(plain);
    let _ = std::fs::remove_dir_all(&dir);

    let dir = std::env::temp_dir().join(format!("mercato-search-{}", uuid::Uuid::new_v4()));
    let index = SearchIndex::open(&dir).unwrap();
    index
        .apply_with_log(&shop.db.pool, delivered)
        .await
        .unwrap();
    let head = events.last().unwrap().position;
    assert_eq!(index.position().0, head);
    assert_eq!(index.committed_position().unwrap(), Some(head));
    assert_eq!(index.published_count(), 5);
    let hp = index.search_blocking(&req("wireless headphones")).unwrap();
    assert_eq!(hp.hits[0].sku, "HP-1");
    assert_eq!(hp.hits[0].available, 3);
    let kb = index.search_blocking(&req("keyboard")).unwrap();
    assert_eq!(kb.hits[0].available, 1);

    // The withheld events arriving late change nothing.
    index.apply_with_log(&shop.db.pool, withheld).await.unwrap();
    assert_eq!(index.position().0, head);
    assert_eq!(index.published_count(), 5);
    let kb = index.search_blocking(&req("keyboard")).unwrap();
    assert_eq!(kb.hits[0].available, 1);

    // Events that reach the index after a restart resume from the committed watermark,
    // even when the acknowledged ones in between are not redelivered.
    shop.receive("KB-1", "berlin", 4).await;
    shop.product(
        "CAM-1",
        "Action Camera",
        "Sonix",
        &["audio", "cameras"],
        19_999,
        "4K camera",
    )
    .await;
    let later = shop.settled_log(head).await;
    drop(index);
    let index = SearchIndex::open(&dir).unwrap();
    index
        .apply_with_log(&shop.db.pool, later[later.len() - 1..].to_vec())
        .await
        .unwrap();
    assert_eq!(index.position().0, later.last().unwrap().position);
    let kb = index.search_blocking(&req("keyboard")).unwrap();
    assert_eq!(kb.hits[0].available, 5);
    assert_eq!(index.published_count(), 6);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_typo_in_a_name_word_ranks_products_named_so_first() {
    let shop = Shop::new().await;
    // Created first, so on a tie of scores it would come first.
    shop.product(
        "EB-1",
        "Sport Earbuds",
        "Pulse",
        &["audio", "headphones"],
        3_999,
        "In-ear buds for running",
    )
    .await;
    shop.product(
        "HP-1",
        "Studio Headphones",
        "Acme",
        &["audio", "headphones"],
        14_999,
        "Closed back monitoring",
    )
    .await;
    let dir = std::env::temp_dir().join(format!("mercato-search-{}", uuid::Uuid::new_v4()));
    let index = SearchIndex::open(&dir).unwrap();
    index
        .apply(shop.settled_log(Position::START).await)
        .await
        .unwrap();
    // Both are found (the earbuds by their category), the headphones first: as a finished
    // word, as one being typed, and as a prefix being typed.
    for q in ["headphnes ", "headphnes", "headpho"] {
        assert_eq!(skus(&index, req(q)), vec!["HP-1", "EB-1"], "query {q:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The schema of `SEARCH_VERSION` 3 (before attributes were facets), as that release wrote it.
fn schema_v3() -> tantivy::schema::Schema {
    use tantivy::schema::{FacetOptions, NumericOptions, TextOptions, STORED, STRING, TEXT};
    let mut b = tantivy::schema::Schema::builder();
    let num = NumericOptions::default()
        .set_indexed()
        .set_fast()
        .set_stored();
    b.add_text_field("sku", STRING | STORED);
    b.add_text_field("name", TEXT | STORED);
    b.add_text_field("description", TEXT | STORED);
    b.add_text_field("brand_text", TEXT);
    b.add_facet_field("brand", FacetOptions::default());
    b.add_facet_field("category", FacetOptions::default());
    b.add_text_field("category_text", TEXT);
    b.add_text_field("attributes", TEXT);
    b.add_text_field("tolerant", TEXT);
    b.add_u64_field("price", num.clone());
    b.add_u64_field("available", num);
    b.add_text_field("status", STRING);
    b.add_text_field("doc", TextOptions::default().set_stored());
    b.build()
}

#[tokio::test]
async fn an_index_of_the_previous_schema_is_rebuilt_with_attribute_facets() {
    let shop = Shop::new().await;
    fixture(&shop).await;
    let events = shop.settled_log(Position::START).await;
    let dir = std::env::temp_dir().join(format!("mercato-search-{}", uuid::Uuid::new_v4()));
    {
        // What a version 3 replica left behind: a committed index without attribute facets.
        std::fs::create_dir_all(&dir).unwrap();
        let index = tantivy::Index::create_in_dir(&dir, schema_v3()).unwrap();
        let mut writer: tantivy::IndexWriter =
            index.writer_with_num_threads(1, 15_000_000).unwrap();
        let payload = json!({"version": 3, "position": events.last().unwrap().position,
                             "last_event_id": null});
        let mut prepared = writer.prepare_commit().unwrap();
        prepared.set_payload(&payload.to_string());
        prepared.commit().unwrap();
    }
    let index = SearchIndex::open(&dir).unwrap();
    assert!(
        index.is_fresh(),
        "an index of another schema starts over (its consumer replays the stream)"
    );
    assert_eq!(index.position().0, Position::START);
    index.apply(events).await.unwrap();
    let all = index.search_blocking(&req("")).unwrap();
    assert_eq!(all.total, 5);
    assert_eq!(
        all.facets.attributes["colour"],
        [("black".to_owned(), 5)].into_iter().collect()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
