//! The projection runtime: exactly-once application of event batches to PostgreSQL read
//! models, one durable JetStream consumer per projection, lag reporting, and a catch-up path
//! that reads the PostgreSQL log directly.
//!
//! Exactly once in effect: a batch is one transaction that holds the read-model changes, the
//! last applied sequence of every aggregate it touched (`read.projection_sequences`) and the
//! checkpoint (`read.projection_status`). An event at or below its aggregate's applied
//! sequence is a redelivery and skipped; one that is more than one above is a gap: the
//! missing events are read from the PostgreSQL log and applied first (or, if the log cannot
//! hand them out yet, the batch fails and is retried), so nothing is ever skipped. Positions alone cannot decide
//! this: the consumer runtime retries a failed event after later events of *other*
//! aggregates, so events reach a projection in per-aggregate order, not global order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use mercato_event_store::{LogFilter, LogReader, PersonalData, Position, RecordedEvent};
use mercato_nats::{ConsumerConfig, Delivery, Handler, HandlerError, NatsConfig, Worker};

use sqlx::{PgConnection, PgPool};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::ProjectionError;
use crate::parking;
use crate::projection::{find, registry, Projection, READ_SCHEMA};
use crate::status::ProjectionStatus;

/// Registers `projection` in `read.projection_status` (keeps its checkpoint). The stored
/// version is the one that wrote the live tables: only a rebuild's switch-over changes it.
pub async fn register(pool: &PgPool, projection: &dyn Projection) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO read.projection_status (name, version) VALUES ($1, $2) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(projection.name())
    .bind(projection.version())
    .execute(pool)
    .await?;
    Ok(())
}

/// What a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events applied now.
    pub applied: usize,
    /// Events already applied before (redeliveries) or not of interest.
    pub skipped: usize,
    /// Events that could not be applied and were parked (`crate::parking`).
    pub parked: usize,
    /// The checkpoint after the batch.
    pub position: Position,
}

