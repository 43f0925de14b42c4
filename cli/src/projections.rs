//! `mercato projections`: what the read models are doing, and zero-downtime rebuilds.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mercato_projections::rebuild::{
    rebuild, rebuild_all, RebuildOptions, RebuildPhase, RebuildProgress, RebuildReport,
};
use mercato_projections::status::{status as overview, ProjectionOverview};
use sqlx::PgPool;

/// `mercato projections ...`.
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// A table of every read-model projection: version, position, lag, state.
    Status,
    /// Rebuild a projection (or all) from the event log in shadow tables while the live
    /// version keeps serving, then switch over atomically.
    ///
    /// Ctrl-C leaves the live version untouched; running the same command again resumes.
    /// The search index is per query-API replica: to rebuild one, stop the replica, delete
    /// its MERCATO_INDEX_DIR and start it again (it replays the stream while the other
    /// replicas serve).
    Rebuild(RebuildArgs),
}

/// `mercato projections rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The projection (`catalog`, `stock`, `carts`, `orders`, `customers`, `sales`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub name: Option<String>,
    /// Rebuild every projection, reading the log once.
    #[arg(long)]
    pub all: bool,
    /// Events applied per transaction.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(100..=1_000_000))]
    pub batch_size: u32,
}

/// Runs a `projections` subcommand.
pub async fn run(pool: PgPool, command: ProjectionsCommand) -> anyhow::Result<()> {
    match command {
        ProjectionsCommand::Status => {
            let rows = overview(&pool).await?;
            let mut out = std::io::stdout().lock();
            out.write_all(render(&rows).as_bytes())?;
            Ok(())
        }
        ProjectionsCommand::Rebuild(args) => rebuild_command(pool, args).await,
    }
}

/// The status table as text.
pub fn render(rows: &[ProjectionOverview]) -> String {
    let mut text = format!(
        "{:<12} {:>8} {:>22} {:>10} {:>9}  {}\n",
        "PROJECTION", "VERSION", "POSITION", "LAG", "LAG (s)", "STATE"
    );
    for row in rows {
        let version = match row.version {
            Some(v) if v == row.code_version => v.to_string(),
            Some(v) => format!("{v}->{}", row.code_version),
            None => format!("-/{}", row.code_version),
        };
        let mut state = row.state.to_string();
        if let Some(error) = &row.error {
            state.push_str(&format!(": {error}"));
        }
        if let Some(shadow) = &row.rebuild {
            let activity = if shadow.running {
                "running"
            } else {
                "paused; rerun to resume"
            };
            state.push_str(&format!(
                " (rebuild v{} {activity}, {} events behind)",
                shadow.version, shadow.lag_events
            ));
        }
        text.push_str(&format!(
            "{:<12} {:>8} {:>22} {:>10} {:>9.1}  {}\n",
            row.name,
            version,
            row.position.to_string(),
            row.lag_events,
            row.lag_seconds,
            state
        ));
    }
    text
}

async fn rebuild_command(pool: PgPool, args: RebuildArgs) -> anyhow::Result<()> {
    let options = RebuildOptions {
        batch_size: args.batch_size as usize,
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:<22} {bar:40} {human_pos}/{human_len} events  {per_sec}  ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |p: &RebuildProgress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        let phase = match p.phase {
            RebuildPhase::Replaying => "replaying",
            RebuildPhase::Indexing => "indexing",
            RebuildPhase::Switching => "switching over",
            RebuildPhase::Done => "done",
        };
        bar.set_message(match p.projection {
            Some(name) => format!("{name}: {phase}"),
            None => phase.to_owned(),
        });
    };
    let work = async {
        match &args.name {
            Some(name) => rebuild(&pool, name, &options, progress)
                .await
                .map(|report| vec![report]),
            None => rebuild_all(&pool, &options, progress).await,
        }
    };
    let reports: Vec<RebuildReport> = tokio::select! {
        result = work => result.context("the rebuild failed; the live version is untouched")?,
        _ = tokio::signal::ctrl_c() => {
            bar.abandon_with_message("interrupted");
            eprintln!("rebuild interrupted: the live version is untouched; run the same command again to resume");
            return Ok(());
        }
    };
    bar.finish_and_clear();
    for report in reports {
        println!(
            "{}: version {} live at {} ({} events in {:.1} s)",
            report.projection,
            report.version,
            report.position,
            report.events,
            report.elapsed.as_secs_f64()
        );
    }
    Ok(())
}
