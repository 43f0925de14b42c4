//! Reading the index: typo-tolerant, prefix-aware queries with filters, facets, sorting and
//! highlights.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, FacetCollector, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, RangeQuery,
    TermQuery,
};
use tantivy::schema::{Facet, Field, IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Order, Searcher, TantivyDocument, Term};

use super::allowed_typos;
use super::index::{Fields, ProductDoc, SearchIndex};
use crate::error::ProjectionError;

/// How hits are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchSort {
    /// Best match first.
    #[default]
    Relevance,
    /// Cheapest first.
    PriceAsc,
    /// Most expensive first.
    PriceDesc,
}

/// A search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchRequest {
    /// What the shopper typed (may be empty: browse with filters).
    pub q: String,
    /// Category path (`a/b`), this category and everything below it.
    pub category: Option<Vec<String>>,
    /// Exact brand.
    pub brand: Option<String>,
    /// Lowest price in minor units.
    pub min_price: Option<u64>,
    /// Highest price in minor units.
    pub max_price: Option<u64>,
    /// Only products with units available.
    pub in_stock: bool,
    /// Attribute filters: a product matches when, for every key, its value is one of the
    /// key's values (AND across keys, OR within one).
    pub attributes: BTreeMap<String, Vec<String>>,
    /// Ordering.
    pub sort: SearchSort,
    /// Hits per page.
    pub limit: usize,
    /// Hits to skip.
    pub offset: usize,
}

/// One hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// SKU.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Brand.
    pub brand: String,
    /// Category path.
    pub category: Vec<String>,
    /// Price in minor units.
    pub price: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// Units available over all warehouses.
    pub available: u64,
    /// Relevance score (0 when sorted by price).
    pub score: f32,
    /// Matched words wrapped in `<b>` (HTML-escaped otherwise).
    pub highlights: Highlights,
}

/// Highlighted fragments of a hit.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Highlights {
    /// Of the name.
    pub name: String,
    /// Of the description.
    pub description: String,
}

/// Facet counts (over every match, filters applied).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facets {
    /// Sub-categories of the selected category (top-level ones without a filter).
    pub category: BTreeMap<String, u64>,
    /// Brands.
    pub brand: BTreeMap<String, u64>,
    /// Per attribute key, its values (the [`ATTRIBUTE_FACET_VALUES`] most frequent).
    pub attributes: BTreeMap<String, BTreeMap<String, u64>>,
}

/// The most values of one attribute key whose counts a search returns (the most frequent).
pub const ATTRIBUTE_FACET_VALUES: usize = 50;

/// Hits, facets and the total number of matches.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SearchResponse {
    /// The requested page.
    pub hits: Vec<SearchHit>,
    /// Facet counts.
    pub facets: Facets,
    /// Matches in all.
    pub total: u64,
}

