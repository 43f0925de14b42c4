//! The outbox relay: publishes the PostgreSQL log to JetStream, in log order, exactly once in
//! effect.
//!
//! - Only one relay publishes at a time: leadership is a PostgreSQL advisory lock held on a
//!   dedicated connection; standbys retry every `standby_poll` and take over when it is freed
//!   (the leader's session ends when its process dies).
//! - Each publish carries `Nats-Expected-Last-Sequence`, so the stream can only ever grow by
//!   the next event in log order: a lost publish fails every later one in the window instead
//!   of leaving a gap, and a deposed leader that still publishes is refused.
//! - On taking over, and after any publish error, the relay re-reads the stream's last message,
//!   checks that its event is in this database's log, and continues after its
//!   `Mercato-Position`: events published before a crash but not yet checkpointed are never
//!   sent twice, however long the relay was down. `Nats-Msg-Id` (the event id) adds
//!   JetStream's duplicate window as a second guard. A stream that does not match the log, or
//!   an event that cannot be published, stops the relay (`NatsError::Inconsistent`).
//! - Publishes stay in flight across batches and the next batch is read while the current one
//!   is published; the checkpoint row moves only to acknowledged positions.
//!
//! See `docs/adr/0003-outbox-relay.md`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tracing::Instrument as _;

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::{self, message::PublishMessage};
use mercato_event_store::checkpoint::Checkpoint;
use mercato_event_store::{
    CheckpointStore, DatabaseConfig, EncodedEvent, LogReader, Position, EVENTS_CHANNEL,
};
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::config::NatsConfig;
use crate::error::NatsError;
use crate::headers;

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Name of the checkpoint row and of the leadership lock.
    pub name: String,
    /// Events read from the log per batch.
    pub batch_size: usize,
    /// Publishes awaiting their ack at once.
    pub max_in_flight: usize,
    /// Slow poll when no notification arrives (a fallback; notifications wake the relay).
    pub idle_poll: Duration,
    /// Fast poll while committed events are held back by an open transaction.
    pub held_back_poll: Duration,
    /// How often a standby tries to take the lock.
    pub standby_poll: Duration,
    /// Back-off after an error before trying again.
    pub retry_delay: Duration,
    /// How often lag metrics are refreshed.
    pub metrics_interval: Duration,
    /// Longest time between checkpoint writes while events flow (also written when idle
    /// and on shutdown). Restarts resume from the stream's tail, so this bounds only how
    /// stale the checkpoint row looks, never what is published.
    pub checkpoint_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            name: "relay".into(),
            batch_size: 500,
            max_in_flight: 256,
            idle_poll: Duration::from_secs(1),
            held_back_poll: Duration::from_millis(10),
            standby_poll: Duration::from_secs(1),
            retry_delay: Duration::from_millis(500),
            metrics_interval: Duration::from_secs(2),
            checkpoint_interval: Duration::from_millis(250),
        }
    }
}

/// How long the leader waits for its lock connection to answer before it steps down.
const LOCK_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes the event log to JetStream; see the module documentation.
pub struct Relay {
    pool: PgPool,
    database: DatabaseConfig,
    js: jetstream::Context,
    nats: NatsConfig,
    config: RelayConfig,
}

/// Where the stream ends: what to expect before the next publish.
#[derive(Debug, Clone, Copy)]
struct StreamTail {
    last_sequence: u64,
    /// The last message's position and event id.
    last: Option<(Position, uuid::Uuid)>,
}

impl Relay {
    /// A relay over `pool`'s log, publishing through `js`.
    pub fn new(
        pool: PgPool,
        database: DatabaseConfig,
        js: jetstream::Context,
        nats: NatsConfig,
        config: RelayConfig,
    ) -> Self {
        Self {
            pool,
            database,
            js,
            nats,
            config,
        }
    }

