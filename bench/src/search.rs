//! `search`: the tantivy index of the query API beside PostgreSQL full-text search (a GIN
//! index on a weighted `tsvector`) with `pg_trgm` word similarity for typos, on the same
//! generated catalog and the same queries, in the same run.
//!
//! Four kinds of queries, as shoppers type them: words of a product name, the same with one
//! typo in a word of five letters or more, an unfinished last word (search-as-you-type), and
//! words with filters (category, price range, in stock). Each engine answers what the
//! storefront shows: the top 10 hits, the total, and facet counts by category and brand.
//! A query "finds" its product when a top-10 hit's name contains every intended word (for a
//! typo query, the word before the typo).

use std::sync::Arc;

use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

use mercato_cli::seed::catalog::DemoProduct;
use mercato_event_store::{LogFilter, LogReader, Position};
use mercato_projections::search::{SearchIndex, SearchRequest, SearchSort};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::catalog_data;
use crate::load::{closed_loop, Load};
use crate::report::{histogram, percentiles, ratio, record};
use crate::setup::BenchEnv;

/// Options of the `search` scenario.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Products in the catalog.
    #[arg(long, default_value_t = 100_000)]
    products: usize,
    /// Queries in the query set (a quarter of each kind).
    #[arg(long, default_value_t = 400)]
    queries: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Seconds each engine runs (after a one-second warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Words,
    Typo,
    Prefix,
    Filtered,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Words, Kind::Typo, Kind::Prefix, Kind::Filtered];

    fn label(self) -> &'static str {
        match self {
            Kind::Words => "words",
            Kind::Typo => "one typo",
            Kind::Prefix => "unfinished last word",
            Kind::Filtered => "words + filters",
        }
    }
}

/// One shopper's query and what it should find.
#[derive(Debug, Clone)]
struct Shopper {
    kind: Kind,
    q: String,
    /// Lowercase words a found product's name contains.
    intended: Vec<String>,
    category: Option<Vec<String>>,
    min_price: Option<u64>,
    max_price: Option<u64>,
    in_stock: bool,
}

impl Shopper {
    fn request(&self) -> SearchRequest {
        SearchRequest {
            q: self.q.clone(),
            category: self.category.clone(),
            brand: None,
            attributes: Default::default(),
            min_price: self.min_price,
            max_price: self.max_price,
            in_stock: self.in_stock,
            sort: SearchSort::Relevance,
            limit: 10,
            offset: 0,
        }
    }

    fn found(&self, names: &[String]) -> bool {
        names.iter().any(|name| {
            let name = name.to_lowercase();
            self.intended.iter().all(|w| name.contains(w.as_str()))
        })
    }

    fn url(&self, base: &str) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("q", &self.q).append_pair("limit", "10");
        if let Some(c) = &self.category {
            query.append_pair("category", &c.join("/"));
        }
        if let Some(p) = self.min_price {
            query.append_pair("min_price", &p.to_string());
        }
        if let Some(p) = self.max_price {
            query.append_pair("max_price", &p.to_string());
        }
        if self.in_stock {
            query.append_pair("in_stock", "true");
        }
        format!("{base}/v1/search?{}", query.finish())
    }
}

/// Alphabetic words of five letters or more in `name`.
fn long_words(name: &str) -> Vec<&str> {
    name.split_whitespace()
        .filter(|w| w.len() >= 5 && w.chars().all(|c| c.is_ascii_alphabetic()))
        .collect()
}

/// `word` with one edit (deletion, substitution, swap of neighbours or insertion) after its
/// first letter, as shoppers mistype.
fn typo(word: &str, rng: &mut StdRng) -> String {
    let chars: Vec<char> = word.chars().collect();
    let at = rng.random_range(1..chars.len() - 1);
    let other = loop {
        let c = (b'a' + rng.random_range(0..26u8)) as char;
        if c != chars[at].to_ascii_lowercase() {
            break c;
        }
    };
    let mut out = chars.clone();
    match rng.random_range(0..4) {
        0 => {
            out.remove(at);
        }
        1 => out[at] = other,
        2 => out.swap(at, at + 1),
        _ => out.insert(at, other),
    }
    let out: String = out.into_iter().collect();
    if out.eq_ignore_ascii_case(word) {
        // A swap of two equal letters changes nothing: delete instead.
        let mut chars = chars;
        chars.remove(at);
        return chars.into_iter().collect();
    }
    out
}

