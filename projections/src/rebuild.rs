//! Zero-downtime rebuilds of the PostgreSQL read models.
//!
//! A rebuild builds the projection's code version in a shadow schema
//! (`read_<name>_v<version>_shadow`) straight from the PostgreSQL log, while the live tables in
//! `read` keep being updated by their worker and served by the query API. The shadow has its
//! own checkpoint and per-aggregate sequences (tables of the same shape as the live ones, in
//! the shadow schema), so an interrupted rebuild resumes where it stopped and never touches the
//! live version.
//!
//! When the shadow has caught up with the head of the log, one transaction switches over:
//! it locks the live checkpoint row (the same row lock every live batch takes first, so the
//! live worker is fenced until the commit), applies what the live worker applied beyond the
//! shadow, takes over the checkpoint and the sequences, moves the old tables out of `read` and
//! the new ones in, and drops the old version. The live worker then continues from the
//! taken-over checkpoint: an event at or below it is a redelivery and skipped.
//!
//! A rebuild holds a session advisory lock per projection on a connection of its own, so two
//! rebuilds of a projection never run at once, and `status` can tell a running rebuild from an
//! interrupted one. See `docs/adr/0009-zero-downtime-projection-rebuilds.md`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mercato_event_store::{LogFilter, LogReader, PersonalData, Position, RecordedEvent};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::error::ProjectionError;
use crate::parking;
use crate::projection::{find, registry, Projection, READ_SCHEMA};

/// First key of the rebuild advisory locks (the second is `hashtext(<projection name>)`).
pub(crate) const REBUILD_LOCK_CLASS: i32 = 0x6d65_7263;

/// How a rebuild runs.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// Events read from the log and applied per shadow transaction.
    pub batch_size: usize,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self { batch_size: 10_000 }
    }
}

/// What a rebuild is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildPhase {
    /// Applying the log to the shadow tables.
    Replaying,
    /// Building the shadow tables' secondary indexes.
    Indexing,
    /// Catching up with the live version and switching over.
    Switching,
    /// The new version is live and the old one dropped.
    Done,
}

/// Progress of a rebuild, reported after every batch and phase change.
#[derive(Debug, Clone)]
pub struct RebuildProgress {
    /// The projection a per-projection phase is about (`None` while replaying the shared log).
    pub projection: Option<&'static str>,
    /// The phase.
    pub phase: RebuildPhase,
    /// Log events replayed so far (including those of an interrupted run).
    pub done: u64,
    /// Log events to replay in total (grows while the log does).
    pub total: u64,
    /// Events replayed per second in this run.
    pub events_per_sec: f64,
    /// Estimated time to the end of the replay.
    pub eta: Option<Duration>,
    /// The shadow's position.
    pub position: Position,
}

/// What a finished rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    /// The projection.
    pub projection: &'static str,
    /// The version now live.
    pub version: i32,
    /// The checkpoint the live worker continues from.
    pub position: Position,
    /// Log events replayed in this run (for every projection rebuilt in the same pass).
    pub events: u64,
    /// Time the whole rebuild took.
    pub elapsed: Duration,
}

/// The shadow schema of `name` at `version`.
pub fn shadow_schema(name: &str, version: i32) -> String {
    format!("read_{name}_v{version}_shadow")
}

/// Rebuilds the registered projection called `name` with zero downtime.
pub async fn rebuild(
    pool: &PgPool,
    name: &str,
    options: &RebuildOptions,
    progress: impl Fn(&RebuildProgress) + Sync,
) -> Result<RebuildReport, ProjectionError> {
    let projection = find(name)?;
    let mut reports = rebuild_projections(pool, &[projection], options, progress).await?;
    reports
        .pop()
        .ok_or_else(|| ProjectionError::UnknownProjection(name.to_owned()))
}

/// Rebuilds every registered projection in one pass over the log.
pub async fn rebuild_all(
    pool: &PgPool,
    options: &RebuildOptions,
    progress: impl Fn(&RebuildProgress) + Sync,
) -> Result<Vec<RebuildReport>, ProjectionError> {
    rebuild_projections(pool, &registry(), options, progress).await
}

