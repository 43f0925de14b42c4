//! Mercato domain.
