//! `mercato`: the one binary of Mercato.
#![forbid(unsafe_code)]

use clap::Parser;
use mercato_cli::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    mercato_telemetry::init("mercato");
    // Before any part starts, so no early metric is dropped.
    mercato_telemetry::metrics();
    match cli.command {
        Command::Migrate => mercato_cli::migrate(&cli.settings).await,
        Command::Serve => mercato_cli::run(cli.settings, mercato_cli::Parts::all()).await,
        Command::Relay => mercato_cli::run(cli.settings, mercato_cli::Parts::relay_only()).await,
    }
}
