//! Statements PostgreSQL runs for a scenario, from `pg_stat_statements`.

use crate::setup::BenchEnv;

/// Counts the statements PostgreSQL runs on the bench's database (`pg_stat_statements`, which
/// must be in the server's `shared_preload_libraries`; without it nothing is counted). Each
/// statement is one round trip from the client (sqlx sends parse, bind and execute together),
/// `BEGIN` and `COMMIT` included.
pub struct StatementCounter(Option<sqlx::PgPool>);

impl StatementCounter {
    /// A counter on `env`'s database, counting nothing when pg_stat_statements is not loaded.
    pub async fn new(env: &BenchEnv) -> Self {
        let loaded = sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&env.pool)
            .await
            .is_ok();
        let counter = Self(loaded.then(|| env.pool.clone()));
        match counter.total().await {
            Some(_) => counter,
            None => Self(None),
        }
    }

    /// Statements run on this database so far.
    async fn total(&self) -> Option<u64> {
        let pool = self.0.as_ref()?;
        let calls: Result<i64, sqlx::Error> = sqlx::query_scalar(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(pool)
        .await;
        calls.ok().map(|c| c as u64)
    }

    /// What `work` gave, and the statements that ran while it did (`None` when not counted).
    pub async fn count<T>(
        &self,
        work: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<(T, Option<u64>)> {
        let before = self.total().await;
        let done = work.await?;
        let ran = before
            .zip(self.total().await)
            .map(|(b, a)| a.saturating_sub(b));
        Ok((done, ran))
    }

    /// Whether statements are counted (pg_stat_statements is loaded).
    pub fn counting(&self) -> bool {
        self.0.is_some()
    }
}
