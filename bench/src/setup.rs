//! Scratch database and streams for one benchmark run.

use anyhow::Context;
use async_nats::jetstream;
use mercato_event_store::DatabaseConfig;
use mercato_nats::NatsConfig;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

/// A scratch database and a NATS connection; everything made is removed by `teardown`.
pub struct BenchEnv {
    server_url: String,
    pub database: DatabaseConfig,
    pub pool: PgPool,
    /// The same database, on connections that do not NOTIFY on append.
    pub quiet_pool: PgPool,
    db_name: String,
    pub nats_url: String,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    streams: std::sync::Mutex<Vec<String>>,
    /// Further scratch databases (baselines'), dropped by `teardown`.
    databases: std::sync::Mutex<Vec<String>>,
}

impl BenchEnv {
    pub async fn new(server_url: &str, nats_url: &str) -> anyhow::Result<Self> {
        // A throw-away master key: the scratch database is dropped after the run.
        let (key, _) = mercato_event_store::privacy::MasterKey::generate();
        mercato_event_store::privacy::install(mercato_event_store::privacy::MasterKeys::new(
            key,
            vec![],
        ))?;
        let db_name = format!("mercato_bench_{}", Uuid::new_v4().simple());
        let base = server_url.rsplit_once('/').map_or(server_url, |(b, _)| b);
        let database = DatabaseConfig {
            max_connections: 48,
            ..DatabaseConfig::new(format!("{base}/{db_name}"))
        };
        let pool = mercato_event_store::database::prepare(&database)
            .await
            .context("cannot create the scratch database")?;
        let quiet_pool = mercato_event_store::database::connect(&DatabaseConfig {
            notify: false,
            ..database.clone()
        })
        .await?;
        let client = async_nats::connect(nats_url)
            .await
            .context("cannot connect to nats")?;
        let js = jetstream::new(client.clone());
        Ok(Self {
            server_url: server_url.to_owned(),
            database,
            pool,
            quiet_pool,
            db_name,
            nats_url: nats_url.to_owned(),
            client,
            js,
            streams: Default::default(),
            databases: Default::default(),
        })
    }

    /// The query API on port 0 serving `index_dir`, with workers on a fresh stream.
    pub async fn query_api(
        &self,
        index_dir: &std::path::Path,
    ) -> anyhow::Result<mercato_query_api::QueryApi> {
        let config = mercato_query_api::QueryApiConfig {
            addr: ([127, 0, 0, 1], 0).into(),
            index_dir: index_dir.to_path_buf(),
            replica_id: format!("bench-{}", Uuid::new_v4().simple()),
            ..mercato_query_api::QueryApiConfig::new(
                "bench-secret-bench-secret-bench-secret".to_owned().into(),
            )
        };
        let deps = mercato_projections::ProjectionDeps {
            pool: self.pool.clone(),
            client: self.client.clone(),
            js: self.js.clone(),
            nats: self.fresh_stream().await?,
        };
        Ok(mercato_query_api::QueryApi::build(config, deps).await?)
    }

    /// A fresh events stream (and its dead-letter stream) with a prefix of its own.
    pub async fn fresh_stream(&self) -> anyhow::Result<NatsConfig> {
        let id = Uuid::new_v4().simple().to_string();
        let config = NatsConfig {
            url: self.nats_url.clone(),
            stream: format!("BENCH_{id}"),
            subject_prefix: format!("b{id}"),
            ..NatsConfig::default()
        };
        mercato_nats::ensure_topology(&self.js, &config).await?;
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.push(config.stream.clone());
        streams.push(config.dlq_stream());
        Ok(config)
    }

    /// The scratch database's URL.
    pub fn database_url(&self) -> String {
        let base = self
            .server_url
            .rsplit_once('/')
            .map_or(self.server_url.as_str(), |(b, _)| b);
        format!("{base}/{}", self.db_name)
    }

    /// Another empty scratch database (`mercato_bench_<label>_<id>`), dropped by `teardown`;
    /// its URL.
    pub async fn scratch_database(&self, label: &str) -> anyhow::Result<String> {
        let name = format!("mercato_bench_{label}_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&self.server_url).await?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await?;
        self.databases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.clone());
        let base = self
            .server_url
            .rsplit_once('/')
            .map_or(self.server_url.as_str(), |(b, _)| b);
        Ok(format!("{base}/{name}"))
    }

    pub async fn stream_count(&self, stream: &str) -> anyhow::Result<u64> {
        let mut s = self.js.get_stream(stream).await?;
        Ok(s.info().await?.state.messages)
    }

    pub async fn teardown(self) {
        self.pool.close().await;
        self.quiet_pool.close().await;
        let streams = self.streams.lock().map(|s| s.clone()).unwrap_or_default();
        for s in streams {
            let _ = self.js.delete_stream(&s).await;
        }
        let mut databases = self.databases.lock().map(|d| d.clone()).unwrap_or_default();
        databases.push(self.db_name.clone());
        if let Ok(mut admin) = PgConnection::connect(&self.server_url).await {
            for name in databases {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
            }
        }
    }
}