/// Rebuilds `projections` in one pass over the log (each into its own shadow, each switched
/// over on its own). Fails with [`ProjectionError::RebuildRunning`] if another rebuild of one
/// of them holds its lock.
pub async fn rebuild_projections(
    pool: &PgPool,
    projections: &[Arc<dyn Projection>],
    options: &RebuildOptions,
    progress: impl Fn(&RebuildProgress) + Sync,
) -> Result<Vec<RebuildReport>, ProjectionError> {
    let names: Vec<&'static str> = projections.iter().map(|p| p.name()).collect();
    let lock = RebuildLock::acquire(pool, &names, false).await?;
    let result = run(pool, projections, options, &progress).await;
    if result.is_err() {
        // Best effort: the live version is untouched, so it is live again (the shadow stays
        // for a resumed rebuild).
        let _ = set_live_state(pool, &names, "live").await;
    }
    lock.release().await;
    result
}

/// Rebuilds `projection` if the version that wrote its live tables differs from its code
/// version (a worker calls this on start). Waits for a rebuild another process is running,
/// then looks again. `None` when nothing was due.
pub async fn rebuild_if_outdated(
    pool: &PgPool,
    projection: Arc<dyn Projection>,
    options: &RebuildOptions,
) -> Result<Option<RebuildReport>, ProjectionError> {
    if !is_outdated(pool, &*projection).await? {
        return Ok(None);
    }
    let name = projection.name();
    let lock = RebuildLock::acquire(pool, &[name], true).await?;
    if !is_outdated(pool, &*projection).await? {
        lock.release().await;
        return Ok(None);
    }
    tracing::info!(
        projection = name,
        version = projection.version(),
        "stored version differs from the code's; rebuilding"
    );
    let result = run(pool, &[projection], options, &|p: &RebuildProgress| {
        tracing::debug!(projection = name, done = p.done, total = p.total, phase = ?p.phase, "rebuild progress");
    })
    .await;
    if result.is_err() {
        let _ = set_live_state(pool, &[name], "live").await;
    }
    lock.release().await;
    Ok(result?.pop())
}

async fn is_outdated(pool: &PgPool, projection: &dyn Projection) -> Result<bool, ProjectionError> {
    let stored: Option<i32> =
        sqlx::query_scalar("SELECT version FROM read.projection_status WHERE name = $1")
            .bind(projection.name())
            .fetch_optional(pool)
            .await?;
    Ok(stored.is_some_and(|v| v != projection.version()))
}

/// Session advisory locks on a connection that is closed (never returned to the pool) when
/// the rebuild ends or its future is dropped, so a lock never outlives its rebuild.
struct RebuildLock {
    conn: PgConnection,
}

impl RebuildLock {
    async fn acquire(pool: &PgPool, names: &[&str], wait: bool) -> Result<Self, ProjectionError> {
        let mut conn = pool.acquire().await?.detach();
        for (i, name) in names.iter().enumerate() {
            let sql = if wait {
                "SELECT pg_advisory_lock($1, hashtext($2)) IS NOT NULL"
            } else {
                "SELECT pg_try_advisory_lock($1, hashtext($2))"
            };
            let locked: bool = sqlx::query_scalar(sql)
                .bind(REBUILD_LOCK_CLASS)
                .bind(name.to_string())
                .fetch_one(&mut conn)
                .await?;
            if !locked {
                for held in &names[..i] {
                    sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2))")
                        .bind(REBUILD_LOCK_CLASS)
                        .bind(held.to_string())
                        .execute(&mut conn)
                        .await?;
                }
                let _ = conn.close().await;
                return Err(ProjectionError::RebuildRunning((*name).to_owned()));
            }
        }
        Ok(Self { conn })
    }

    async fn release(mut self) {
        // Unlock before closing: the server ends a closed session after `close` returns, so
        // its locks could still be seen for a moment by a status query that follows.
        let _ = sqlx::query("SELECT pg_advisory_unlock_all()")
            .execute(&mut self.conn)
            .await;
        // Closing the session releases its advisory locks in any case.
        let _ = self.conn.close().await;
    }
}

/// A projection's shadow while it is built.
struct Shadow {
    projection: Arc<dyn Projection>,
    schema: String,
    position: Position,
    last_event_id: Option<Uuid>,
    /// Whether its secondary indexes are deferred until the replay is done.
    copied_shape: bool,
}

type Reports<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<RebuildReport>, ProjectionError>> + Send + 'a>,
>;

// Boxed: spelling out `Send` here keeps the compiler from having to prove it for every caller.
fn run<'a>(
    pool: &'a PgPool,
    projections: &'a [Arc<dyn Projection>],
    options: &'a RebuildOptions,
    progress: &'a (dyn Fn(&RebuildProgress) + Sync),
) -> Reports<'a> {
    Box::pin(run_inner(pool, projections, options, progress))
}

