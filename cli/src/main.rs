//! `mercato`: the one binary of Mercato.
#![forbid(unsafe_code)]

use clap::Parser;
use mercato_cli::{Cli, Command, EventsCommand, Parts};
use mercato_telemetry::LogTarget;

// mimalloc: glibc malloc took a quarter of a projection rebuild's CPU time in its many
// small allocations (JSON trees of events and rows); see docs/benchmarks.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Their stdout is data; logs go to stderr.
    let logs = match cli.command {
        Command::Events(_) | Command::Projections(_) | Command::Seed(_) | Command::Privacy(_) => {
            LogTarget::Stderr
        }
        _ => LogTarget::Stdout,
    };
    mercato_telemetry::init(
        service_name(&cli.command),
        logs,
        cli.settings.otlp_endpoint.as_deref(),
    )?;
    let result = run(cli).await;
    mercato_telemetry::shutdown();
    result
}

/// The service a trace shows for this process.
fn service_name(command: &Command) -> &'static str {
    match command {
        Command::Serve(_) => "mercato",
        Command::CommandApi => "mercato-command-api",
        Command::QueryApi => "mercato-query-api",
        Command::Storefront => "mercato-storefront",
        Command::Worker(_) => "mercato-worker",
        Command::Relay => "mercato-relay",
        _ => "mercato-cli",
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Before any part starts, so no early metric is dropped.
    mercato_telemetry::metrics();
    // The master keys of personal data (ADR 0013): a process that serves makes the key file
    // if there is none; a tool uses them if configured (and fails where it needs them).
    let serves = matches!(
        cli.command,
        Command::Serve(_)
            | Command::CommandApi
            | Command::QueryApi
            | Command::Worker(_)
            | Command::Relay
            | Command::Migrate
    );
    if !matches!(
        cli.command,
        Command::Seed(_) | Command::Privacy(_) | Command::Storefront
    ) {
        match cli.settings.master_keys(serves) {
            Ok(keys) => mercato_event_store::privacy::install(keys)?,
            Err(e) if !serves => tracing::debug!(error = %e, "no master data key"),
            Err(e) => return Err(e),
        }
    }
    match cli.command {
        Command::Migrate => mercato_cli::migrate(&cli.settings).await,
        Command::Serve(args) => mercato_cli::serve(cli.settings, args).await,
        Command::Relay => mercato_cli::run(cli.settings, Parts::relay_only()).await,
        Command::CommandApi => mercato_cli::run(cli.settings, Parts::command_api_only()).await,
        Command::QueryApi => mercato_cli::run(cli.settings, Parts::query_api_only()).await,
        Command::Storefront => mercato_cli::run_storefront(cli.settings).await,
        Command::Worker(args) => mercato_cli::run(cli.settings, args.parts()).await,
        Command::Seed(args) => {
            let settings = &cli.settings;
            let (Some(email), Some(password)) = (&settings.admin_email, &settings.admin_password)
            else {
                anyhow::bail!("seeding needs the admin login: set MERCATO_ADMIN_EMAIL and MERCATO_ADMIN_PASSWORD");
            };
            let url = args
                .api_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", settings.command_api_addr));
            mercato_cli::seed::seed(args, url, email, password)
                .await
                .map(|_| ())
        }
        Command::Projections(command) => {
            // The read-model schema must exist for a status on a fresh database.
            mercato_cli::migrate(&cli.settings).await?;
            let pool = mercato_event_store::database::connect(&cli.settings.database()).await?;
            mercato_cli::projections::run(&cli.settings, pool, command).await
        }
        Command::Events(command) => {
            let pool = mercato_event_store::database::connect(&cli.settings.database()).await?;
            match command {
                EventsCommand::Export(args) => {
                    mercato_cli::events::export(pool, args).await.map(|_| ())
                }
                EventsCommand::Tail(args) => mercato_cli::events::tail(pool, args).await,
            }
        }
        Command::Privacy(command) => mercato_cli::privacy::run(&cli.settings, command).await,
    }
}
