//! The catalog's tantivy search index: one per query-api replica, fed by the replica's own
//! durable consumer, with its checkpoint in the index's commit payload.
//!
//! Typo tolerance follows what shoppers expect: words of 5-8 letters match with one typo,
//! words of 9+ letters with two (a transposition counts as one), shorter words exactly; the
//! last word also matches as a prefix (search-as-you-type). Exact matches score higher.
//!
//! The index's position is a watermark: a delivered batch that misses events after it is
//! completed from the PostgreSQL log (`repair`), like the SQL projections' runtime does.

mod index;
mod query;
mod repair;

pub use index::{SearchIndex, SearchWorker, SEARCH_VERSION};
pub use query::{
    Facets, Highlights, SearchHit, SearchRequest, SearchResponse, SearchSort,
    ATTRIBUTE_FACET_VALUES,
};

/// Typos a word of `len` characters may have.
pub fn allowed_typos(len: usize) -> u8 {
    match len {
        0..=4 => 0,
        5..=8 => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::allowed_typos;

    #[test]
    fn one_typo_from_five_letters_two_from_nine() {
        assert_eq!(allowed_typos(4), 0);
        assert_eq!(allowed_typos(5), 1);
        assert_eq!(allowed_typos(8), 1);
        assert_eq!(allowed_typos(9), 2);
    }
}
