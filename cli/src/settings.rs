//! Mercato's settings: local defaults, overridden by `MERCATO_*` environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use mercato_event_store::privacy::{MasterKey, MasterKeys};
use mercato_event_store::{DatabaseConfig, SnapshotPolicy};
use mercato_nats::{NatsConfig, RelayConfig};
use secrecy::SecretString;

/// Every setting of a Mercato process.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Settings (flag or MERCATO_* environment variable)")]
pub struct Settings {
    /// PostgreSQL URL; the database is created if it does not exist.
    #[arg(
        long,
        env = "MERCATO_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/mercato",
        hide_env_values = true,
        global = true
    )]
    pub database_url: SecretString,
    /// Connection pool size.
    #[arg(
        long,
        env = "MERCATO_DATABASE_MAX_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pub database_max_connections: u32,
    /// NATS URL (comma-separated for a cluster).
    #[arg(
        long,
        env = "MERCATO_NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    pub nats_url: String,
    /// Name of the JetStream events stream.
    #[arg(
        long,
        env = "MERCATO_STREAM",
        default_value = "MERCATO_EVENTS",
        global = true
    )]
    pub stream: String,
    /// First token of every subject (`<prefix>.events.<type>.<id>`).
    #[arg(
        long,
        env = "MERCATO_SUBJECT_PREFIX",
        default_value = "mercato",
        global = true
    )]
    pub subject_prefix: String,
    /// Replicas of the streams (3 on a NATS cluster).
    #[arg(
        long,
        env = "MERCATO_STREAM_REPLICAS",
        default_value_t = 1,
        global = true
    )]
    pub stream_replicas: usize,
    /// JetStream duplicate window in seconds (at least 120).
    #[arg(long, env = "MERCATO_DUPLICATE_WINDOW_SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(120..), global = true)]
    pub duplicate_window_secs: u64,
    /// Snapshot interval per aggregate type, e.g. `default=100,Stock=50,Order=off`.
    #[arg(long, env = "MERCATO_SNAPSHOT_EVERY", default_value = "default=100", value_parser = parse_snapshot_policy, global = true)]
    pub snapshot_every: SnapshotPolicy,
    /// Admin listener (`/metrics`, `/healthz`); port 0 picks a free port.
    #[arg(
        long,
        env = "MERCATO_ADMIN_ADDR",
        default_value = "127.0.0.1:9090",
        global = true
    )]
    pub admin_addr: SocketAddr,
    /// Announce appends with NOTIFY so the relay wakes at once. Off for write-heavy
    /// deployments: PostgreSQL serialises notifying commits (see docs/benchmarks.md); then
    /// set a short MERCATO_RELAY_IDLE_POLL_MS.
    #[arg(long, env = "MERCATO_EVENTS_NOTIFY", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub events_notify: bool,
    /// How often the relay looks for new events when no notification wakes it.
    #[arg(long, env = "MERCATO_RELAY_IDLE_POLL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub relay_idle_poll_ms: u64,
    /// Name of the relay's checkpoint and leadership lock.
    #[arg(
        long,
        env = "MERCATO_RELAY_NAME",
        default_value = "relay",
        global = true
    )]
    pub relay_name: String,
    /// Publishes the relay keeps in flight.
    #[arg(
        long,
        env = "MERCATO_RELAY_MAX_IN_FLIGHT",
        default_value_t = 256,
        global = true
    )]
    pub relay_max_in_flight: usize,
    /// Where the command API listens.
    #[arg(
        long,
        env = "MERCATO_COMMAND_API_ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub command_api_addr: SocketAddr,
    /// Where the query API listens.
    #[arg(
        long,
        env = "MERCATO_QUERY_API_ADDR",
        default_value = "127.0.0.1:8081",
        global = true
    )]
    pub query_api_addr: SocketAddr,
    /// Where the storefront and back office listen.
    #[arg(
        long,
        env = "MERCATO_STOREFRONT_ADDR",
        default_value = "127.0.0.1:8082",
        global = true
    )]
    pub storefront_addr: SocketAddr,
    /// The command API the storefront calls (`mercato storefront`; `serve` uses its own).
    #[arg(
        long,
        env = "MERCATO_COMMAND_API_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub command_api_url: String,
    /// The query API the storefront calls (`mercato storefront`; `serve` uses its own).
    #[arg(
        long,
        env = "MERCATO_QUERY_API_URL",
        default_value = "http://127.0.0.1:8081",
        global = true
    )]
    pub query_api_url: String,
    /// Mark the storefront's session cookie `Secure`: set it when shoppers reach the
    /// storefront over https (behind the gateway).
    #[arg(
        long,
        env = "MERCATO_STOREFRONT_SECURE_COOKIE",
        default_value_t = false,
        global = true
    )]
    pub storefront_secure_cookie: bool,
    /// HS256 secret for access tokens (at least 32 bytes); shared by every API process.
    /// Without it `mercato serve` makes a random one, so tokens do not survive a restart.
    #[arg(
        long,
        env = "MERCATO_JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub jwt_secret: Option<SecretString>,
    /// Lifetime of access tokens in seconds.
    #[arg(
        long,
        env = "MERCATO_TOKEN_TTL_SECS",
        default_value_t = 3600,
        global = true
    )]
    pub token_ttl_secs: u64,
    /// The back office login; without it nobody can log in as the admin.
    #[arg(long, env = "MERCATO_ADMIN_EMAIL", global = true)]
    pub admin_email: Option<String>,
    /// The back office password.
    #[arg(
        long,
        env = "MERCATO_ADMIN_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub admin_password: Option<SecretString>,
    /// Seconds stock stays reserved for an unpaid order before the order process cancels it.
    #[arg(
        long,
        env = "MERCATO_RESERVATION_TTL_SECS",
        default_value_t = 900,
        global = true
    )]
    pub reservation_ttl_secs: u64,
    /// Days after delivery within which a customer may return what they received.
    #[arg(
        long,
        env = "MERCATO_RETURN_WINDOW_DAYS",
        default_value_t = 30,
        global = true
    )]
    pub return_window_days: u32,
    /// The largest price or refund, in minor units (so that no total a read model keeps can
    /// overflow).
    #[arg(
        long,
        env = "MERCATO_MAX_AMOUNT",
        default_value_t = mercato_command_api::DEFAULT_MAX_AMOUNT,
        value_parser = clap::value_parser!(i64).range(1..),
        global = true
    )]
    pub max_amount: i64,
    /// The payment gateway (`test`: the test card processor, whose documented tokens
    /// approve, decline or time out; no money moves).
    #[arg(
        long,
        env = "MERCATO_PAYMENT_GATEWAY",
        default_value = "test",
        global = true
    )]
    pub payment_gateway: mercato_command_api::PaymentGatewayKind,
    /// OpenTelemetry collector (OTLP over HTTP, e.g. `http://otel-collector:4318`) to export
    /// traces to; without it no span leaves the process (trace ids still reach the logs and
    /// the events' metadata).
    #[arg(long, env = "MERCATO_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
    /// SMTP server for notification emails (`smtp://user:pass@host:587`); without it the
    /// rendered emails are only recorded in the `notifications` table.
    #[arg(long, env = "MERCATO_SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<SecretString>,
    /// Sender of notification emails.
    #[arg(
        long,
        env = "MERCATO_MAIL_FROM",
        default_value = "Mercato <orders@mercato.invalid>",
        global = true
    )]
    pub mail_from: String,
    /// This query-API replica's search index directory (each replica owns one).
    #[arg(
        long,
        env = "MERCATO_INDEX_DIR",
        default_value = "data/search-index",
        global = true
    )]
    pub index_dir: std::path::PathBuf,
    /// This query-API replica's id; names its durable search consumer, so it must be unique
    /// per replica (e.g. the pod name).
    #[arg(
        long,
        env = "MERCATO_REPLICA_ID",
        default_value = "local",
        global = true
    )]
    pub replica_id: String,
    /// Sign-in attempts per account (email) in 15 minutes before 429.
    #[arg(
        long,
        env = "MERCATO_LOGIN_ATTEMPTS_PER_ACCOUNT",
        default_value_t = 10,
        global = true
    )]
    pub login_attempts_per_account: u32,
    /// Failed sign-ins per client address in 15 minutes before 429.
    #[arg(
        long,
        env = "MERCATO_LOGIN_ATTEMPTS_PER_ADDRESS",
        default_value_t = 100,
        global = true
    )]
    pub login_attempts_per_address: u32,
    /// Registrations per client address in an hour before 429 (the admin is not limited).
    #[arg(
        long,
        env = "MERCATO_REGISTRATIONS_PER_ADDRESS",
        default_value_t = 20,
        global = true
    )]
    pub registrations_per_address: u32,
    /// Take the client address from the last `X-Forwarded-For` entry (set it when a proxy
    /// that appends it is the only way in).
    #[arg(long, env = "MERCATO_TRUST_FORWARDED_FOR", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub trust_forwarded_for: bool,
    /// Master key of personal data (32 bytes, base64; `mercato privacy new-key` makes one):
    /// wraps every data subject's key (ADR 0013). The same on every process. Takes
    /// precedence over MERCATO_DATA_KEY_FILE.
    #[arg(long, env = "MERCATO_DATA_KEY", hide_env_values = true, global = true)]
    pub data_key: Option<SecretString>,
    /// File holding the master key (base64). Without MERCATO_DATA_KEY and without this
    /// file, a process that serves creates it with a new key: keep it, and back it up apart
    /// from the database.
    #[arg(
        long,
        env = "MERCATO_DATA_KEY_FILE",
        default_value = "data/data-key",
        global = true
    )]
    pub data_key_file: std::path::PathBuf,
    /// Earlier master keys, comma-separated: they unwrap the data keys that
    /// `mercato privacy rotate` has not rewrapped yet.
    #[arg(
        long,
        env = "MERCATO_DATA_KEY_PREVIOUS",
        hide_env_values = true,
        global = true
    )]
    pub data_key_previous: Option<SecretString>,
    /// Browser origins allowed to call the APIs cross-origin, comma-separated
    /// (`https://shop.example,https://admin.shop.example`); none by default.
    #[arg(
        long,
        env = "MERCATO_CORS_ORIGINS",
        value_delimiter = ',',
        value_parser = parse_origin,
        global = true
    )]
    pub cors_origins: Vec<axum::http::HeaderValue>,
    /// How long a read with `Mercato-Min-Position` waits for the read models, in milliseconds.
    #[arg(
        long,
        env = "MERCATO_MIN_POSITION_WAIT_MS",
        default_value_t = 2000,
        global = true
    )]
    pub min_position_wait_ms: u64,
    /// Seconds allowed for a graceful shutdown before the process gives up waiting.
    #[arg(
        long,
        env = "MERCATO_SHUTDOWN_GRACE_SECS",
        default_value_t = 30,
        global = true
    )]
    pub shutdown_grace_secs: u64,
}

