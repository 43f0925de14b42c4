//! The `mercato` command line: settings, the application and its supervisor.
#![forbid(unsafe_code)]

mod app;
pub mod events;
pub mod privacy;
pub mod projections;
pub mod seed;
mod settings;

pub use app::{migrate, run, run_storefront, serve, Application, Parts};
pub use settings::Settings;

use clap::{Parser, Subcommand};

/// Mercato: an event-sourced commerce backend.
///
/// Every setting can be given as a flag or as the environment variable shown beside it;
/// the defaults fit the local stack that `deploy/local/stack.sh` starts.
#[derive(Debug, Parser)]
#[command(name = "mercato", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
    /// Connection and tuning settings.
    #[command(flatten)]
    pub settings: Settings,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: migrations, the command API (:8080), the query API
    /// (:8081), the storefront and back office (:8082), the relay, the projection workers, the order process and the notification
    /// worker. Ctrl-C stops it gracefully.
    ///
    /// With `--demo` it also fills an empty shop with demo data (`mercato seed`).
    Serve(ServeArgs),
    /// Run only the command API (HTTP writes); scale it out behind a load balancer.
    CommandApi,
    /// Run only the query API (HTTP reads) with its own search index replica
    /// (give each replica its own MERCATO_REPLICA_ID and MERCATO_INDEX_DIR).
    QueryApi,
    /// Run only the storefront and back office (:8082), a client of the APIs at
    /// MERCATO_COMMAND_API_URL and MERCATO_QUERY_API_URL; it needs no database.
    Storefront,
    /// Run background workers: read-model projections, the order process, notifications.
    /// Without flags it runs all of them.
    ///
    /// Example: `mercato worker --projection catalog --projection stock`
    Worker(WorkerArgs),
    /// Create the database if it is missing and apply the migrations, then exit.
    Migrate,
    /// Run only the outbox relay (run several: one leads, the others stand by).
    Relay,
    /// Fill a demo shop through a running command API: products with stock in two
    /// warehouses, customers and past orders.
    ///
    /// Example (with `mercato serve` running and MERCATO_ADMIN_EMAIL/PASSWORD set):
    /// `mercato seed --products 500 --customers 50 --orders 200`
    Seed(seed::SeedArgs),
    /// Read-model projections: status and zero-downtime rebuilds.
    #[command(subcommand)]
    Projections(projections::ProjectionsCommand),
    /// Read the event log: export it to files or follow it live.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Personal data: master keys and their rotation.
    #[command(subcommand)]
    Privacy(privacy::PrivacyCommand),
}

/// `mercato serve` options.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Once the APIs are up, fill an empty shop with a demo catalog, customers and orders.
    /// Without MERCATO_ADMIN_EMAIL/PASSWORD it makes an admin login and prints it.
    #[arg(long)]
    pub demo: bool,
}

/// `mercato worker`: which workers to run.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// A projection to run (repeatable); `all` runs every projection.
    #[arg(long = "projection", value_name = "NAME")]
    pub projections: Vec<String>,
    /// Run the order process (checkout, shipments, cancellations, returns, refunds).
    #[arg(long, alias = "checkout")]
    pub order_process: bool,
    /// Run the notification worker.
    #[arg(long)]
    pub notifications: bool,
}

impl WorkerArgs {
    /// The parts these flags select.
    pub fn parts(&self) -> Parts {
        let nothing_chosen =
            self.projections.is_empty() && !self.order_process && !self.notifications;
        let projections = if nothing_chosen || self.projections.iter().any(|p| p == "all") {
            Some(Vec::new())
        } else if self.projections.is_empty() {
            None
        } else {
            Some(self.projections.clone())
        };
        Parts {
            order_process: nothing_chosen || self.order_process,
            notifications: nothing_chosen || self.notifications,
            projections,
            ..Parts::default()
        }
    }
}

/// `mercato events ...`: the event log for analysts.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Export events in log order to JSON Lines, CSV or Parquet (a file or stdout).
    ///
    /// Example: `mercato events export --aggregate-type Order --from-time 2026-11-01T00:00:00Z -o orders.parquet`
    Export(events::ExportArgs),
    /// Print events as JSON Lines from a position onwards; `--follow` keeps printing new ones.
    ///
    /// Example: `mercato events tail --after 1234.56 --follow --event-type OrderPlaced`
    Tail(events::TailArgs),
}
