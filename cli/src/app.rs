//! The application: connections, the admin listener, and a supervisor over its parts.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use mercato_command_api::{CommandApi, NotificationWorker, OrderProcessWorker};
use mercato_nats::{ensure_topology, Relay};
use mercato_query_api::QueryApi;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// Which long-running parts a process runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parts {
    /// The outbox relay (PostgreSQL events to JetStream).
    pub relay: bool,
    /// The command API (HTTP writes).
    pub command_api: bool,
    /// The query API (HTTP reads) with this replica's search index consumer.
    pub query_api: bool,
    /// The order process worker.
    pub order_process: bool,
    /// The notification worker.
    pub notifications: bool,
    /// Read-model projection workers: `None` runs none, an empty list runs every projection.
    pub projections: Option<Vec<String>>,
    /// The storefront and back office (HTML over the APIs).
    pub storefront: bool,
}

impl Parts {
    /// Everything in one process (`mercato serve`).
    pub fn all() -> Self {
        Self {
            relay: true,
            command_api: true,
            query_api: true,
            order_process: true,
            notifications: true,
            projections: Some(Vec::new()),
            storefront: true,
        }
    }

    /// Only the relay (`mercato relay`).
    pub fn relay_only() -> Self {
        Self {
            relay: true,
            ..Self::default()
        }
    }

    /// Only the command API (`mercato command-api`).
    pub fn command_api_only() -> Self {
        Self {
            command_api: true,
            ..Self::default()
        }
    }

    /// Only the query API (`mercato query-api`).
    pub fn query_api_only() -> Self {
        Self {
            query_api: true,
            ..Self::default()
        }
    }

    /// Whether a part serves HTTP to clients (and so needs the shared JWT secret).
    fn serves_http(&self) -> bool {
        self.command_api || self.query_api
    }
}

/// A built, not yet running, Mercato process.
pub struct Application {
    /// Where the command API listens, when this process runs it.
    pub command_api_addr: Option<std::net::SocketAddr>,
    /// Where the query API listens, when this process runs it.
    pub query_api_addr: Option<std::net::SocketAddr>,
    /// Where the storefront listens, when this process runs it.
    pub storefront_addr: Option<std::net::SocketAddr>,
    admin: TcpListener,
    admin_addr: SocketAddr,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
    shutdown: CancellationToken,
    grace: Duration,
}

/// Samples the connection pool every 5 s (`mercato_db_pool_connections{state}`,
/// `mercato_db_pool_max_connections`): a pool always in use is where 503s come from.
async fn report_pool(
    pool: sqlx::PgPool,
    max: u32,
    shutdown: CancellationToken,
) -> (&'static str, anyhow::Result<()>) {
    metrics::gauge!("mercato_db_pool_max_connections").set(f64::from(max));
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return ("db-pool-metrics", Ok(())),
            _ = tick.tick() => {}
        }
        let idle = pool.num_idle() as f64;
        let size = f64::from(pool.size());
        metrics::gauge!("mercato_db_pool_connections", "state" => "idle").set(idle);
        metrics::gauge!("mercato_db_pool_connections", "state" => "in_use").set(size - idle);
    }
}

/// Creates the database if needed and applies every crate's migrations.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let pool = prepare(settings).await?;
    pool.close().await;
    tracing::info!("database migrated");
    Ok(())
}

/// Creates the database, connects and applies the migrations of the event store, the
/// command side and the read models, in that order.
async fn prepare(settings: &Settings) -> anyhow::Result<sqlx::PgPool> {
    let pool = mercato_event_store::database::prepare(&settings.database())
        .await
        .context("cannot prepare the database")?;
    mercato_command_api::migrate(&pool)
        .await
        .context("cannot apply the command-side migrations")?;
    mercato_projections::migrate(&pool)
        .await
        .context("cannot apply the read-model migrations")?;
    Ok(pool)
}