impl SearchIndex {
    /// Runs `request` (off the async runtime).
    pub async fn search(&self, request: SearchRequest) -> Result<SearchResponse, ProjectionError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.search_blocking(&request))
            .await
            .map_err(|e| ProjectionError::Payload(format!("search task failed: {e}")))?
    }

    /// Runs `request` on the calling thread.
    pub fn search_blocking(
        &self,
        request: &SearchRequest,
    ) -> Result<SearchResponse, ProjectionError> {
        let f = self.inner.fields;
        let searcher = self.inner.reader.searcher();
        let words = self.words(&request.q)?;
        let query = build_query(&f, &words, request);
        let limit = request.limit.max(1);

        let mut category_facets = FacetCollector::for_field("category");
        let category_root = match &request.category {
            Some(path) if !path.is_empty() => Facet::from_path(path.iter()),
            _ => Facet::root(),
        };
        category_facets.add_facet(category_root.clone());
        let mut brand_facets = FacetCollector::for_field("brand");
        brand_facets.add_facet(Facet::root());
        // A facet collector counts the direct children of the facets it is given, so each
        // key's values are counted under `/<key>`; the keys come from the index itself.
        let keys = attribute_keys(&searcher, &f)?;
        let mut attribute_facets = FacetCollector::for_field("attribute");
        for key in &keys {
            attribute_facets.add_facet(Facet::from_path([key]));
        }
        let facet_collectors = (category_facets, brand_facets, attribute_facets);

        let top = TopDocs::with_limit(limit).and_offset(request.offset);
        let (hits, total, (categories, brands, attributes)): (Vec<(f32, DocAddress)>, usize, _) =
            match request.sort {
                SearchSort::Relevance => {
                    searcher.search(&query, &(top.order_by_score(), Count, facet_collectors))?
                }
                SearchSort::PriceAsc | SearchSort::PriceDesc => {
                    let order = if request.sort == SearchSort::PriceAsc {
                        Order::Asc
                    } else {
                        Order::Desc
                    };
                    let (docs, total, facets) = searcher.search(
                        &query,
                        &(
                            top.order_by_fast_field::<u64>("price", order),
                            Count,
                            facet_collectors,
                        ),
                    )?;
                    (
                        docs.into_iter().map(|(_, a)| (0.0, a)).collect(),
                        total,
                        facets,
                    )
                }
            };

        let mut facets = Facets::default();
        for (facet, count) in categories.get(category_root) {
            facets.category.insert(facet.to_path().join("/"), count);
        }
        for (facet, count) in brands.get(Facet::root()) {
            facets.brand.insert(facet.to_path().join("/"), count);
        }
        for key in &keys {
            let values: BTreeMap<String, u64> = attributes
                .top_k(Facet::from_path([key]), ATTRIBUTE_FACET_VALUES)
                .into_iter()
                .filter_map(|(facet, count)| {
                    facet.to_path().get(1).map(|v| ((*v).to_owned(), count))
                })
                .collect();
            // A key only documents outside the matches have (or only deleted ones) is left out.
            if !values.is_empty() {
                facets.attributes.insert(key.clone(), values);
            }
        }

        let docs: Vec<(f32, ProductDoc, TantivyDocument)> = hits
            .into_iter()
            .map(|(score, address)| {
                let stored: TantivyDocument = searcher.doc(address)?;
                let json = stored
                    .get_first(f.doc)
                    .and_then(|v| v.as_str())
                    .unwrap_or("{}");
                let doc: ProductDoc = serde_json::from_str(json)
                    .map_err(|e| ProjectionError::Payload(e.to_string()))?;
                Ok((score, doc, stored))
            })
            .collect::<Result<_, ProjectionError>>()?;
        let highlighter = Highlighter::new(&searcher, &f, &words, &docs)?;
        let hits = docs
            .into_iter()
            .map(|(score, doc, stored)| SearchHit {
                highlights: highlighter.highlight(&stored),
                sku: doc.sku,
                name: doc.name,
                brand: doc.brand,
                category: doc.category,
                price: doc.price,
                currency: doc.currency,
                available: doc.available,
                score,
            })
            .collect();
        Ok(SearchResponse {
            hits,
            facets,
            total: total as u64,
        })
    }

    /// The query's words as the index tokenizes text (lowercased, split on punctuation).
    fn words(&self, q: &str) -> Result<Vec<String>, ProjectionError> {
        let mut analyzer = self
            .inner
            .index
            .tokenizer_for_field(self.inner.fields.name)?;
        let mut stream = analyzer.token_stream(q);
        let mut words = Vec::new();
        while stream.advance() {
            words.push(stream.token().text.clone());
        }
        Ok(words)
    }
}