/// Applies `events` (in delivery order) to `projection`'s tables in `schema`, with its
/// sequences and checkpoint, in one transaction. Safe to call with redelivered events.
pub async fn apply_batch(
    pool: &PgPool,
    projection: &dyn Projection,
    schema: &str,
    events: &[RecordedEvent],
) -> Result<BatchOutcome, ProjectionError> {
    let name = projection.name();
    let tracked = projection.aggregate_types();
    if let Some(outcome) = skip_foreign(pool, projection, events).await? {
        return Ok(outcome);
    }
    let mut tx = pool.begin().await?;
    // The schema name is ours (a constant or a generated shadow name), never user input.
    sqlx::query(&format!("SET LOCAL search_path TO \"{schema}\", public"))
        .execute(&mut *tx)
        .await?;
    // Locks the checkpoint row: replicas of a worker (or a catch-up) serialise here, so the
    // sequence checks below see every committed batch.
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT tx_id::text, global_position FROM read.projection_status WHERE name = $1 FOR UPDATE",
    )
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    let mut position = match row {
        Some((tx_id, gp)) => Position::new(tx_id.parse().unwrap_or_default(), gp),
        None => {
            sqlx::query("INSERT INTO read.projection_status (name, version) VALUES ($1, $2)")
                .bind(name)
                .bind(projection.version())
                .execute(&mut *tx)
                .await?;
            Position::START
        }
    };

    // The checkpoint is a watermark: every event of the log up to it has been applied. The
    // batch extends it only if, with the events up to it, it covers the log range after it;
    // otherwise (an earlier event failed and waits for its redelivery) the range is read from
    // the log, so read-your-writes never sees a position whose events are missing.
    let mut fresh: Vec<&RecordedEvent> = events.iter().filter(|e| e.position > position).collect();
    fresh.sort_by_key(|e| e.position);
    fresh.dedup_by_key(|e| e.event_id);
    let from_log;
    let events: Vec<&RecordedEvent> = match fresh.last() {
        None => Vec::new(),
        Some(last) => {
            let in_log = LogReader::count_between(&mut *tx, position, last.position).await?;
            if in_log == fresh.len() as i64 {
                fresh
            } else {
                from_log = read_range(&mut tx, position, last.position).await?;
                from_log.iter().collect()
            }
        }
    };

    let keys: Vec<(String, String)> = events
        .iter()
        .filter(|e| tracked.contains(&e.aggregate_type.as_str()))
        .map(|e| (e.aggregate_type.clone(), e.aggregate_id.clone()))
        .collect();
    let mut sequences: HashMap<(String, String), i64> = HashMap::new();
    if !keys.is_empty() {
        let (types, ids): (Vec<String>, Vec<String>) = keys.iter().cloned().unzip();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT s.aggregate_type, s.aggregate_id, s.sequence FROM read.projection_sequences s \
             JOIN unnest($2::text[], $3::text[]) AS k(t, i) ON s.aggregate_type = k.t AND s.aggregate_id = k.i \
             WHERE s.projection = $1",
        )
        .bind(name)
        .bind(&types)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        for (t, i, s) in rows {
            sequences.insert((t, i), s);
        }
    }

    let mut outcome = BatchOutcome::default();
    let mut changed: HashMap<(String, String), i64> = HashMap::new();
    let mut last_event_id = None;
    let mut to_apply: Vec<RecordedEvent> = Vec::new();
    for event in events {
        if event.position > position {
            position = event.position;
            last_event_id = Some(event.event_id);
        }
        if !tracked.contains(&event.aggregate_type.as_str()) {
            outcome.skipped += 1;
            continue;
        }
        let key = (event.aggregate_type.clone(), event.aggregate_id.clone());
        let applied = sequences.get(&key).copied().unwrap_or(0);
        if event.sequence <= applied {
            outcome.skipped += 1;
            continue;
        }
        let mut chain = Vec::new();
        if event.sequence > applied + 1 {
            // The events in between were not delivered yet (a redelivery after a crash, or an
            // event that failed and waits for its retry): take them from the log itself.
            chain = missing_events(&mut tx, event, applied).await?;
        }
        chain.push(event.clone());
        for e in chain {
            if projection.event_types().contains(&e.event_type.as_str()) {
                to_apply.push(e);
                outcome.applied += 1;
            } else {
                outcome.skipped += 1;
            }
        }
        sequences.insert(key.clone(), event.sequence);
        changed.insert(key, event.sequence);
    }
    if !to_apply.is_empty() {
        // Sealed personal data is revealed for the events applied, in the batch's
        // transaction (ADR 0013).
        PersonalData::Revealed
            .apply(&mut *tx, &mut to_apply)
            .await?;
        let refs: Vec<&RecordedEvent> = to_apply.iter().collect();
        outcome.parked = parking::apply_or_park(&mut tx, projection, &refs).await?;
        outcome.applied -= outcome.parked;
    }

    if !changed.is_empty() {
        let mut types = Vec::with_capacity(changed.len());
        let mut ids = Vec::with_capacity(changed.len());
        let mut seqs = Vec::with_capacity(changed.len());
        for ((t, i), s) in changed {
            types.push(t);
            ids.push(i);
            seqs.push(s);
        }
        sqlx::query(
            "INSERT INTO read.projection_sequences (projection, aggregate_type, aggregate_id, sequence) \
             SELECT $1, t, i, s FROM unnest($2::text[], $3::text[], $4::bigint[]) AS k(t, i, s) \
             ON CONFLICT (projection, aggregate_type, aggregate_id) DO UPDATE SET sequence = EXCLUDED.sequence",
        )
        .bind(name)
        .bind(&types)
        .bind(&ids)
        .bind(&seqs)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE read.projection_status SET tx_id = $2::text::xid8, global_position = $3, \
           last_event_id = coalesce($4, last_event_id), state = CASE WHEN state = 'failed' THEN 'live' ELSE state END, \
           error = NULL, updated_at = now() \
         WHERE name = $1",
    )
    .bind(name)
    .bind(position.tx_id().to_string())
    .bind(position.global_position())
    .bind(last_event_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    outcome.position = position;
    metrics::gauge!("projection_position", "projection" => name)
        .set(position.global_position() as f64);
    Ok(outcome)
}