fn shoppers(products: &[DemoProduct], n: usize) -> Vec<Shopper> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let kind = Kind::ALL[out.len() % 4];
        let p = products.choose(&mut rng).expect("a catalog");
        let words: Vec<&str> = long_words(&p.name);
        let Some(word) = words.choose(&mut rng).copied() else {
            continue;
        };
        // The brand (first word) narrows like a shopper's second word does.
        let brand = p.brand.as_str();
        let second = if word == brand { None } else { Some(brand) };
        let mut intended: Vec<String> = vec![word.to_lowercase()];
        intended.extend(second.map(str::to_lowercase));
        let with = |w: &str| match second {
            Some(b) => format!("{b} {w}"),
            None => w.to_owned(),
        };
        let mut shopper = Shopper {
            kind,
            q: with(word),
            intended,
            category: None,
            min_price: None,
            max_price: None,
            in_stock: false,
        };
        match kind {
            Kind::Words => {}
            Kind::Typo => shopper.q = with(&typo(word, &mut rng)),
            Kind::Prefix => {
                let keep = rng.random_range(3..word.len());
                shopper.q = with(&word[..keep]);
            }
            Kind::Filtered => {
                shopper.category = Some(p.category[..1].to_vec());
                let price = u64::try_from(p.price_cents).unwrap_or(0);
                shopper.min_price = Some(price / 2);
                shopper.max_price = Some(price * 2);
                shopper.in_stock = true;
                let i: usize = p.sku[4..].parse::<usize>().unwrap_or(1) - 1;
                if catalog_data::stock_of(i).is_none() {
                    // This product is out of stock: it cannot be found with `in_stock`.
                    continue;
                }
            }
        }
        out.push(shopper);
    }
    out
}

/// The PostgreSQL full-text search table, filled with the same catalog.
async fn postgres_table(pool: &PgPool, products: &[DemoProduct]) -> anyhow::Result<()> {
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        .execute(pool)
        .await?;
    sqlx::query(
        "CREATE TABLE bench_search (sku text PRIMARY KEY, name text NOT NULL, description text NOT NULL, \
           brand text NOT NULL, category text[] NOT NULL, category_words text NOT NULL, price bigint NOT NULL, \
           available bigint NOT NULL, \
           doc tsvector GENERATED ALWAYS AS ( \
             setweight(to_tsvector('english', name), 'A') || setweight(to_tsvector('english', brand), 'A') || \
             setweight(to_tsvector('english', category_words), 'B') || \
             setweight(to_tsvector('english', description), 'C')) STORED)",
    )
    .execute(pool)
    .await?;
    for (c, chunk) in products.chunks(5_000).enumerate() {
        let mut skus = Vec::new();
        let mut names = Vec::new();
        let mut descriptions = Vec::new();
        let mut brands = Vec::new();
        let mut categories = Vec::new();
        let mut prices = Vec::new();
        let mut available = Vec::new();
        for (k, p) in chunk.iter().enumerate() {
            skus.push(p.sku.as_str());
            names.push(p.name.as_str());
            descriptions.push(p.description.as_str());
            brands.push(p.brand.as_str());
            categories.push(p.category.join("/"));
            prices.push(p.price_cents);
            let units = catalog_data::stock_of(c * 5_000 + k).map_or(0, |(a, b)| a + b);
            available.push(i64::try_from(units)?);
        }
        sqlx::query(
            "INSERT INTO bench_search (sku, name, description, brand, category, category_words, price, available) \
             SELECT s, n, d, b, string_to_array(c, '/'), replace(c, '/', ' '), p, a \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[]) \
               AS r(s, n, d, b, c, p, a)",
        )
        .bind(&skus)
        .bind(&names)
        .bind(&descriptions)
        .bind(&brands)
        .bind(&categories)
        .bind(&prices)
        .bind(&available)
        .execute(pool)
        .await?;
    }
    sqlx::query("CREATE INDEX bench_search_doc ON bench_search USING gin (doc)")
        .execute(pool)
        .await?;
    sqlx::query(
        "CREATE INDEX bench_search_name_trgm ON bench_search USING gin (name gin_trgm_ops)",
    )
    .execute(pool)
    .await?;
    sqlx::query("VACUUM ANALYZE bench_search")
        .execute(pool)
        .await?;
    Ok(())
}

/// `to_tsquery` text: every word, the last one also as a prefix (search-as-you-type).
fn tsquery(q: &str) -> String {
    let words: Vec<String> = q
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    match words.split_last() {
        None => String::new(),
        Some((last, rest)) => {
            let mut parts: Vec<String> = rest.to_vec();
            parts.push(format!("{last}:*"));
            parts.join(" & ")
        }
    }
}

