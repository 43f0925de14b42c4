//! stock (in progress).
