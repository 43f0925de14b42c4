//! The application: connections, the admin listener, and a supervisor over its parts.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use mercato_nats::{ensure_topology, Relay};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// Which long-running parts a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// The outbox relay.
    pub relay: bool,
}

impl Parts {
    /// Everything (`mercato serve`).
    pub fn all() -> Self {
        Self { relay: true }
    }

    /// Only the relay (`mercato relay`).
    pub fn relay_only() -> Self {
        Self { relay: true }
    }
}

/// A built, not yet running, Mercato process.
pub struct Application {
    admin: TcpListener,
    admin_addr: SocketAddr,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
    shutdown: CancellationToken,
    grace: Duration,
}

/// Creates the database if needed and applies migrations.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    mercato_event_store::database::prepare(&settings.database())
        .await
        .context("cannot prepare the database")?;
    tracing::info!("database migrated");
    Ok(())
}

/// Builds the application and runs it until a signal or a part's failure.
pub async fn run(settings: Settings, parts: Parts) -> anyhow::Result<()> {
    let app = Application::build(settings, parts).await?;
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        shutdown.cancel();
    });
    app.run_until_stopped().await
}

impl Application {
    /// Connects, migrates, creates the JetStream topology and binds the admin listener.
    pub async fn build(settings: Settings, parts: Parts) -> anyhow::Result<Self> {
        let database = settings.database();
        let pool = mercato_event_store::database::prepare(&database)
            .await
            .context("cannot prepare the database")?;
        let nats = settings.nats();
        let (_client, js) = mercato_nats::connect(&nats, "mercato")
            .await
            .context("cannot connect to nats")?;
        ensure_topology(&js, &nats)
            .await
            .context("cannot create the jetstream topology")?;
        let admin = TcpListener::bind(settings.admin_addr)
            .await
            .with_context(|| format!("cannot bind the admin listener {}", settings.admin_addr))?;
        let admin_addr = admin.local_addr()?;

        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
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
        Ok(Self {
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