    /// Runs until `shutdown`: waits for leadership, then publishes; steps down and waits again
    /// whenever the lock connection is lost.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), NatsError> {
        let key = lock_key(&self.config.name);
        metrics::gauge!("mercato_relay_leader", "relay" => self.config.name.clone()).set(0.0);
        // From the start, so that a first error is an increase.
        metrics::counter!("mercato_relay_publish_errors_total").increment(0);
        while !shutdown.is_cancelled() {
            let mut lock_conn = match self.try_lead(key).await {
                Ok(Some(conn)) => conn,
                Ok(None) => {
                    sleep_or_cancel(self.config.standby_poll, &shutdown).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "relay cannot reach postgresql for its lock");
                    sleep_or_cancel(self.config.retry_delay, &shutdown).await;
                    continue;
                }
            };
            tracing::info!(relay = %self.config.name, "relay is the leader");
            metrics::gauge!("mercato_relay_leader", "relay" => self.config.name.clone()).set(1.0);
            let result = self.lead(&mut lock_conn, &shutdown).await;
            metrics::gauge!("mercato_relay_leader", "relay" => self.config.name.clone()).set(0.0);
            // Ending the session releases the lock for a standby.
            let _ = lock_conn.close().await;
            match result {
                Ok(()) => tracing::info!(relay = %self.config.name, "relay stepped down"),
                // The stream holds what this relay did not write, or an event can never be
                // published: retrying cannot help and might publish out of order. Stop loudly.
                Err(e @ NatsError::Inconsistent { .. }) => {
                    tracing::error!(relay = %self.config.name, error = %e, "relay stopped: an operator must look");
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(relay = %self.config.name, error = %e, error_debug = ?e, "relay lost leadership or failed; retrying");
                    sleep_or_cancel(self.config.retry_delay, &shutdown).await;
                }
            }
        }
        Ok(())
    }

    async fn try_lead(&self, key: i64) -> Result<Option<PgConnection>, NatsError> {
        // Server-side keepalives: if this host vanishes, PostgreSQL ends the session (and frees
        // the lock for a standby) within about 25 s instead of the kernel's two hours.
        let opts = self.database.options()?.options([
            ("tcp_keepalives_idle", "10"),
            ("tcp_keepalives_interval", "5"),
            ("tcp_keepalives_count", "3"),
        ]);
        let mut conn = PgConnection::connect_with(&opts)
            .await
            .map_err(mercato_event_store::StoreError::from)?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await
            .map_err(mercato_event_store::StoreError::from)?;
        if locked {
            Ok(Some(conn))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// Publishes while the lock connection stays healthy. Returns `Ok` on shutdown.
    ///
    /// Up to `max_in_flight` publishes stay unacknowledged across batches, so reading the next
    /// batch overlaps waiting for the previous one's acks.
    async fn lead(
        &self,
        lock_conn: &mut PgConnection,
        shutdown: &CancellationToken,
    ) -> Result<(), NatsError> {
        let reader = LogReader::new(self.pool.clone());
        let checkpoints = CheckpointStore::new(self.pool.clone());
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(mercato_event_store::StoreError::from)?;
        listener
            .listen(EVENTS_CHANNEL)
            .await
            .map_err(mercato_event_store::StoreError::from)?;

        let mut state = self.resync(&checkpoints).await?;
        let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(self.config.max_in_flight);
        let mut last_lock_check = Instant::now();
        let mut last_metrics: Option<Instant> = None;
        let mut prefetched: Option<Vec<EncodedEvent>> = None;

        loop {
            if shutdown.is_cancelled() {
                // Finish what is in flight so the checkpoint is as fresh as it can be.
                if drain(&mut in_flight, &mut state).await.is_ok() {
                    self.save(&checkpoints, &mut state).await?;
                }
                return Ok(());
            }
            if last_lock_check.elapsed() >= self.config.standby_poll {
                // A leader that cannot prove it still holds its session steps down.
                let check = tokio::time::timeout(
                    LOCK_CHECK_TIMEOUT,
                    sqlx::query("SELECT 1").execute(&mut *lock_conn),
                )
                .await;
                match check {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(mercato_event_store::StoreError::from(e).into()),
                    Err(_) => {
                        return Err(NatsError::js(
                            "leadership check",
                            "the lock connection did not answer in time",
                        ))
                    }
                }
                last_lock_check = Instant::now();
            }
            if last_metrics.is_none_or(|t| t.elapsed() >= self.config.metrics_interval) {
                self.report_lag(&reader, state.acked.position).await;
                last_metrics = Some(Instant::now());
            }

            let read_started = Instant::now();
            let batch = match prefetched.take() {
                Some(batch) => batch,
                None => {
                    reader
                        .read_encoded(state.cursor, self.config.batch_size)
                        .await?
                }
            };
            let read_time = read_started.elapsed();

            let Some(last) = batch.last().map(|e| e.position) else {
                // Idle: settle every ack (and, now and then, the checkpoint) before waiting.
                if let Err(e) = drain(&mut in_flight, &mut state).await {
                    state = self
                        .recover(e, &checkpoints, &mut in_flight, shutdown)
                        .await?;
                    continue;
                }
                if state.last_saved.elapsed() >= self.config.checkpoint_interval {
                    self.save(&checkpoints, &mut state).await?;
                }
                let wait = if reader.has_unread(state.cursor).await? {
                    self.config.held_back_poll
                } else {
                    self.config.idle_poll
                };
                // A notification of a commit since the last read is still queued here, so an
                // empty (possibly prefetched) batch never makes the relay sleep past new events.
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = listener.recv() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            };

            // Read the next batch while this one is published: its start is already known.
            // A short batch was all there was to read: whatever commits after that read
            // notifies, so the relay waits for that rather than read an empty batch.
            let publish_started = Instant::now();
            let events = batch.len();
            let more = events >= self.config.batch_size;
            let (published, next) =
                tokio::join!(self.publish(batch, &mut in_flight, &mut state), async {
                    if more {
                        reader.read_encoded(last, self.config.batch_size).await
                    } else {
                        Ok(Vec::new())
                    }
                });
            if let Err(e) = published {
                state = self
                    .recover(e, &checkpoints, &mut in_flight, shutdown)
                    .await?;
                continue;
            }
            prefetched = Some(next?);
            if state.last_saved.elapsed() >= self.config.checkpoint_interval {
                self.save(&checkpoints, &mut state).await?;
            }
            tracing::debug!(
                events,
                in_flight = in_flight.len(),
                read_ms = read_time.as_secs_f64() * 1e3,
                publish_ms = publish_started.elapsed().as_secs_f64() * 1e3,
                "batch sent"
            );
        }
    }

    /// Sends `batch` in order, keeping at most `max_in_flight` publishes unacknowledged.
    async fn publish(
        &self,
        batch: Vec<EncodedEvent>,
        in_flight: &mut VecDeque<InFlight>,
        state: &mut LeaderState,
    ) -> Result<(), NatsError> {
        for event in batch {
            while in_flight.len() >= self.config.max_in_flight {
                if let Some(oldest) = in_flight.pop_front() {
                    settle(oldest, state).await?;
                }
            }
            let subject = self
                .nats
                .event_subject(&event.aggregate_type, &event.aggregate_id);
            let mut headers = headers::of_event(&event);
            // The relay's hop joins the event's trace, and consumers continue from it.
            let span = tracing::info_span!("relay_publish", event_type = %event.event_type, event_id = %event.event_id);
            if event.traceparent.is_some() {
                mercato_telemetry::continue_trace(&span, event.traceparent.as_deref());
                if let Some(tp) = span.in_scope(mercato_telemetry::traceparent) {
                    headers.insert(headers::TRACEPARENT, tp.as_str());
                }
            }
            let payload = bytes::Bytes::from(event.body.into_bytes());
            // This publish can only land right after the previous one.
            headers.insert(
                async_nats::header::NATS_EXPECTED_LAST_SEQUENCE,
                state.next_expected.to_string().as_str(),
            );
            let ack = self
                .js
                .send_publish(
                    subject,
                    PublishMessage::build().payload(payload).headers(headers),
                )
                .instrument(span)
                .await
                .map_err(|e| match e.kind() {
                    PublishErrorKind::MaxPayloadExceeded => NatsError::Inconsistent {
                        stream: self.nats.stream.clone(),
                        reason: format!(
                            "event {} is larger than the server's max_payload",
                            event.event_id
                        ),
                    },
                    _ => NatsError::js("publish", e),
                })?;
            state.next_expected += 1;
            state.cursor = event.position;
            in_flight.push_back(InFlight {
                ack,
                sent: Instant::now(),
                recorded_at: event.recorded_at,
                position: event.position,
                event_id: event.event_id,
            });
        }
        Ok(())
    }

    /// Writes the acknowledged position if it moved.
    async fn save(
        &self,
        checkpoints: &CheckpointStore,
        state: &mut LeaderState,
    ) -> Result<(), NatsError> {
        if state.acked != state.saved {
            checkpoints.save(&self.config.name, state.acked).await?;
            state.saved = state.acked;
        }
        state.last_saved = Instant::now();
        Ok(())
    }

    /// After a publish error: forget what is in flight, back off, and continue after whatever
    /// the stream really holds.
    async fn recover(
        &self,
        error: NatsError,
        checkpoints: &CheckpointStore,
        in_flight: &mut VecDeque<InFlight>,
        shutdown: &CancellationToken,
    ) -> Result<LeaderState, NatsError> {
        tracing::warn!(error = %error, error_debug = ?error, "publish failed; re-syncing with the stream");
        metrics::counter!("mercato_relay_publish_errors_total").increment(1);
        in_flight.clear();
        sleep_or_cancel(self.config.retry_delay, shutdown).await;
        self.resync(checkpoints).await
    }

    /// Where to continue: after the stream's last message (the record of what was published),
    /// or after the checkpoint when the stream has no message to tell.
    async fn resync(&self, checkpoints: &CheckpointStore) -> Result<LeaderState, NatsError> {
        let saved = checkpoints.load(&self.config.name).await?;
        let tail = self.stream_tail().await?;
        let checkpoint = self.reconcile(saved, tail, checkpoints).await?;
        Ok(LeaderState {
            cursor: checkpoint.position,
            acked: checkpoint,
            saved: checkpoint,
            next_expected: tail.last_sequence,
            last_saved: Instant::now(),
        })
    }

    /// Reads the stream's last message: its sequence and the log position it carries.
    async fn stream_tail(&self) -> Result<StreamTail, NatsError> {
        let mut stream = self
            .js
            .get_stream(&self.nats.stream)
            .await
            .map_err(|e| NatsError::js("stream info", e))?;
        let state = stream
            .info()
            .await
            .map_err(|e| NatsError::js("stream info", e))?
            .state
            .clone();
        if state.messages == 0 || state.last_sequence == 0 {
            return Ok(StreamTail {
                last_sequence: state.last_sequence,
                last: None,
            });
        }
        let last = stream
            .get_raw_message(state.last_sequence)
            .await
            .map_err(|e| NatsError::js("stream get", e))?;
        let position = headers::get(&last.headers, headers::POSITION)
            .and_then(|p| p.parse::<Position>().ok())
            .ok_or_else(|| NatsError::Inconsistent {
                stream: self.nats.stream.clone(),
                reason: format!(
                    "message {} has no {} header: something other than the relay publishes to the events stream",
                    state.last_sequence,
                    headers::POSITION
                ),
            })?;
        let event_id = headers::get(&last.headers, async_nats::header::NATS_MESSAGE_ID.as_ref())
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .ok_or_else(|| NatsError::Inconsistent {
                stream: self.nats.stream.clone(),
                reason: format!("message {} has no event id", state.last_sequence),
            })?;
        Ok(StreamTail {
            last_sequence: state.last_sequence,
            last: Some((position, event_id)),
        })
    }

    /// The stream is the record of what was published: continue after its last message.
    async fn reconcile(
        &self,
        checkpoint: Checkpoint,
        tail: StreamTail,
        checkpoints: &CheckpointStore,
    ) -> Result<Checkpoint, NatsError> {
        let Some((published, event_id)) = tail.last else {
            return Ok(checkpoint);
        };
        // Trust the stream's end only if it is an event of this log: a stream shared with
        // another database, or a database restored to an earlier point, would otherwise make
        // the relay skip events for good.
        let known = LogReader::new(self.pool.clone())
            .contains(event_id, published)
            .await?;
        if !known {
            return Err(NatsError::Inconsistent {
                stream: self.nats.stream.clone(),
                reason: format!(
                    "its last message (event {event_id} at {published}) is not in this database's log: \
                     another deployment publishes to it, or the database was restored to an earlier point"
                ),
            });
        }
        if published == checkpoint.position {
            return Ok(checkpoint);
        }
        if published > checkpoint.position {
            tracing::info!(checkpoint = %checkpoint.position, stream = %published,
                "events were published before the last checkpoint was saved; skipping them");
        } else {
            tracing::warn!(checkpoint = %checkpoint.position, stream = %published,
                "the stream is behind the checkpoint (it lost messages); republishing from the stream's end");
        }
        let moved = Checkpoint {
            position: published,
            last_event_id: None,
        };
        checkpoints.reset(&self.config.name, moved).await?;
        Ok(moved)
    }

    async fn report_lag(&self, reader: &LogReader, position: Position) {
        match reader.health(position).await {
            Ok(h) => {
                metrics::gauge!("mercato_relay_lag_events").set(h.events_behind as f64);
                metrics::gauge!("mercato_relay_lag_seconds").set(h.seconds_behind);
                metrics::gauge!("mercato_log_held_back_events").set(h.held_back as f64);
                metrics::gauge!("mercato_log_oldest_open_transaction_seconds")
                    .set(h.oldest_open_transaction_seconds);
                if h.held_back > 0 && h.oldest_open_transaction_seconds > 10.0 {
                    tracing::warn!(
                        held_back = h.held_back,
                        oldest_open_transaction_seconds = h.oldest_open_transaction_seconds,
                        "a long-open transaction is holding back the event log"
                    );
                }
            }
            Err(e) => tracing::debug!(error = %e, "lag metrics unavailable"),
        }
    }
}

/// A publish awaiting its ack.
struct InFlight {
    ack: PublishAckFuture,
    sent: Instant,
    recorded_at: chrono::DateTime<chrono::Utc>,
    position: Position,
    event_id: uuid::Uuid,
}

/// The leader's view of its progress.
#[derive(Debug, Clone, Copy)]
struct LeaderState {
    /// The last event sent (reads continue after it).
    cursor: Position,
    /// The last event acknowledged by JetStream.
    acked: Checkpoint,
    /// The last checkpoint written.
    saved: Checkpoint,
    /// The stream sequence the next publish expects to follow.
    next_expected: u64,
    last_saved: Instant,
}

/// Awaits one ack and records it.
async fn settle(f: InFlight, state: &mut LeaderState) -> Result<(), NatsError> {
    let ack = f.ack.await.map_err(|e| NatsError::js("publish ack", e))?;
    metrics::histogram!("mercato_relay_publish_latency_seconds")
        .record(f.sent.elapsed().as_secs_f64());
    let since_commit = (chrono::Utc::now() - f.recorded_at)
        .to_std()
        .unwrap_or_default();
    metrics::histogram!("mercato_relay_commit_to_ack_seconds").record(since_commit.as_secs_f64());
    metrics::counter!("mercato_relay_published_total").increment(1);
    if ack.duplicate {
        // Only possible if something else wrote the same message id; the sequence did not move.
        return Err(NatsError::Inconsistent {
            stream: ack.stream,
            reason: format!("event {} was already in the stream", f.event_id),
        });
    }
    state.acked = Checkpoint {
        position: f.position,
        last_event_id: Some(f.event_id),
    };
    Ok(())
}

/// Awaits every outstanding ack, oldest first.
async fn drain(
    in_flight: &mut VecDeque<InFlight>,
    state: &mut LeaderState,
) -> Result<(), NatsError> {
    while let Some(f) = in_flight.pop_front() {
        settle(f, state).await?;
    }
    Ok(())
}

/// A stable advisory-lock key for a relay name.
fn lock_key(name: &str) -> i64 {
    let ns = uuid::Uuid::from_u128(0x6d65_7263_6174_6f2d_7265_6c61_7900_0000);
    let (hi, _) = uuid::Uuid::new_v5(&ns, name.as_bytes()).as_u64_pair();
    hi as i64
}

async fn sleep_or_cancel(d: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}
