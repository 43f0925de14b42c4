//! `mercato privacy`: master keys of personal data (ADR 0013).

use clap::Subcommand;
use mercato_event_store::privacy::{rotate, MasterKey};
use sqlx::PgPool;

use crate::Settings;

/// `mercato privacy ...`.
#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// Print a new random master key (base64), for MERCATO_DATA_KEY.
    NewKey,
    /// Rewrap every data key under the current master key (MERCATO_DATA_KEY), unwrapping
    /// with the previous ones (MERCATO_DATA_KEY_PREVIOUS). Safe to rerun and to run while
    /// Mercato serves; afterwards the previous keys can be dropped.
    ///
    /// Rotation: give every process the new key as MERCATO_DATA_KEY and the old one in
    /// MERCATO_DATA_KEY_PREVIOUS, restart them, run this, then remove the old key.
    Rotate,
}

/// Runs a `privacy` subcommand.
pub async fn run(settings: &Settings, command: PrivacyCommand) -> anyhow::Result<()> {
    match command {
        PrivacyCommand::NewKey => {
            let (key, text) = MasterKey::generate();
            eprintln!("master key id {}", key.id());
            println!("{text}");
            Ok(())
        }
        PrivacyCommand::Rotate => {
            let keys = settings.master_keys(false)?;
            let pool = connect(settings).await?;
            let done = rotate(&pool, &keys).await?;
            println!(
                "rewrapped {} data keys; {} are now under master key {}",
                done.rewrapped,
                done.current,
                keys.current().id()
            );
            Ok(())
        }
    }
}

async fn connect(settings: &Settings) -> anyhow::Result<PgPool> {
    crate::migrate(settings).await?;
    Ok(mercato_event_store::database::connect(&settings.database()).await?)
}
