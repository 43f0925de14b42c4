//! Integration tests of the command side.
