//! Router tests of the query API against a real database (read models filled directly).

mod http;