/// An origin: `scheme://host[:port]`, nothing more.
fn parse_origin(s: &str) -> Result<axum::http::HeaderValue, String> {
    let s = s.trim();
    let uri: axum::http::Uri = s
        .parse()
        .map_err(|e| format!("{s:?} is not an origin: {e}"))?;
    let plain = uri.scheme().is_some()
        && uri.authority().is_some()
        && matches!(uri.path(), "" | "/")
        && uri.query().is_none();
    if !plain {
        return Err(format!("{s:?} is not an origin (scheme://host[:port])"));
    }
    axum::http::HeaderValue::from_str(s.trim_end_matches('/')).map_err(|e| e.to_string())
}

fn parse_snapshot_policy(s: &str) -> Result<SnapshotPolicy, String> {
    s.parse()
        .map_err(|e: mercato_event_store::StoreError| e.to_string())
}

impl Settings {
    /// The master keys of personal data: MERCATO_DATA_KEY, else the key file. Without
    /// either, `create` makes the file with a new key (a process that serves); otherwise
    /// it is an error.
    pub fn master_keys(&self, create: bool) -> anyhow::Result<MasterKeys> {
        use anyhow::Context;
        use secrecy::ExposeSecret;
        let current = match &self.data_key {
            Some(key) => MasterKey::from_base64(key.expose_secret())
                .context("MERCATO_DATA_KEY is not a 32-byte base64 key")?,
            None => {
                let path = &self.data_key_file;
                match std::fs::read_to_string(path) {
                    Ok(text) => MasterKey::from_base64(&text).with_context(|| {
                        format!("{} does not hold a 32-byte base64 key", path.display())
                    })?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                        create_key_file(path)?
                    }
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!(
                                "no master data key: set MERCATO_DATA_KEY or MERCATO_DATA_KEY_FILE ({} cannot be read)",
                                path.display()
                            )
                        })
                    }
                }
            }
        };
        let previous = self
            .data_key_previous
            .as_ref()
            .map(|keys| {
                keys.expose_secret()
                    .split(',')
                    .filter(|k| !k.trim().is_empty())
                    .map(MasterKey::from_base64)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .context("MERCATO_DATA_KEY_PREVIOUS holds a key that is not 32 bytes of base64")?
            .unwrap_or_default();
        Ok(MasterKeys::new(current, previous))
    }

    /// The database part.
    pub fn database(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: self.database_url.clone(),
            max_connections: self.database_max_connections,
            notify: self.events_notify,
        }
    }

    /// The NATS part.
    pub fn nats(&self) -> NatsConfig {
        NatsConfig {
            url: self.nats_url.clone(),
            stream: self.stream.clone(),
            subject_prefix: self.subject_prefix.clone(),
            replicas: self.stream_replicas,
            duplicate_window: Duration::from_secs(self.duplicate_window_secs),
        }
    }

    /// The command API, order process and notification worker part.
    pub fn command_api(&self, jwt_secret: SecretString) -> mercato_command_api::CommandApiConfig {
        let mut config = mercato_command_api::CommandApiConfig::new(jwt_secret);
        config.addr = self.command_api_addr;
        config.token_ttl = Duration::from_secs(self.token_ttl_secs.max(60));
        config.admin_email = self.admin_email.clone();
        config.admin_password = self.admin_password.clone();
        config.reservation_ttl = Duration::from_secs(self.reservation_ttl_secs.max(1));
        config.return_window_days = self.return_window_days;
        config.throttle = mercato_command_api::ThrottleConfig {
            login_per_account: self.login_attempts_per_account,
            login_per_address: self.login_attempts_per_address,
            registrations_per_address: self.registrations_per_address,
            trust_forwarded_for: self.trust_forwarded_for,
            ..mercato_command_api::ThrottleConfig::default()
        };
        config.payment_gateway = self.payment_gateway;
        config.max_amount = self.max_amount;
        config.smtp_url = self.smtp_url.clone();
        config.mail_from = self.mail_from.clone();
        config.consumer_prefix = self.subject_prefix.clone();
        config.cors_origins = self.cors_origins.clone();
        config
    }

    /// The storefront on its own (`mercato storefront`), calling the configured APIs.
    pub fn storefront(&self) -> mercato_storefront::StorefrontConfig {
        mercato_storefront::StorefrontConfig {
            addr: self.storefront_addr,
            command_api: self.command_api_url.clone(),
            query_api: self.query_api_url.clone(),
            secure_cookie: self.storefront_secure_cookie,
            ..mercato_storefront::StorefrontConfig::new()
        }
    }

    /// The query API's settings.
    pub fn query_api(&self, jwt_secret: SecretString) -> mercato_query_api::QueryApiConfig {
        let mut config = mercato_query_api::QueryApiConfig::new(jwt_secret);
        config.addr = self.query_api_addr;
        config.index_dir = self.index_dir.clone();
        config.replica_id = self.replica_id.clone();
        config.min_position_wait = Duration::from_millis(self.min_position_wait_ms);
        config.cors_origins = self.cors_origins.clone();
        config
    }

    /// The relay part.
    pub fn relay(&self) -> RelayConfig {
        RelayConfig {
            name: self.relay_name.clone(),
            max_in_flight: self.relay_max_in_flight.max(1),
            idle_poll: Duration::from_millis(self.relay_idle_poll_ms),
            ..RelayConfig::default()
        }
    }
}

/// Writes a new master key to `path` (owner-only permissions) and returns it; if another
/// process made the file first, theirs.
fn create_key_file(path: &std::path::Path) -> anyhow::Result<MasterKey> {
    use std::io::Write;
    let (key, text) = MasterKey::generate();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // Written aside, then linked into place: the file appears whole or not at all.
    let staged = path.with_extension(format!("new-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&staged)?;
    writeln!(file, "{text}")?;
    file.sync_all()?;
    let linked = std::fs::hard_link(&staged, path);
    std::fs::remove_file(&staged)?;
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return MasterKey::from_base64(&std::fs::read_to_string(path)?)
                .map_err(anyhow::Error::from);
        }
        Err(e) => return Err(e.into()),
    }
    tracing::warn!(path = %path.display(), key_id = key.id(),
        "created a new master data key; keep this file and back it up apart from the database \
         (without it no personal data can be read), or set MERCATO_DATA_KEY");
    Ok(key)
}
