//! checkout (in progress).
