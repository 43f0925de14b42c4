//! Test support: a throw-away, migrated database per test.

use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::database::{prepare, DatabaseConfig};

pub mod counter;

/// The server tests run against (`MERCATO_TEST_DATABASE_URL`, default the local one).
pub fn server_url() -> String {
    std::env::var("MERCATO_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of its own for one test, created and migrated on [`TestDatabase::new`] and
/// dropped when the value is dropped, so tests run in parallel and rerun on a dirty machine.
pub struct TestDatabase {
    /// The pool to the test's database.
    pub pool: PgPool,
    /// The test database's configuration (its URL names the test database).
    pub config: DatabaseConfig,
    name: String,
}

impl TestDatabase {
    /// Creates and migrates a fresh database named `mercato_test_<uuid>`.
    pub async fn new() -> Self {
        let name = format!("mercato_test_{}", Uuid::new_v4().simple());
        let base = server_url();
        let url = match base.rfind('/') {
            Some(i) if base[..i].contains("://") && base[i..].len() > 1 => {
                format!("{}/{}", &base[..i], name)
            }
            _ => format!("{}/{}", base.trim_end_matches('/'), name),
        };
        // Small pools: several test binaries share the server's 100 connections.
        let config = DatabaseConfig {
            max_connections: 6,
            ..DatabaseConfig::new(url)
        };
        let pool = prepare(&config)
            .await
            .expect("test database can be created and migrated");
        Self { pool, config, name }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; do the async clean-up on a thread of its own.
        // FORCE ends the test's own pooled connections, which live on the test's runtime.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&server_url()).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(&sql).execute(&mut admin).await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}