async fn run_inner(
    pool: &PgPool,
    projections: &[Arc<dyn Projection>],
    options: &RebuildOptions,
    progress: &(dyn Fn(&RebuildProgress) + Sync),
) -> Result<Vec<RebuildReport>, ProjectionError> {
    let started = Instant::now();
    let names: Vec<&'static str> = projections.iter().map(|p| p.name()).collect();
    for p in projections {
        ensure_live_row(pool, &**p).await?;
    }
    let mut shadows = Vec::with_capacity(projections.len());
    for p in projections {
        shadows.push(prepare_shadow(pool, p.clone()).await?);
    }
    set_live_state(pool, &names, "rebuilding").await?;

    let mut replay = Replay::start(pool, &shadows, options).await?;
    replay.run(pool, &mut shadows, progress).await?;
    for shadow in &shadows {
        if shadow.copied_shape {
            progress(&replay.progress(Some(shadow.projection.name()), RebuildPhase::Indexing));
            build_deferred_indexes(pool, shadow).await?;
        }
    }
    // Index builds take a while on a big shadow: catch up again before fencing the live worker.
    replay.run(pool, &mut shadows, progress).await?;

    let mut reports = Vec::with_capacity(shadows.len());
    for shadow in &mut shadows {
        let name = shadow.projection.name();
        progress(&replay.progress(Some(name), RebuildPhase::Switching));
        let position = switch_over(pool, shadow, options).await?;
        tracing::info!(projection = name, version = shadow.projection.version(), %position,
            events = replay.done_now, "projection rebuilt and switched over");
        let mut done = replay.progress(Some(name), RebuildPhase::Done);
        done.position = position;
        progress(&done);
        reports.push(RebuildReport {
            projection: name,
            version: shadow.projection.version(),
            position,
            events: replay.done_now,
            elapsed: started.elapsed(),
        });
    }
    Ok(reports)
}

/// A live status row must exist for the switch to lock it (a projection that never ran).
async fn ensure_live_row(
    pool: &PgPool,
    projection: &dyn Projection,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO read.projection_status (name, version) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(projection.name())
    .bind(projection.version())
    .execute(pool)
    .await?;
    Ok(())
}

async fn set_live_state(pool: &PgPool, names: &[&str], state: &str) -> Result<(), ProjectionError> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    // A failed projection stays failed (with its error) until the switch replaces it.
    sqlx::query(
        "UPDATE read.projection_status SET state = $2, updated_at = now() \
         WHERE name = ANY($1) AND state <> 'failed'",
    )
    .bind(&names)
    .bind(state)
    .execute(pool)
    .await?;
    Ok(())
}

