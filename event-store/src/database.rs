//! Connecting to PostgreSQL, creating the database and applying migrations.

use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::error::StoreError;

/// The embedded migrations (`event-store/migrations`).
///
/// Other crates keep their own migrations (`command-api/migrations`, `projections/migrations`)
/// in the same `_sqlx_migrations` table, each in its own version range, so every migrator
/// ignores versions it does not know.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!()
};

/// How to reach Mercato's database.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `postgres://user[:password]@host:port/database`.
    pub url: SecretString,
    /// Upper bound of the connection pool.
    pub max_connections: u32,
    /// Whether appends announce themselves with NOTIFY (off: the relay must poll).
    pub notify: bool,
}

impl DatabaseConfig {
    /// A configuration for `url` with the default pool size.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            max_connections: 16,
            notify: true,
        }
    }

    /// Parsed connection options.
    pub fn options(&self) -> Result<PgConnectOptions, StoreError> {
        let options = PgConnectOptions::from_str(self.url.expose_secret())
            .map(|o| o.log_statements(tracing::log::LevelFilter::Trace))
            .map_err(|_| StoreError::Config("database url cannot be parsed".into()))?;
        Ok(if self.notify {
            options
        } else {
            options.options([("mercato.notify", "off")])
        })
    }

    /// The database name the URL points at.
    pub fn database_name(&self) -> Result<String, StoreError> {
        self.options()?
            .get_database()
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Config("database url names no database".into()))
    }
}

/// Creates the configured database when it does not exist yet (never drops anything).
pub async fn ensure_database(config: &DatabaseConfig) -> Result<(), StoreError> {
    let name = config.database_name()?;
    let mut admin = PgConnection::connect_with(&config.options()?.database("postgres")).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&sql).execute(&mut admin).await {
            Ok(_) => tracing::info!(database = %name, "database created"),
            // Another process created it between our check and our CREATE.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    admin.close().await?;
    Ok(())
}

/// A connection pool to the configured database.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(config.options()?)
        .await?;
    Ok(pool)
}

/// Applies every pending migration (concurrent callers serialise on sqlx's advisory lock).
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Creates the database if needed, connects and migrates: what every Mercato process does first.
pub async fn prepare(config: &DatabaseConfig) -> Result<PgPool, StoreError> {
    ensure_database(config).await?;
    let pool = connect(config).await?;
    migrate(&pool).await?;
    Ok(pool)
}
