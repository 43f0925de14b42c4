//! payment (in progress).