/// `mercato serve`: every part in one process, and with `--demo` a demo shop.
pub async fn serve(mut settings: Settings, args: crate::ServeArgs) -> anyhow::Result<()> {
    if !args.demo {
        return run(settings, Parts::all()).await;
    }
    if settings.admin_email.is_none() || settings.admin_password.is_none() {
        let password: [u8; 12] = rand::random();
        let password: String = password.iter().map(|b| format!("{b:02x}")).collect();
        eprintln!("demo admin login: admin@mercato.local / {password} (set MERCATO_ADMIN_EMAIL and MERCATO_ADMIN_PASSWORD to choose your own)");
        settings.admin_email = Some("admin@mercato.local".to_owned());
        settings.admin_password = Some(SecretString::from(password));
    }
    let app = Application::build(settings.clone(), Parts::all()).await?;
    if let Some(addr) = app.storefront_addr {
        eprintln!("storefront:  http://{addr}/");
        eprintln!("back office: http://{addr}/admin (sign in with the admin login)");
    }
    let url = app
        .command_api_addr
        .map(|addr| format!("http://{addr}"))
        .context("serve runs the command api")?;
    let shutdown = app.shutdown_token();
    let pool = mercato_event_store::database::connect(&settings.database()).await?;
    // Joined rather than spawned: the seeding future is not `Send` (its request streams
    // borrow), and it must not count as a part whose end stops the process.
    let demo = async move {
        let seeded = tokio::select! {
            result = seed_demo(pool, settings, url) => result,
            _ = shutdown.cancelled() => return,
        };
        if let Err(e) = seeded {
            tracing::error!(error = %e, "the demo shop could not be seeded");
        }
    };
    let (served, ()) = tokio::join!(run_app(app), demo);
    served
}

/// Seeds the demo shop unless the catalog already has products.
async fn seed_demo(pool: sqlx::PgPool, settings: Settings, url: String) -> anyhow::Result<()> {
    let has_products = mercato_event_store::LogReader::new(pool.clone())
        .has_aggregate_type("Product")
        .await?;
    if has_products {
        tracing::info!("the shop already has products; not seeding demo data");
        return Ok(());
    }
    let (Some(email), Some(password)) = (&settings.admin_email, &settings.admin_password) else {
        anyhow::bail!("no admin login to seed with");
    };
    let args = crate::seed::SeedArgs {
        products: 300,
        customers: 30,
        orders: 60,
        api_url: None,
        concurrency: 8,
        seed: 42,
    };
    crate::seed::seed(args, url, email, password).await?;
    Ok(())
}

/// Builds the application and runs it until a signal or a part's failure.
pub async fn run(settings: Settings, parts: Parts) -> anyhow::Result<()> {
    run_app(Application::build(settings, parts).await?).await
}

async fn run_app(app: Application) -> anyhow::Result<()> {
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        shutdown.cancel();
    });
    app.run_until_stopped().await
}

