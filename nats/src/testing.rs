//! Test support: a stream and subject prefix of the test's own, a private nats-server for
//! restart tests, and helpers to compare the stream with the log.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{connect, ensure_topology, NatsConfig, Relay, RelayConfig};
use async_nats::jetstream;
use mercato_event_store::testing::counter::{Counter, CounterCommand, CounterServices};
use mercato_event_store::testing::TestDatabase;
use mercato_event_store::{AggregateStore, EventMetadata, RecordedEvent, SnapshotPolicy};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The NATS server tests use unless they start their own.
pub fn nats_url() -> String {
    std::env::var("MERCATO_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A test's own stream and subject prefix on a NATS server; both streams are deleted on drop.
pub struct TestNats {
    /// The test's stream names and subject prefix.
    pub config: NatsConfig,
    /// A connected client.
    pub client: async_nats::Client,
    /// JetStream on that client.
    pub js: jetstream::Context,
}

impl TestNats {
    /// On the shared test server.
    pub async fn new() -> Self {
        Self::on(&nats_url()).await
    }

    /// On the server at `url`.
    pub async fn on(url: &str) -> Self {
        Self::create(url, NatsConfig::default().duplicate_window, 1).await
    }

    /// On the shared test server, with a short duplicate window.
    pub async fn with_duplicate_window(window: Duration) -> Self {
        Self::create(&nats_url(), window, 1).await
    }

    /// On a cluster at `url`, with streams of `replicas` replicas.
    pub async fn replicated(url: &str, replicas: usize) -> Self {
        Self::create(url, NatsConfig::default().duplicate_window, replicas).await
    }

    async fn create(url: &str, duplicate_window: Duration, replicas: usize) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let config = NatsConfig {
            url: url.to_owned(),
            stream: format!("TEST_{id}"),
            subject_prefix: format!("t{id}"),
            duplicate_window,
            replicas,
        };
        let (client, js) = connect(&config, "mercato-test").await.unwrap();
        // A fresh cluster needs a few seconds to elect its JetStream meta leader.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while let Err(e) = ensure_topology(&js, &config).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "cannot create the test streams: {e}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Self { config, client, js }
    }

    /// Every message in the events stream, decoded, in stream order.
    pub async fn stream_events(&self) -> Vec<RecordedEvent> {
        self.messages(&self.config.stream)
            .await
            .into_iter()
            .map(|m| serde_json::from_slice(&m.payload).unwrap())
            .collect()
    }

    /// Every raw message of `stream`, in order.
    pub async fn messages(&self, stream: &str) -> Vec<jetstream::message::StreamMessage> {
        let state = self.stream_state(stream).await;
        let s = self.js.get_stream(stream).await.unwrap();
        let mut out = Vec::new();
        for seq in state.first_sequence.max(1)..=state.last_sequence {
            if let Ok(m) = s.get_raw_message(seq).await {
                out.push(m);
            }
        }
        out
    }

    /// Waits until the events stream holds `n` messages (or 30 s pass) and returns them.
    pub async fn wait_for_events(&self, n: usize) -> Vec<RecordedEvent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let count = self.stream_count(&self.config.stream).await;
            if count >= n as u64 || tokio::time::Instant::now() > deadline {
                return self.stream_events().await;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// How many messages `stream` holds. JetStream API calls fail for a moment while a
    /// cluster elects a new stream leader, so they are retried for up to 30 s.
    pub async fn stream_count(&self, stream: &str) -> u64 {
        self.stream_state(stream).await.messages
    }

    async fn stream_state(&self, stream: &str) -> async_nats::jetstream::stream::State {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let info = async {
                let mut s = self
                    .js
                    .get_stream(stream)
                    .await
                    .map_err(|e| e.to_string())?;
                s.info()
                    .await
                    .map(|i| i.state.clone())
                    .map_err(|e| e.to_string())
            };
            match info.await {
                Ok(state) => return state,
                Err(e) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "stream {stream}: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        let urls: Vec<String> = crate::topology::server_urls(&self.config.url)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let streams = [self.config.stream.clone(), self.config.dlq_stream()];
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let connect = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(2))
                    .connect(urls);
                if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(3), connect).await
                {
                    let js = jetstream::new(client);
                    for s in streams {
                        let _ = js.delete_stream(&s).await;
                    }
                }
            });
        })
        .join();
    }
}

/// A relay running in the background until stopped or aborted.
pub struct RunningRelay {
    /// Cancels it gracefully.
    pub shutdown: CancellationToken,
    /// Its task (abort it to simulate a crash).
    pub handle: JoinHandle<()>,
}

impl RunningRelay {
    /// Starts a relay over the test database and stream.
    pub fn start(db: &TestDatabase, nats: &TestNats, config: RelayConfig) -> Self {
        let relay = Relay::new(
            db.pool.clone(),
            db.config.clone(),
            nats.js.clone(),
            nats.config.clone(),
            config,
        );
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let handle = tokio::spawn(async move {
            relay.run(token).await.unwrap();
        });
        Self { shutdown, handle }
    }