/// Top 10, total and facets in one statement: full-text match, or `pg_trgm` word similarity
/// of the query to the name (which is what finds typos), with the same filters.
const POSTGRES_SEARCH: &str = "\
WITH q AS (SELECT to_tsquery('english', $1) AS tsq), \
m AS ( \
  SELECT s.sku, s.name, s.brand, s.category, \
         ts_rank(s.doc, q.tsq) + word_similarity($2, s.name) AS score \
  FROM bench_search s, q \
  WHERE (s.doc @@ q.tsq OR $2 <% s.name) \
    AND ($3::text[] IS NULL OR s.category[1:cardinality($3::text[])] = $3::text[]) \
    AND ($4::bigint IS NULL OR s.price >= $4) \
    AND ($5::bigint IS NULL OR s.price <= $5) \
    AND (NOT $6 OR s.available > 0)) \
SELECT (SELECT count(*) FROM m) AS total, \
  (SELECT coalesce(array_agg(name ORDER BY score DESC), '{}') FROM \
     (SELECT name, score FROM m ORDER BY score DESC LIMIT 10) t) AS names, \
  (SELECT coalesce(json_object_agg(brand, n), '{}') FROM (SELECT brand, count(*) AS n FROM m GROUP BY brand) b) AS brands, \
  (SELECT coalesce(json_object_agg(c, n), '{}') FROM (SELECT category[1] AS c, count(*) AS n FROM m GROUP BY 1) c) AS categories";

async fn postgres_search(pool: &PgPool, s: &Shopper) -> anyhow::Result<Vec<String>> {
    let (_total, names, _brands, _categories): (
        i64,
        Vec<String>,
        serde_json::Value,
        serde_json::Value,
    ) = sqlx::query_as(POSTGRES_SEARCH)
        .bind(tsquery(&s.q))
        .bind(&s.q)
        .bind(s.category.as_ref())
        .bind(s.min_price.map(|p| p as i64))
        .bind(s.max_price.map(|p| p as i64))
        .bind(s.in_stock)
        .fetch_one(pool)
        .await?;
    Ok(names)
}

fn tantivy_search(index: &SearchIndex, s: &Shopper) -> anyhow::Result<Vec<String>> {
    let response = index.search_blocking(&s.request())?;
    Ok(response.hits.into_iter().map(|h| h.name).collect())
}

/// Per kind of query, run one at a time: how many found their product, and the latencies.
struct PerKind {
    found: [(usize, usize); 4],
    latency: [Histogram<u64>; 4],
}

async fn recall(
    shoppers: &[Shopper],
    mut answer: impl AsyncFnMut(&Shopper) -> anyhow::Result<Vec<String>>,
) -> anyhow::Result<PerKind> {
    let mut out = PerKind {
        found: [(0usize, 0usize); 4],
        latency: [histogram(), histogram(), histogram(), histogram()],
    };
    for s in shoppers {
        let started = Instant::now();
        let names = answer(s).await?;
        let kind = Kind::ALL.iter().position(|k| *k == s.kind).unwrap_or(0);
        record(&mut out.latency[kind], started.elapsed());
        let slot = &mut out.found[kind];
        slot.1 += 1;
        if s.found(&names) {
            slot.0 += 1;
        }
    }
    Ok(out)
}