impl Application {
    /// Connects, migrates, creates the JetStream topology and binds the listeners; starts
    /// nothing yet.
    pub async fn build(settings: Settings, parts: Parts) -> anyhow::Result<Self> {
        let database = settings.database();
        let pool = prepare(&settings).await?;
        let nats = settings.nats();
        let (client, js) = mercato_nats::connect(&nats, "mercato")
            .await
            .context("cannot connect to nats")?;
        ensure_topology(&js, &nats)
            .await
            .context("cannot create the jetstream topology")?;
        let admin = TcpListener::bind(settings.admin_addr)
            .await
            .with_context(|| format!("cannot bind the admin listener {}", settings.admin_addr))?;
        let admin_addr = admin.local_addr()?;
        let jwt_secret = jwt_secret(&settings, &parts)?;

        let shutdown = CancellationToken::new();
        let mut tasks: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();
        tasks.spawn(report_pool(
            pool.clone(),
            settings.database_max_connections,
            shutdown.clone(),
        ));
        if parts.relay {
            let relay = Relay::new(
                pool.clone(),
                database,
                js.clone(),
                nats.clone(),
                settings.relay(),
            );
            let token = shutdown.clone();
            tasks.spawn(
                async move { ("relay", relay.run(token).await.map_err(anyhow::Error::from)) },
            );
        }
        let command_deps = mercato_command_api::Deps {
            pool: pool.clone(),
            nats_client: client.clone(),
            js: js.clone(),
            nats: nats.clone(),
            snapshots: settings.snapshot_every.clone(),
        };
        let command_config = settings.command_api(jwt_secret.clone());
        let mut command_api_addr = None;
        let mut query_api_addr = None;
        if parts.command_api {
            let api = CommandApi::build(command_config.clone(), command_deps.clone())
                .await
                .with_context(|| {
                    format!(
                        "cannot start the command api on {}",
                        settings.command_api_addr
                    )
                })?;
            tracing::info!(addr = %api.local_addr(), "command api listening");
            command_api_addr = Some(api.local_addr());
            let token = shutdown.clone();
            tasks.spawn(async move { ("command-api", api.run(token).await) });
        }
        if parts.order_process {
            let worker = OrderProcessWorker::new(&command_config, &command_deps);
            let token = shutdown.clone();
            tasks.spawn(async move { ("order-process", worker.run(token).await) });
        }
        if parts.notifications {
            let worker = NotificationWorker::new(&command_config, &command_deps)
                .context("cannot configure the notification worker")?;
            let token = shutdown.clone();
            tasks.spawn(async move { ("notifications", worker.run(token).await) });
        }
        let read_deps = mercato_projections::ProjectionDeps {
            pool: pool.clone(),
            client: client.clone(),
            js: js.clone(),
            nats: nats.clone(),
        };
        if let Some(names) = parts.projections.clone() {
            for name in &names {
                mercato_projections::projection::find(name)?;
            }
            let deps = read_deps.clone();
            let token = shutdown.clone();
            tasks.spawn(async move {
                let result = mercato_projections::run_projections(&names, deps, token).await;
                ("projections", result.map_err(anyhow::Error::from))
            });
        }
        if parts.query_api {
            let api = QueryApi::build(settings.query_api(jwt_secret), read_deps)
                .await
                .with_context(|| {
                    format!("cannot start the query api on {}", settings.query_api_addr)
                })?;
            let addr = std::net::SocketAddr::new(settings.query_api_addr.ip(), api.port());
            tracing::info!(addr = %addr, "query api listening");
            query_api_addr = Some(addr);
            let token = shutdown.clone();
            tasks.spawn(async move {
                (
                    "query-api",
                    api.run(token).await.map_err(anyhow::Error::from),
                )
            });
        }
        let storefront_addr = if parts.storefront {
            Some(
                start_storefront(
                    &settings,
                    command_api_addr,
                    query_api_addr,
                    &mut tasks,
                    &shutdown,
                )
                .await?,
            )
        } else {
            None
        };
        Ok(Self {
            command_api_addr,
            query_api_addr,
            storefront_addr,
            admin,
            admin_addr,
            tasks,
            shutdown,
            grace: Duration::from_secs(settings.shutdown_grace_secs),
        })
    }

    /// The admin listener's port.
    pub fn admin_port(&self) -> u16 {
        self.admin_addr.port()
    }

    /// Cancelling it stops the application gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until shutdown is requested or a part stops; then stops every part gracefully.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            command_api_addr: _,
            query_api_addr: _,
            storefront_addr: _,
            admin,
            admin_addr,
            mut tasks,
            shutdown,
            grace,
        } = self;
        let token = shutdown.clone();
        tasks.spawn(async move {
            let router = mercato_telemetry::admin_router();
            let served = axum::serve(admin, router)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await;
            ("admin", served.map_err(anyhow::Error::from))
        });
        tracing::info!(addr = %admin_addr, "admin server listening");

        let mut failure = None;
        // The first part to stop, for whatever reason, stops them all.
        if let Some(joined) = tasks.join_next().await {
            let (part, result) = flatten(joined);
            if !shutdown.is_cancelled() {
                match &result {
                    Ok(()) => tracing::error!(part, "part stopped unexpectedly; shutting down"),
                    Err(e) => {
                        tracing::error!(part, error = %e, error_debug = ?e, "part failed; shutting down")
                    }
                }
                failure = Some(
                    result
                        .err()
                        .unwrap_or_else(|| anyhow::anyhow!("{part} stopped unexpectedly")),
                );
            }
            shutdown.cancel();
        }
        let drained = tokio::time::timeout(grace, async {
            while let Some(joined) = tasks.join_next().await {
                let (part, result) = flatten(joined);
                match result {
                    Ok(()) => tracing::info!(part, "part stopped"),
                    Err(e) => tracing::warn!(part, error = %e, "part stopped with an error"),
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "parts did not stop in time; aborting them"
            );
            tasks.abort_all();
        }
        match failure {
            Some(e) => Err(e),
            None => {
                tracing::info!("stopped");
                Ok(())
            }
        }
    }
}