    /// Graceful stop.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap();
    }
}

/// A relay configuration that reacts quickly in tests.
pub fn fast_relay() -> RelayConfig {
    RelayConfig {
        standby_poll: Duration::from_millis(100),
        retry_delay: Duration::from_millis(100),
        idle_poll: Duration::from_millis(200),
        ..RelayConfig::default()
    }
}

/// A store of test counters.
pub fn counters(db: &TestDatabase) -> AggregateStore<Counter> {
    AggregateStore::new(
        db.pool.clone(),
        CounterServices::default(),
        &SnapshotPolicy::never(),
    )
}

/// Appends `n` events spread over five aggregates `c0`..`c4`.
pub async fn append(store: &AggregateStore<Counter>, n: usize) {
    append_to(store, "c", n).await
}

/// Appends `n` events spread over five aggregates named `<prefix>0`..`<prefix>4`.
pub async fn append_to(store: &AggregateStore<Counter>, prefix: &str, n: usize) {
    for i in 0..n {
        store
            .execute(
                &format!("{prefix}{}", i % 5),
                CounterCommand::Add(1),
                &EventMetadata::for_actor("test"),
                None,
            )
            .await
            .unwrap();
    }
}

/// `writers` concurrent writers, each appending `each` events to aggregates of its own.
pub async fn append_concurrently(db: &TestDatabase, writers: usize, each: usize) {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = counters(db);
            tokio::spawn(async move { append_to(&store, &format!("w{w}-"), each).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer task");
    }
}

/// All events in log order, straight from PostgreSQL.
pub async fn log(db: &TestDatabase) -> Vec<RecordedEvent> {
    mercato_event_store::LogReader::new(db.pool.clone())
        .read(
            mercato_event_store::Position::START,
            &Default::default(),
            1_000_000,
        )
        .await
        .unwrap()
}

/// Asserts that the stream holds exactly the log: every event once, in log order.
pub fn assert_stream_is_log(stream: &[RecordedEvent], log: &[RecordedEvent]) {
    let s: Vec<_> = stream.iter().map(|e| (e.position, e.event_id)).collect();
    let l: Vec<_> = log.iter().map(|e| (e.position, e.event_id)).collect();
    assert_eq!(
        s.len(),
        l.len(),
        "stream has {} events, log has {}",
        s.len(),
        l.len()
    );
    assert_eq!(s, l, "stream order differs from log order");
}

/// A nats-server process of the test's own (for restart tests), on a free port.
pub struct PrivateNats {
    /// Its client URL.
    pub url: String,
    port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl PrivateNats {
    /// Starts a JetStream server with a fresh store on a free port.
    pub fn start() -> Self {
        Self::start_with(free_ports(1)[0], Vec::new())
    }

    fn start_with(port: u16, extra_args: Vec<String>) -> Self {
        let dir = std::env::temp_dir().join(format!("mercato-nats-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut me = Self {
            url: format!("nats://127.0.0.1:{port}"),
            port,
            dir,
            extra_args,
            child: None,
        };
        me.spawn();
        me
    }

    fn spawn(&mut self) {
        let bin = std::env::var("MERCATO_NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
        let child = Command::new(bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed (deploy/local/stack.sh installs it)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "private nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no goodbye to clients, no flush.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

/// A three-node JetStream cluster of the test's own (replicated streams, node failures).
pub struct PrivateNatsCluster {
    /// The client URLs of every node, comma-separated (what `NatsConfig::url` takes).
    pub url: String,
    /// The nodes.
    pub nodes: Vec<PrivateNats>,
}

impl PrivateNatsCluster {
    /// Starts three routed JetStream servers on free ports.
    pub fn start() -> Self {
        let ports = free_ports(6);
        let (clients, routes) = ports.split_at(3);
        let name = format!("mercato-test-{}", Uuid::new_v4().simple());
        let nodes: Vec<PrivateNats> = (0..3)
            .map(|i| {
                let others: Vec<String> = (0..3)
                    .filter(|j| *j != i)
                    .map(|j| format!("nats://127.0.0.1:{}", routes[j]))
                    .collect();
                let args = vec![
                    "--server_name".to_owned(),
                    format!("n{i}"),
                    "--cluster_name".to_owned(),
                    name.clone(),
                    "--cluster".to_owned(),
                    format!("nats://127.0.0.1:{}", routes[i]),
                    "--routes".to_owned(),
                    others.join(","),
                ];
                PrivateNats::start_with(clients[i], args)
            })
            .collect();
        let url = nodes
            .iter()
            .map(|n| n.url.clone())
            .collect::<Vec<_>>()
            .join(",");
        Self { url, nodes }
    }
}

/// `n` distinct free ports (all bound at once, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("bound").port())
        .collect()
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