/// Opens the projection's shadow (resuming an interrupted rebuild) or creates it, dropping
/// shadows of other versions.
async fn prepare_shadow(
    pool: &PgPool,
    projection: Arc<dyn Projection>,
) -> Result<Shadow, ProjectionError> {
    let name = projection.name();
    let schema = shadow_schema(name, projection.version());
    let copied_shape = projection.shadow_ddl().is_none();
    let mut tx = pool.begin().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(&schema)
            .fetch_one(&mut *tx)
            .await?;
    if exists {
        let row: Option<(String, i64, Option<Uuid>)> = sqlx::query_as(&format!(
            "SELECT tx_id::text, global_position, last_event_id FROM \"{schema}\".projection_status WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        // No row: the shadow was left half made. Start over (the schema is dropped below
        // with the other stale shadows).
        if let Some((tx_id, gp, last_event_id)) = row {
            // A shadow begun before events could be parked has no table for them yet.
            sqlx::query(&format!(
                "CREATE TABLE IF NOT EXISTS \"{schema}\".projection_parked \
                 (LIKE {READ_SCHEMA}.projection_parked INCLUDING ALL)"
            ))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            let position = Position::new(tx_id.parse().unwrap_or_default(), gp);
            tracing::info!(projection = name, %position, "resuming an interrupted rebuild");
            return Ok(Shadow {
                projection,
                schema,
                position,
                last_event_id,
                copied_shape,
            });
        }
        tracing::warn!(
            projection = name,
            "the interrupted rebuild's shadow has no checkpoint; starting over"
        );
    }

    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname ~ ('^read_' || $1 || '_v[0-9]+_shadow$')",
    )
    .bind(name)
    .fetch_all(&mut *tx)
    .await?;
    for old in stale {
        sqlx::query(&format!("DROP SCHEMA \"{old}\" CASCADE"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&mut *tx)
        .await?;
    for table in [
        "projection_status",
        "projection_sequences",
        "projection_parked",
    ] {
        sqlx::query(&format!(
            "CREATE TABLE \"{schema}\".{table} (LIKE {READ_SCHEMA}.{table} INCLUDING ALL)"
        ))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(&format!(
        "INSERT INTO \"{schema}\".projection_status (name, version, state) VALUES ($1, $2, 'rebuilding')"
    ))
    .bind(name)
    .bind(projection.version())
    .execute(&mut *tx)
    .await?;
    match projection.shadow_ddl() {
        Some(ddl) => {
            sqlx::query(&format!("SET LOCAL search_path TO \"{schema}\", public"))
                .execute(&mut *tx)
                .await?;
            sqlx::Executor::execute(&mut *tx, ddl).await?;
        }
        None => {
            for table in projection.tables() {
                copy_table_shape(&mut tx, &schema, table).await?;
            }
        }
    }
    tx.commit().await?;
    tracing::info!(projection = name, schema = %schema, "created the rebuild's shadow tables");
    Ok(Shadow {
        projection,
        schema,
        position: Position::START,
        last_event_id: None,
        copied_shape,
    })
}

/// Creates `schema.table` with the live table's columns, defaults, checks and key constraints
/// (same names); its other indexes are built after the replay (faster than maintaining them).
async fn copy_table_shape(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<(), ProjectionError> {
    sqlx::query(&format!(
        "CREATE TABLE \"{schema}\".\"{table}\" (LIKE {READ_SCHEMA}.\"{table}\" \
           INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING IDENTITY \
           INCLUDING STORAGE INCLUDING COMMENTS)"
    ))
    .execute(&mut *conn)
    .await?;
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass AND contype IN ('p', 'u', 'x') \
         ORDER BY conname",
    )
    .bind(READ_SCHEMA)
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    for (name, definition) in keys {
        sqlx::query(&format!(
            "ALTER TABLE \"{schema}\".\"{table}\" ADD CONSTRAINT \"{name}\" {definition}"
        ))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Builds the live tables' non-constraint indexes on the shadow's tables (same names).
async fn build_deferred_indexes(pool: &PgPool, shadow: &Shadow) -> Result<(), ProjectionError> {
    let mut conn = pool.acquire().await?;
    for table in shadow.projection.tables() {
        let definitions: Vec<String> = sqlx::query_scalar(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i \
             WHERE i.indrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid) \
             ORDER BY i.indexrelid",
        )
        .bind(READ_SCHEMA)
        .bind(table)
        .fetch_all(&mut *conn)
        .await?;
        for definition in definitions {
            // `CREATE [UNIQUE] INDEX <name> ON read.<table> USING ...` from pg_get_indexdef.
            let on_live = format!(" ON {READ_SCHEMA}.");
            if !definition.contains(&on_live) {
                return Err(ProjectionError::Invalid {
                    event_id: Uuid::nil(),
                    reason: format!("unexpected index definition: {definition}"),
                });
            }
            let sql = definition
                .replacen(" INDEX ", " INDEX IF NOT EXISTS ", 1)
                .replacen(&on_live, &format!(" ON \"{}\".", shadow.schema), 1);
            sqlx::query(&sql).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// The shared pass over the log that feeds every shadow.
struct Replay {
    batch_size: usize,
    filter: LogFilter,
    /// Events up to the slowest shadow's position when the run started.
    done_before: u64,
    /// Events replayed in this run.
    done_now: u64,
    total: u64,
    started: Instant,
    position: Position,
}

impl Replay {
    async fn start(
        pool: &PgPool,
        shadows: &[Shadow],
        options: &RebuildOptions,
    ) -> Result<Self, ProjectionError> {
        // With one tracked aggregate type between them, the other events need not travel.
        let mut types: Vec<&str> = shadows
            .iter()
            .flat_map(|s| s.projection.aggregate_types().iter().copied())
            .collect();
        types.sort_unstable();
        types.dedup();
        let filter = match types.as_slice() {
            [only] => LogFilter {
                aggregate_type: Some((*only).to_owned()),
                ..LogFilter::default()
            },
            _ => LogFilter::default(),
        };
        let from = slowest(shadows);
        let reader = LogReader::new(pool.clone()).with_personal_data(PersonalData::Revealed);
        let done_before = if from == Position::START {
            0
        } else {
            let up_to = LogFilter {
                until: Some(from),
                ..filter.clone()
            };
            reader.count(Position::START, &up_to).await?.max(0) as u64
        };
        let remaining = reader.count(from, &filter).await?.max(0) as u64;
        Ok(Self {
            batch_size: options.batch_size.max(1),
            filter,
            done_before,
            done_now: 0,
            total: done_before + remaining,
            started: Instant::now(),
            position: from,
        })
    }

    fn progress(&self, projection: Option<&'static str>, phase: RebuildPhase) -> RebuildProgress {
        let secs = self.started.elapsed().as_secs_f64();
        let events_per_sec = if secs > 0.0 {
            self.done_now as f64 / secs
        } else {
            0.0
        };
        let done = self.done_before + self.done_now;
        let eta = (events_per_sec > 0.0).then(|| {
            Duration::from_secs_f64(self.total.saturating_sub(done) as f64 / events_per_sec)
        });
        RebuildProgress {
            projection,
            phase,
            done,
            total: self.total.max(done),
            events_per_sec,
            eta,
            position: self.position,
        }
    }

    /// Applies the log to every shadow until the head. The log is read once, a batch ahead;
    /// each shadow applies the batches on a task and a transaction of its own, at its own
    /// pace, up to `SHADOW_AHEAD` batches ahead of the slowest (no barrier per batch: with
    /// one, a batch's slowest shadow ran alone while the others waited, and the machine
    /// idled a quarter of the time).
    async fn run(
        &mut self,
        pool: &PgPool,
        shadows: &mut Vec<Shadow>,
        progress: &(dyn Fn(&RebuildProgress) + Sync),
    ) -> Result<(), ProjectionError> {
        let reader = LogReader::new(pool.clone()).with_personal_data(PersonalData::Revealed);
        let (filter, batch_size) = (self.filter.clone(), self.batch_size);
        let read = |from: Position| {
            let (reader, filter) = (reader.clone(), filter.clone());
            tokio::spawn(async move { reader.read(from, &filter, batch_size).await })
        };
        let mut next = read(slowest(shadows));
        let count = shadows.len();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Position)>();
        let mut senders = Vec::with_capacity(count);
        let mut workers = ShadowTasks(Vec::with_capacity(count));
        for (i, mut shadow) in std::mem::take(shadows).into_iter().enumerate() {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<Vec<RecordedEvent>>>(SHADOW_AHEAD);
            let (pool, done) = (pool.clone(), done_tx.clone());
            workers.0.push(tokio::spawn(async move {
                // A connection of its own, never returned to the pool: when a dropped rebuild
                // aborts this task inside a transaction (even inside `begin`), closing the
                // socket rolls it back, where a pooled connection could go back to the pool
                // still in it (a test's later queries then ran inside that transaction and
                // held locks that blocked the next switch-over).
                let mut conn = match pool.acquire().await {
                    Ok(c) => c.detach(),
                    Err(e) => return (shadow, Err(e.into())),
                };
                let mut result = Ok(());
                while let Some(events) = rx.recv().await {
                    result = apply_in_own_transaction(&mut conn, &mut shadow, &events).await;
                    if result.is_err() {
                        break;
                    }
                    let _ = done.send((i, shadow.position));
                }
                let _ = conn.close().await;
                (shadow, result)
            }));
            senders.push(tx);
        }
        drop(done_tx);
        // Batches handed out and not yet applied by every shadow: (last position, events).
        let mut in_flight: std::collections::VecDeque<(Position, u64)> = Default::default();
        let mut applied = vec![Position::START; count];
        let mut outcome: Result<(), ProjectionError> = Ok(());
        'replay: loop {
            let events = match (&mut next).await {
                Ok(Ok(events)) => events,
                Ok(Err(e)) => {
                    outcome = Err(e.into());
                    break;
                }
                Err(e) => {
                    outcome = Err(ProjectionError::Invalid {
                        event_id: Uuid::nil(),
                        reason: format!("log reader task failed: {e}"),
                    });
                    break;
                }
            };
            let Some(last) = events.last().map(|e| e.position) else {
                break;
            };
            let full = events.len() >= batch_size;
            if full {
                next = read(last);
            }
            in_flight.push_back((last, events.len() as u64));
            let events = Arc::new(events);
            for sender in &senders {
                // Waits while this shadow is `SHADOW_AHEAD` batches behind; fails when its
                // task ended on an error (collected below).
                if sender.send(events.clone()).await.is_err() {
                    break 'replay;
                }
                self.settle(&mut done_rx, &mut applied, &mut in_flight, progress);
            }
            if !full {
                break;
            }
        }
        next.abort();
        drop(senders);
        for task in std::mem::take(&mut workers.0) {
            match task.await {
                Ok((shadow, result)) => {
                    shadows.push(shadow);
                    if let Err(e) = result {
                        if outcome.is_ok() {
                            outcome = Err(e);
                        }
                    }
                }
                Err(e) => {
                    if outcome.is_ok() {
                        outcome = Err(ProjectionError::Invalid {
                            event_id: Uuid::nil(),
                            reason: format!("a shadow's task failed: {e}"),
                        });
                    }
                }
            }
        }
        self.settle(&mut done_rx, &mut applied, &mut in_flight, progress);
        outcome
    }

    /// Takes in the shadows' finished batches and reports the batches every shadow has
    /// applied.
    fn settle(
        &mut self,
        done: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, Position)>,
        applied: &mut [Position],
        in_flight: &mut std::collections::VecDeque<(Position, u64)>,
        progress: &(dyn Fn(&RebuildProgress) + Sync),
    ) {
        while let Ok((i, position)) = done.try_recv() {
            applied[i] = position;
        }
        let everywhere = applied.iter().min().copied().unwrap_or(Position::START);
        let mut moved = false;
        while let Some(&(last, len)) = in_flight.front() {
            if last > everywhere {
                break;
            }
            in_flight.pop_front();
            self.done_now += len;
            self.position = last;
            moved = true;
        }
        if moved {
            progress(&self.progress(None, RebuildPhase::Replaying));
        }
    }
}

/// Batches a shadow may have queued ahead of the slowest one (memory: a batch of events
/// each).
const SHADOW_AHEAD: usize = 2;

/// The shadows' tasks, aborted if the rebuild is dropped (Ctrl-C): a transaction cut off is
/// rolled back, and the shadows resume from their last commit.
struct ShadowTasks(Vec<tokio::task::JoinHandle<(Shadow, Result<(), ProjectionError>)>>);

impl Drop for ShadowTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

fn slowest(shadows: &[Shadow]) -> Position {
    shadows
        .iter()
        .map(|s| s.position)
        .min()
        .unwrap_or(Position::START)
}

async fn apply_in_own_transaction(
    conn: &mut PgConnection,
    shadow: &mut Shadow,
    events: &[RecordedEvent],
) -> Result<(), ProjectionError> {
    let mut tx = conn.begin().await?;
    sqlx::query("SET LOCAL synchronous_commit TO off")
        .execute(&mut *tx)
        .await?;
    apply_to_shadow(&mut tx, shadow, events).await?;
    tx.commit().await?;
    Ok(())
}

/// Applies the events after the shadow's position, in log order, to its tables, sequences and
/// checkpoint. No redeliveries or gaps here: the log hands out every event once, in order.
async fn apply_to_shadow(
    conn: &mut PgConnection,
    shadow: &mut Shadow,
    events: &[RecordedEvent],
) -> Result<(), ProjectionError> {
    let projection = shadow.projection.clone();
    let after = shadow.position;
    let fresh = events.iter().filter(|e| e.position > after);
    if events.last().is_none_or(|e| e.position <= after) {
        return Ok(());
    }
    sqlx::query(&format!(
        "SET LOCAL search_path TO \"{}\", public",
        shadow.schema
    ))
    .execute(&mut *conn)
    .await?;
    let tracked = projection.aggregate_types();
    let handled = projection.event_types();
    let mut sequences: HashMap<(&str, &str), i64> = HashMap::new();
    let mut to_apply: Vec<&RecordedEvent> = Vec::new();
    for event in fresh {
        shadow.position = event.position;
        shadow.last_event_id = Some(event.event_id);
        if !tracked.contains(&event.aggregate_type.as_str()) {
            continue;
        }
        if handled.contains(&event.event_type.as_str()) {
            to_apply.push(event);
        }
        sequences.insert(
            (event.aggregate_type.as_str(), event.aggregate_id.as_str()),
            event.sequence,
        );
    }
    parking::apply_or_park(&mut *conn, &*projection, &to_apply).await?;
    if !sequences.is_empty() {
        let mut types = Vec::with_capacity(sequences.len());
        let mut ids = Vec::with_capacity(sequences.len());
        let mut seqs = Vec::with_capacity(sequences.len());
        for ((t, i), s) in sequences {
            types.push(t);
            ids.push(i);
            seqs.push(s);
        }
        sqlx::query(
            "INSERT INTO projection_sequences (projection, aggregate_type, aggregate_id, sequence) \
             SELECT $1, t, i, s FROM unnest($2::text[], $3::text[], $4::bigint[]) AS k(t, i, s) \
             ON CONFLICT (projection, aggregate_type, aggregate_id) DO UPDATE SET sequence = EXCLUDED.sequence",
        )
        .bind(projection.name())
        .bind(&types)
        .bind(&ids)
        .bind(&seqs)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "UPDATE projection_status SET tx_id = $2::text::xid8, global_position = $3, \
           last_event_id = $4, updated_at = now() WHERE name = $1",
    )
    .bind(projection.name())
    .bind(shadow.position.tx_id().to_string())
    .bind(shadow.position.global_position())
    .bind(shadow.last_event_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The switch-over transaction (see the module docs). Returns the checkpoint the live worker
/// continues from.
async fn switch_over(
    pool: &PgPool,
    shadow: &mut Shadow,
    options: &RebuildOptions,
) -> Result<Position, ProjectionError> {
    let projection = shadow.projection.clone();
    let name = projection.name();
    let reader = LogReader::new(pool.clone()).with_personal_data(PersonalData::Revealed);
    let mut tx = pool.begin().await?;
    // The fence: every live batch locks this row first, so none runs until the commit, and
    // the next one reads the taken-over checkpoint.
    let (tx_id, gp, live_event_id): (String, i64, Option<Uuid>) = sqlx::query_as(
        "SELECT tx_id::text, global_position, last_event_id FROM read.projection_status \
         WHERE name = $1 FOR UPDATE",
    )
    .bind(name)
    .fetch_one(&mut *tx)
    .await?;
    let live = Position::new(tx_id.parse().unwrap_or_default(), gp);
    // The live version may be ahead (it applied events the shadow has not read yet): bring
    // the shadow to the same position. Every event up to a checkpoint has ended, so the log
    // hands all of them out.
    let filter = LogFilter {
        until: Some(live),
        ..LogFilter::default()
    };
    while shadow.position < live {
        let events = reader
            .read(shadow.position, &filter, options.batch_size.max(1))
            .await?;
        let Some(last) = events.last().map(|e| e.position) else {
            break;
        };
        apply_to_shadow(&mut tx, shadow, &events).await?;
        shadow.position = shadow.position.max(last);
    }
    if shadow.position < live {
        return Err(ProjectionError::Position(live));
    }
    let position = shadow.position;
    let schema = shadow.schema.clone();

    sqlx::query("DELETE FROM read.projection_sequences WHERE projection = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO read.projection_sequences (projection, aggregate_type, aggregate_id, sequence) \
         SELECT projection, aggregate_type, aggregate_id, sequence FROM \"{schema}\".projection_sequences"
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM read.projection_parked WHERE projection = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO read.projection_parked SELECT * FROM \"{schema}\".projection_parked"
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE read.projection_status SET version = $2, tx_id = $3::text::xid8, global_position = $4, \
           last_event_id = $5, state = 'live', error = NULL, updated_at = now() WHERE name = $1",
    )
    .bind(name)
    .bind(projection.version())
    .bind(position.tx_id().to_string())
    .bind(position.global_position())
    .bind(shadow.last_event_id.or(live_event_id))
    .execute(&mut *tx)
    .await?;

    // Tables last: their exclusive locks (queued behind running queries, blocking new ones)
    // are held only for the rest of this transaction.
    let retired = format!("read_{name}_retired");
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{retired}\" CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA \"{retired}\""))
        .execute(&mut *tx)
        .await?;
    for table in projection.tables() {
        sqlx::query(&format!(
            "ALTER TABLE IF EXISTS {READ_SCHEMA}.\"{table}\" SET SCHEMA \"{retired}\""
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "ALTER TABLE \"{schema}\".\"{table}\" SET SCHEMA {READ_SCHEMA}"
        ))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(&format!("DROP SCHEMA \"{retired}\" CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(position)
}