/// Binds the storefront and spawns it; it calls this process's APIs when it runs them, the
/// configured URLs otherwise.
async fn start_storefront(
    settings: &Settings,
    command_api: Option<SocketAddr>,
    query_api: Option<SocketAddr>,
    tasks: &mut JoinSet<(&'static str, anyhow::Result<()>)>,
    shutdown: &CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let mut config = settings.storefront();
    if let Some(addr) = command_api {
        config.command_api = format!("http://{addr}");
    }
    if let Some(addr) = query_api {
        config.query_api = format!("http://{addr}");
    }
    let storefront = mercato_storefront::Storefront::build(config)
        .await
        .with_context(|| {
            format!(
                "cannot start the storefront on {}",
                settings.storefront_addr
            )
        })?;
    let addr = SocketAddr::new(settings.storefront_addr.ip(), storefront.port());
    tracing::info!(addr = %addr, "storefront listening");
    let token = shutdown.clone();
    tasks.spawn(async move {
        (
            "storefront",
            storefront.run(token).await.map_err(anyhow::Error::from),
        )
    });
    Ok(addr)
}

/// `mercato storefront`: the storefront alone, a client of the configured APIs (no database,
/// no NATS).
pub async fn run_storefront(settings: Settings) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    start_storefront(&settings, None, None, &mut tasks, &shutdown).await?;
    // Metrics and liveness on the admin port, as every Mercato process has them.
    let admin = TcpListener::bind(settings.admin_addr)
        .await
        .with_context(|| format!("cannot bind the admin listener {}", settings.admin_addr))?;
    tracing::info!(addr = %admin.local_addr()?, "admin server listening");
    let token = shutdown.clone();
    tasks.spawn(async move {
        let served = axum::serve(admin, mercato_telemetry::admin_router())
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await;
        ("admin", served.map_err(anyhow::Error::from))
    });
    let token = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        token.cancel();
    });
    while let Some(joined) = tasks.join_next().await {
        let (part, result) = flatten(joined);
        shutdown.cancel();
        result.with_context(|| format!("{part} stopped"))?;
    }
    Ok(())
}

/// The configured secret. Without one, a process gets a random secret: fine for one local
/// process, but its tokens do not survive a restart nor verify in another process.
fn jwt_secret(settings: &Settings, parts: &Parts) -> anyhow::Result<SecretString> {
    use secrecy::ExposeSecret;
    if let Some(secret) = &settings.jwt_secret {
        if secret.expose_secret().len() < 32 {
            anyhow::bail!("MERCATO_JWT_SECRET must be at least 32 bytes");
        }
        return Ok(secret.clone());
    }
    if parts.serves_http() {
        tracing::warn!(
            "MERCATO_JWT_SECRET is not set; using a random secret for this process only \
             (set it in production and whenever the APIs run as separate processes)"
        );
    }
    let bytes: [u8; 32] = rand::random();
    Ok(SecretString::from(
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    ))
}

fn flatten(
    joined: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>,
) -> (&'static str, anyhow::Result<()>) {
    match joined {
        Ok(r) => r,
        Err(e) => (
            "unknown",
            Err(anyhow::anyhow!("task panicked or was aborted: {e}")),
        ),
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
