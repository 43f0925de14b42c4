//! `mercato projections`: what the read models are doing, zero-downtime rebuilds, and the
//! events they parked.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mercato_nats::dead_letters::{dead_letters, DeadLetter};
use mercato_projections::parking::{self, ParkedEvent};
use mercato_projections::projection::find;
use mercato_projections::rebuild::{
    rebuild, rebuild_all, RebuildOptions, RebuildPhase, RebuildProgress, RebuildReport,
};
use mercato_projections::status::{status as overview, ProjectionOverview};
use sqlx::PgPool;
use uuid::Uuid;

use crate::Settings;

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
    /// The events projections could not apply and parked, with why (they went on without
    /// them).
    Parked {
        /// Only this projection's.
        name: Option<String>,
    },
    /// Applies a parked event now (after the fix that lets it apply) and unparks it.
    ///
    /// Right for projections that add up deltas (`sales`); for one that folds state
    /// (`orders`, `catalog`, ...) `rebuild` applies the log in order instead.
    Retry {
        /// The projection that parked it.
        name: String,
        /// The event.
        event_id: Uuid,
    },
    /// Drops a parked event from the list without applying it.
    Skip {
        /// The projection that parked it.
        name: String,
        /// The event.
        event_id: Uuid,
    },
    /// The dead-letter stream: messages a worker gave up on after its delivery limit.
    ///
    /// Projections park what they cannot apply (`parked`); their dead letters come only from
    /// failures that outlasted every retry, and the next batch reads those events from the
    /// log again. The order process's and the notification worker's are the operator's.
    DeadLetters {
        /// Only this worker's (`projection-sales`, `mercato-checkout`,
        /// `mercato-notifications`, `search-<replica>`).
        #[arg(long)]
        worker: Option<String>,
        /// At most this many, oldest first.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
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
pub async fn run(
    settings: &Settings,
    pool: PgPool,
    command: ProjectionsCommand,
) -> anyhow::Result<()> {
    match command {
        ProjectionsCommand::Status => {
            let rows = overview(&pool).await?;
            let mut out = std::io::stdout().lock();
            out.write_all(render(&rows).as_bytes())?;
            Ok(())
        }
        ProjectionsCommand::Rebuild(args) => rebuild_command(pool, args).await,
        ProjectionsCommand::Parked { name } => {
            if let Some(name) = &name {
                find(name)?;
            }
            let events = parking::parked(&pool, name.as_deref()).await?;
            let mut out = std::io::stdout().lock();
            out.write_all(render_parked(&events).as_bytes())?;
            Ok(())
        }
        ProjectionsCommand::Retry { name, event_id } => {
            parking::retry(&pool, &name, event_id)
                .await
                .with_context(|| format!("event {event_id} stays parked"))?;
            println!("{name}: applied event {event_id}");
            Ok(())
        }
        ProjectionsCommand::Skip { name, event_id } => {
            parking::skip(&pool, &name, event_id).await?;
            println!(
                "{name}: skipped event {event_id}; its effect stays missing from the read model"
            );
            Ok(())
        }
        ProjectionsCommand::DeadLetters { worker, limit } => {
            let nats = settings.nats();
            let (_client, js) = mercato_nats::connect(&nats, "mercato-cli").await?;
            let letters = dead_letters(&js, &nats, worker.as_deref(), limit).await?;
            let mut out = std::io::stdout().lock();
            out.write_all(render_dead_letters(&letters).as_bytes())?;
            Ok(())
        }
    }
}

/// The dead letters as text, one per line, then a count.
pub fn render_dead_letters(letters: &[DeadLetter]) -> String {
    let mut text = format!(
        "{:>6} {:<24} {:<36} {:<28} {:>5}  {}\n",
        "SEQ", "WORKER", "EVENT", "EVENT TYPE", "TRIES", "ERROR"
    );
    for letter in letters {
        let (id, kind) = match &letter.event {
            Some(e) => (e.event_id.to_string(), e.event_type.clone()),
            None => ("(not an event)".to_owned(), String::new()),
        };
        text.push_str(&format!(
            "{:>6} {:<24} {:<36} {:<28} {:>5}  {}\n",
            letter.sequence, letter.worker, id, kind, letter.deliveries, letter.error
        ));
    }
    text.push_str(&format!("{} dead letters\n", letters.len()));
    text
}

/// The parked events as text, one per line, then a count.
pub fn render_parked(events: &[ParkedEvent]) -> String {
    let mut text = format!(
        "{:<12} {:<36} {:>22} {:<28} {}\n",
        "PROJECTION", "EVENT", "POSITION", "EVENT TYPE", "ERROR"
    );
    for e in events {
        text.push_str(&format!(
            "{:<12} {:<36} {:>22} {:<28} {} (aggregate {} {} #{}, parked {})\n",
            e.projection,
            e.event_id,
            e.position.to_string(),
            e.event_type,
            e.error,
            e.aggregate_type,
            e.aggregate_id,
            e.sequence,
            e.parked_at.format("%Y-%m-%d %H:%M:%S UTC"),
        ));
    }
    text.push_str(&format!("{} parked\n", events.len()));
    text
}

/// The status table as text.
pub fn render(rows: &[ProjectionOverview]) -> String {
    let mut text = format!(
        "{:<12} {:>8} {:>22} {:>10} {:>9} {:>7}  {}\n",
        "PROJECTION", "VERSION", "POSITION", "LAG", "LAG (s)", "PARKED", "STATE"
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
            "{:<12} {:>8} {:>22} {:>10} {:>9.1} {:>7}  {}\n",
            row.name,
            version,
            row.position.to_string(),
            row.lag_events,
            row.lag_seconds,
            row.parked,
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
