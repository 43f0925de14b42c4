//! customer (in progress).