/// Every word must match somewhere (name, brand, category, attributes, description): exactly
/// in one of those fields (boosted by the field's weight), or within its allowed typos, or
/// (the last word, unless the query ends with a space) as a prefix, in the short texts.
///
/// Typos and prefixes are matched on `tolerant` (name, brand, category and attributes in one
/// field) and again on the name, to rank name matches first; not on the description: each
/// costs a Levenshtein automaton run over a field's terms, and the description's vocabulary
/// is large, so matching them per field cost most of a query's time (the `search`
/// benchmark) for words shoppers take from names and brands.
fn build_query(f: &Fields, words: &[String], request: &SearchRequest) -> BooleanQuery {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let prefix_last = !request.q.ends_with(char::is_whitespace);
    for (i, word) in words.iter().enumerate() {
        let typos = allowed_typos(word.chars().count());
        let is_last = i + 1 == words.len();
        let mut per_word: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (field, weight) in [
            (f.name, 6.0),
            (f.brand_text, 4.0),
            (f.category_text, 3.0),
            (f.attributes, 2.0),
            (f.description, 1.0),
        ] {
            per_word.push((
                Occur::Should,
                Box::new(BoostQuery::new(
                    Box::new(TermQuery::new(
                        Term::from_field_text(field, word),
                        IndexRecordOption::WithFreqs,
                    )),
                    weight,
                )),
            ));
        }
        // A fuzzy match scores the same whichever field it is in; the same automaton on the
        // name alone ranks products named so above those that only share a category, brand
        // or attribute (a shopper typing "headphnes" wants headphones before earbuds).
        let fuzzy =
            |field: Field, weight: f32, typos: u8, prefix: bool| -> (Occur, Box<dyn Query>) {
                let term = Term::from_field_text(field, word);
                let query = if prefix {
                    FuzzyTermQuery::new_prefix(term, typos, true)
                } else {
                    FuzzyTermQuery::new(term, typos, true)
                };
                (
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(query), weight)),
                )
            };
        // (On the name, a prefix is matched without typos: a prefix automaton with typos
        // matches much of the dictionary, and doubling it put p99 over 10 ms.)
        if typos > 0 {
            per_word.push(fuzzy(f.tolerant, 1.5, typos, false));
            per_word.push(fuzzy(f.name, 1.0, typos, false));
        }
        if is_last && prefix_last {
            per_word.push(fuzzy(f.tolerant, 1.5, typos, true));
            per_word.push(fuzzy(f.name, 1.0, 0, true));
        }
        clauses.push((Occur::Must, Box::new(BooleanQuery::new(per_word))));
    }
    if clauses.is_empty() {
        clauses.push((Occur::Must, Box::new(AllQuery)));
    }
    let mut filter = |q: Box<dyn Query>| {
        clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0))));
    };
    filter(Box::new(TermQuery::new(
        Term::from_field_text(f.status, "published"),
        IndexRecordOption::Basic,
    )));
    if let Some(path) = request.category.as_ref().filter(|p| !p.is_empty()) {
        filter(Box::new(TermQuery::new(
            Term::from_facet(f.category, &Facet::from_path(path.iter())),
            IndexRecordOption::Basic,
        )));
    }
    if let Some(brand) = &request.brand {
        filter(Box::new(TermQuery::new(
            Term::from_facet(f.brand, &Facet::from_path([brand.as_str()])),
            IndexRecordOption::Basic,
        )));
    }
    for (key, values) in &request.attributes {
        let any_of: Vec<(Occur, Box<dyn Query>)> = values
            .iter()
            .map(|value| {
                let term = Term::from_facet(f.attribute, &Facet::from_path([key, value]));
                let query: Box<dyn Query> =
                    Box::new(TermQuery::new(term, IndexRecordOption::Basic));
                (Occur::Should, query)
            })
            .collect();
        filter(Box::new(BooleanQuery::new(any_of)));
    }
    if request.min_price.is_some() || request.max_price.is_some() {
        let bound = |v: Option<u64>| match v {
            Some(v) => Bound::Included(Term::from_field_u64(f.price, v)),
            None => Bound::Unbounded,
        };
        filter(Box::new(RangeQuery::new(
            bound(request.min_price),
            bound(request.max_price),
        )));
    }
    if request.in_stock {
        filter(Box::new(RangeQuery::new(
            Bound::Included(Term::from_field_u64(f.available, 1)),
            Bound::Unbounded,
        )));
    }
    BooleanQuery::new(clauses)
}