/// A batch with no event of the projection's aggregate types only moves the watermark: in
/// one statement (instead of a transaction of half a dozen), if the log holds no event of
/// those types between the checkpoint and the batch's last event. Most batches of most
/// projections are like this, since every projection sees every event. `None` when the
/// batch needs the full path (an event of ours in it or in the range, or a redelivery).
async fn skip_foreign(
    pool: &PgPool,
    projection: &dyn Projection,
    events: &[RecordedEvent],
) -> Result<Option<BatchOutcome>, ProjectionError> {
    let tracked = projection.aggregate_types();
    if events
        .iter()
        .any(|e| tracked.contains(&e.aggregate_type.as_str()))
    {
        return Ok(None);
    }
    let Some(last) = events.iter().max_by_key(|e| e.position) else {
        return Ok(None);
    };
    // Compare and set: the checkpoint moves only from the one read here, and only if the
    // log holds no tracked event between the two (every event up to a delivered one has
    // ended, so the range is final). A checkpoint moved meanwhile only narrows the range; the
    // update then finds it changed and the batch takes the full path.
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT tx_id::text, global_position FROM read.projection_status WHERE name = $1",
    )
    .bind(projection.name())
    .fetch_optional(pool)
    .await?;
    let Some((tx_id, gp)) = row else {
        return Ok(None);
    };
    let checkpoint = Position::new(tx_id.parse().unwrap_or_default(), gp);
    if checkpoint >= last.position
        || LogReader::new(pool.clone())
            .any_of_types_between(checkpoint, last.position, tracked)
            .await?
    {
        return Ok(None);
    }
    let moved = sqlx::query(
        "UPDATE read.projection_status s SET tx_id = $2::text::xid8, global_position = $3, \
           last_event_id = $4, state = CASE WHEN s.state = 'failed' THEN 'live' ELSE s.state END, \
           error = NULL, updated_at = now() \
         WHERE s.name = $1 AND (s.tx_id, s.global_position) = ($5::text::xid8, $6)",
    )
    .bind(projection.name())
    .bind(last.position.tx_id().to_string())
    .bind(last.position.global_position())
    .bind(last.event_id)
    .bind(checkpoint.tx_id().to_string())
    .bind(checkpoint.global_position())
    .execute(pool)
    .await?;
    if moved.rows_affected() == 0 {
        return Ok(None);
    }
    metrics::gauge!("projection_position", "projection" => projection.name())
        .set(last.position.global_position() as f64);
    Ok(Some(BatchOutcome {
        applied: 0,
        skipped: events.len(),
        parked: 0,
        position: last.position,
    }))
}

/// The log's events in `(after, to]`, read in the batch's transaction (a second pooled
/// connection could deadlock a small pool whose every connection holds such a transaction).
async fn read_range(
    conn: &mut PgConnection,
    after: Position,
    to: Position,
) -> Result<Vec<RecordedEvent>, ProjectionError> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    let mut from = after;
    loop {
        let chunk = LogReader::read_on(
            conn,
            from,
            &LogFilter::default(),
            1000,
            PersonalData::Sealed,
        )
        .await?;
        let Some(last) = chunk.last() else {
            return Ok(out);
        };
        from = last.position;
        out.extend(chunk.into_iter().filter(|e| e.position <= to));
        if from >= to {
            return Ok(out);
        }
    }
}

/// The events of `event`'s aggregate after sequence `applied` and before `event`, read from
/// the log; a gap error if the log cannot hand all of them out yet (the consumer retries).
async fn missing_events(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    applied: i64,
) -> Result<Vec<RecordedEvent>, ProjectionError> {
    let filter = LogFilter {
        aggregate_type: Some(event.aggregate_type.clone()),
        aggregate_id: Some(event.aggregate_id.clone()),
        ..LogFilter::default()
    };
    let wanted = usize::try_from(event.sequence - applied - 1).unwrap_or(0);
    let history = LogReader::read_on(
        conn,
        Position::START,
        &filter,
        usize::try_from(event.sequence).unwrap_or(0),
        PersonalData::Sealed,
    )
    .await?;
    let missing: Vec<RecordedEvent> = history
        .into_iter()
        .filter(|e| e.sequence > applied && e.sequence < event.sequence)
        .collect();
    let contiguous = missing
        .iter()
        .enumerate()
        .all(|(i, e)| e.sequence == applied + 1 + i as i64);
    if missing.len() != wanted || !contiguous {
        return Err(ProjectionError::SequenceGap {
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            expected: applied + 1,
        });
    }
    tracing::info!(aggregate_type = %event.aggregate_type, aggregate_id = %event.aggregate_id,
        from = applied + 1, to = event.sequence - 1, "filled a sequence gap from the log");
    Ok(missing)
}

/// Applies the PostgreSQL log from the projection's checkpoint to the head, in batches of
/// `batch_size` (a fresh projection, or a rebuild in `schema`). Returns the events read.
pub async fn catch_up(
    pool: &PgPool,
    projection: &dyn Projection,
    schema: &str,
    batch_size: usize,
) -> Result<u64, ProjectionError> {
    let reader = LogReader::new(pool.clone());
    let mut total = 0u64;
    loop {
        let from = ProjectionStatus::positions(pool, &[projection.name()])
            .await?
            .remove(projection.name())
            .unwrap_or(Position::START);
        let events = reader.read(from, &LogFilter::default(), batch_size).await?;
        if events.is_empty() {
            return Ok(total);
        }
        total += events.len() as u64;
        apply_batch(pool, projection, schema, &events).await?;
    }
}

/// What projection workers need.
#[derive(Clone)]
pub struct ProjectionDeps {
    /// Mercato's database (read models live in its `read` schema).
    pub pool: PgPool,
    /// A NATS connection.
    pub client: async_nats::Client,
    /// JetStream on it.
    pub js: jetstream::Context,
    /// Where the events stream is.
    pub nats: NatsConfig,
}

