//! order (in progress).