pub async fn run(env: &BenchEnv, args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.products > 0 && args.queries >= 4 && args.clients > 0,
        "products, queries (4 or more) and clients must be positive"
    );
    let products = mercato_cli::seed::catalog::products(args.products, 42);
    let started = Instant::now();
    let events = catalog_data::load(env, &products).await?;
    eprintln!(
        "loaded {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The index, built by the search projection's own apply from the log.
    let index_dir = std::env::temp_dir().join(format!("mercato-bench-search-{}", Uuid::new_v4()));
    let started = Instant::now();
    {
        let index = SearchIndex::open(&index_dir)?;
        let reader = LogReader::new(env.pool.clone());
        let mut after = Position::START;
        loop {
            let batch = reader.read(after, &LogFilter::default(), 20_000).await?;
            let Some(last) = batch.last().map(|e| e.position) else {
                break;
            };
            index.apply(batch).await?;
            after = last;
        }
        anyhow::ensure!(
            index.published_count() as usize == args.products,
            "{} of {} products indexed",
            index.published_count(),
            args.products
        );
    }
    let index_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    postgres_table(&env.pool, &products).await?;
    let table_secs = started.elapsed().as_secs_f64();
    eprintln!("indexed in {index_secs:.1} s (tantivy) and {table_secs:.1} s (PostgreSQL)");

    // The query API serves the same index directory.
    let shutdown = CancellationToken::new();
    let api = env.query_api(&index_dir).await?;
    let index = api.search_index();
    let base = format!("http://127.0.0.1:{}", api.port());
    let server = tokio::spawn(api.run(shutdown.clone()));

    let queries = Arc::new(shoppers(&products, args.queries));
    let ours_found = recall(&queries, async |s| {
        let (index, s) = (index.clone(), s.clone());
        tokio::task::spawn_blocking(move || tantivy_search(&index, &s)).await?
    })
    .await?;
    let pg_found = recall(&queries, async |s| postgres_search(&env.pool, s).await).await?;

    let warmup = Duration::from_secs(1);
    let secs = Duration::from_secs(args.seconds);
    let (pool, q) = (env.pool.clone(), queries.clone());
    let postgres = closed_loop(args.clients, warmup, secs, move |c, n| {
        let (pool, q) = (pool.clone(), q.clone());
        async move {
            postgres_search(&pool, &q[(c * 7919 + n as usize) % q.len()]).await?;
            Ok(())
        }
    })
    .await?;
    let (ix, q) = (index.clone(), queries.clone());
    let tantivy = closed_loop(args.clients, warmup, secs, move |c, n| {
        let (ix, q) = (ix.clone(), q.clone());
        async move {
            let s = q[(c * 7919 + n as usize) % q.len()].clone();
            tokio::task::spawn_blocking(move || tantivy_search(&ix, &s)).await??;
            Ok(())
        }
    })
    .await?;
    let http = reqwest::Client::new();
    let (h, q, b) = (http.clone(), queries.clone(), Arc::new(base));
    let over_http = closed_loop(args.clients, warmup, secs, move |c, n| {
        let url = q[(c * 7919 + n as usize) % q.len()].url(&b);
        let h = h.clone();
        async move {
            let response = h.get(&url).send().await?;
            let status = response.status();
            let _ = response.bytes().await?;
            anyhow::ensure!(status.is_success(), "GET {url}: {status}");
            Ok(())
        }
    })
    .await?;

    shutdown.cancel();
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&index_dir);
    sqlx::query("DROP TABLE bench_search")
        .execute(&env.pool)
        .await?;

    println!(
        "## search: {} products, {} queries ({} of each kind), {} clients, {} s per engine\n",
        args.products,
        queries.len(),
        queries.len() / 4,
        args.clients,
        args.seconds
    );
    println!("Index build: tantivy {index_secs:.1} s (from {events} log events), PostgreSQL table with GIN indexes {table_secs:.1} s.\n");
    println!("| engine | queries/s | p50 ms | p99 ms | speed ratio to PostgreSQL |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, l: &Load| {
        println!(
            "| {name} | {} | {} |",
            l.cells(),
            ratio(l.per_second(), postgres.per_second())
        )
    };
    row(
        "PostgreSQL full-text (GIN tsvector) + pg_trgm word similarity (baseline)",
        &postgres,
    );
    row(
        "tantivy index (`SearchIndex::search`, in process)",
        &tantivy,
    );
    row("query API `GET /v1/search` (HTTP, same index)", &over_http);
    println!();
    println!("Each query once, one at a time: how many find their product in the top 10, and the latency by kind.\n");
    println!("| query kind | PostgreSQL found | tantivy found | PostgreSQL p50 / p99 ms | tantivy p50 / p99 ms |");
    println!("|---|---|---|---|---|");
    for (i, kind) in Kind::ALL.iter().enumerate() {
        let (p, t) = (pg_found.found[i], ours_found.found[i]);
        let (p50, p99, _) = percentiles(&pg_found.latency[i]);
        let (t50, t99, _) = percentiles(&ours_found.latency[i]);
        println!(
            "| {} | {} of {} ({:.0}%) | {} of {} ({:.0}%) | {p50:.2} / {p99:.2} | {t50:.2} / {t99:.2} |",
            kind.label(),
            p.0,
            p.1,
            100.0 * p.0 as f64 / p.1.max(1) as f64,
            t.0,
            t.1,
            100.0 * t.0 as f64 / t.1.max(1) as f64
        );
    }
    println!();
    Ok(())
}