/// Feeds one projection from its durable consumer and keeps its lag up to date.
pub struct ProjectionWorker {
    projection: Arc<dyn Projection>,
    deps: ProjectionDeps,
    consumer: ConsumerConfig,
    lag_interval: Duration,
}

impl ProjectionWorker {
    /// A worker for `projection` with the default consumer settings (durable
    /// `projection-<name>`, every event: a checkpoint that saw the whole log up to its
    /// position is what read-your-writes compares tokens with).
    pub fn new(projection: Arc<dyn Projection>, deps: ProjectionDeps) -> Self {
        let mut consumer = ConsumerConfig::new(format!("projection-{}", projection.name()));
        // A batch costs a few statements whatever its size (ADR 0010): under load, apply
        // everything that has arrived at once.
        consumer.batch_size = 1024;
        Self {
            projection,
            deps,
            consumer,
            lag_interval: Duration::from_secs(1),
        }
    }

    /// A worker for the registered projection called `name`.
    pub fn named(name: &str, deps: ProjectionDeps) -> Result<Self, ProjectionError> {
        Ok(Self::new(find(name)?, deps))
    }

    /// Overrides the consumer settings (batch size, retry delay; tests).
    pub fn with_consumer(mut self, f: impl FnOnce(&mut ConsumerConfig)) -> Self {
        f(&mut self.consumer);
        self
    }

    /// Runs until `shutdown`, finishing the batch in hand. If the live tables were written by
    /// another version of the projection, first rebuilds them (zero downtime for readers: the
    /// old version is served, without updates, until the switch-over); `shutdown` during that
    /// rebuild stops it, resumable.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ProjectionError> {
        let name = self.projection.name();
        let options = crate::rebuild::RebuildOptions::default();
        let rebuild =
            crate::rebuild::rebuild_if_outdated(&self.deps.pool, self.projection.clone(), &options);
        let rebuilt = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = rebuild => r?,
        };
        if let Some(report) = rebuilt {
            tracing::info!(projection = name, version = report.version, position = %report.position,
                events = report.events, "rebuilt on start");
        }
        register(&self.deps.pool, &*self.projection).await?;
        let worker = Worker::bind(
            self.deps.client.clone(),
            self.deps.js.clone(),
            &self.deps.nats,
            self.consumer.clone(),
        )
        .await?;
        let lag = tokio::spawn(crate::lag::report_lag(
            self.deps.pool.clone(),
            name,
            self.lag_interval,
            shutdown.clone(),
        ));
        let handler = ProjectionHandler {
            pool: self.deps.pool.clone(),
            projection: self.projection.clone(),
        };
        let result = worker.run(&handler, shutdown.clone()).await;
        lag.abort();
        result?;
        tracing::info!(projection = name, "projection worker stopped");
        Ok(())
    }
}

/// Runs the named projections (every registered one when `names` is empty) until
/// `shutdown`; returns the first error after stopping the others.
pub async fn run_projections(
    names: &[String],
    deps: ProjectionDeps,
    shutdown: CancellationToken,
) -> Result<(), ProjectionError> {
    let projections: Vec<Arc<dyn Projection>> = if names.is_empty() {
        registry()
    } else {
        names.iter().map(|n| find(n)).collect::<Result<_, _>>()?
    };
    let mut set = JoinSet::new();
    for p in projections {
        let worker = ProjectionWorker::new(p, deps.clone());
        let token = shutdown.clone();
        set.spawn(async move { worker.run(token).await });
    }
    let mut first_error = None;
    while let Some(done) = set.join_next().await {
        let result = match done {
            Ok(r) => r,
            Err(e) => Err(ProjectionError::Invalid {
                event_id: Uuid::nil(),
                reason: format!("projection task panicked: {e}"),
            }),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "projection worker failed; stopping the others");
            shutdown.cancel();
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

struct ProjectionHandler {
    pool: PgPool,
    projection: Arc<dyn Projection>,
}

#[async_trait::async_trait]
impl Handler for ProjectionHandler {
    async fn handle(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        let events: Vec<RecordedEvent> = batch.iter().map(|d| d.event.clone()).collect();
        match apply_batch(&self.pool, &*self.projection, READ_SCHEMA, &events).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // A single failing event is what the runtime isolates; record it as the state.
                if batch.len() == 1 {
                    let _ = sqlx::query(
                        "UPDATE read.projection_status SET state = 'failed', error = $2, updated_at = now() WHERE name = $1",
                    )
                    .bind(self.projection.name())
                    .bind(e.to_string())
                    .execute(&self.pool)
                    .await;
                }
                Err(Box::new(e))
            }
        }
    }
}