/// Every attribute key in the index (of any document: the facet counts tell which the
/// matches have). Read from `attribute_key`'s term dictionaries, which hold one term per
/// distinct key, so this costs the number of keys, not of values or documents.
fn attribute_keys(searcher: &Searcher, f: &Fields) -> Result<BTreeSet<String>, ProjectionError> {
    let mut keys = BTreeSet::new();
    for segment in searcher.segment_readers() {
        let index = segment.inverted_index(f.attribute_key)?;
        let mut terms = index.terms().stream()?;
        while terms.advance() {
            keys.insert(String::from_utf8_lossy(terms.key()).into_owned());
        }
    }
    Ok(keys)
}

/// Highlights the words of the hits that matched a query word (exactly, within its typos,
/// or as the prefix of the last word).
struct Highlighter {
    name: Option<SnippetGenerator>,
    description: Option<SnippetGenerator>,
}

impl Highlighter {
    fn new(
        searcher: &Searcher,
        f: &Fields,
        words: &[String],
        docs: &[(f32, ProductDoc, TantivyDocument)],
    ) -> Result<Self, ProjectionError> {
        if words.is_empty() {
            return Ok(Self {
                name: None,
                description: None,
            });
        }
        let mut matched: BTreeSet<String> = BTreeSet::new();
        let mut analyzer = searcher.index().tokenizer_for_field(f.name)?;
        for (_, doc, _) in docs {
            for text in [&doc.name, &doc.description] {
                let mut stream = analyzer.token_stream(text);
                while stream.advance() {
                    let token = &stream.token().text;
                    if words
                        .iter()
                        .enumerate()
                        .any(|(i, w)| word_matches(w, token, i + 1 == words.len()))
                    {
                        matched.insert(token.clone());
                    }
                }
            }
        }
        let generator = |field| -> Result<Option<SnippetGenerator>, ProjectionError> {
            let terms: Vec<(Occur, Box<dyn Query>)> = matched
                .iter()
                .map(|t| {
                    (
                        Occur::Should,
                        Box::new(TermQuery::new(
                            Term::from_field_text(field, t),
                            IndexRecordOption::Basic,
                        )) as Box<dyn Query>,
                    )
                })
                .collect();
            if terms.is_empty() {
                return Ok(None);
            }
            let mut g = SnippetGenerator::create(searcher, &BooleanQuery::new(terms), field)?;
            g.set_max_num_chars(160);
            Ok(Some(g))
        };
        Ok(Self {
            name: generator(f.name)?,
            description: generator(f.description)?,
        })
    }

    fn highlight(&self, doc: &TantivyDocument) -> Highlights {
        let html = |g: &Option<SnippetGenerator>| {
            g.as_ref()
                .map(|g| g.snippet_from_doc(doc).to_html())
                .unwrap_or_default()
        };
        Highlights {
            name: html(&self.name),
            description: html(&self.description),
        }
    }
}

fn word_matches(word: &str, token: &str, is_last: bool) -> bool {
    let typos = usize::from(allowed_typos(word.chars().count()));
    if is_last && token.starts_with(word) {
        return true;
    }
    if is_last && token.chars().count() > word.chars().count() {
        let prefix: String = token.chars().take(word.chars().count()).collect();
        if typos > 0 && edit_distance(word, &prefix) <= typos {
            return true;
        }
    }
    edit_distance(word, token) <= typos
}

/// Optimal-string-alignment distance (a transposition counts as one edit, like the index).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_a_swap_as_one_edit() {
        assert_eq!(edit_distance("headphones", "haedphones"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert!(word_matches("wireles", "wireless", false));
        assert!(word_matches("head", "headphones", true));
        assert!(!word_matches("head", "headphones", false));
    }
}
