//! `mercato events`: the event log for analysts, exported to files or followed live.
//!
//! Both commands read PostgreSQL, the source of truth, in the log's one total order
//! (`docs/adr/0002-gap-safe-global-log.md`), so an export is a consistent prefix of history
//! and a tail never skips an event that commits late.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use arrow_array::builder::{
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use mercato_event_store::{
    LogFilter, LogReader, PersonalData, Position, RecordedEvent, EVENTS_CHANNEL,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::mpsc;

/// Which events to read. Every option narrows the selection; the order is always the log's.
#[derive(Debug, Clone, Default, Args)]
pub struct Selection {
    /// Only events of this aggregate type (Product, Stock, Cart, Order, Payment, Customer).
    #[arg(long)]
    pub aggregate_type: Option<String>,
    /// Only events of this aggregate (a SKU, or an order, cart, payment or customer id).
    #[arg(long)]
    pub aggregate_id: Option<String>,
    /// Only these event types, e.g. `--event-type OrderPlaced,OrderCancelled`.
    #[arg(long = "event-type", value_delimiter = ',')]
    pub event_types: Vec<String>,
    /// Only events recorded at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
    #[arg(long)]
    pub from_time: Option<DateTime<Utc>>,
    /// Only events recorded before this time (RFC 3339).
    #[arg(long)]
    pub to_time: Option<DateTime<Utc>>,
    /// Start at this position, inclusive (a `Mercato-Position` token such as `1234.56`).
    #[arg(long, conflicts_with = "after")]
    pub from_position: Option<Position>,
    /// Start just after this position (resume from the last position you saw).
    #[arg(long)]
    pub after: Option<Position>,
    /// Stop at this position, inclusive.
    #[arg(long)]
    pub to_position: Option<Position>,
    /// Include personal data (names, emails, phones, addresses) in the clear; without it
    /// every personal value is `{"$subject": ..., "$redacted": true}`. An erased subject's
    /// values are `$erased` either way.
    #[arg(long)]
    pub include_personal_data: bool,
}

impl Selection {
    fn start(&self) -> Position {
        if let Some(after) = self.after {
            return after;
        }
        match self.from_position {
            // Positions order as (tx_id, global_position) pairs and global positions are at
            // least 1, so nothing lies between (tx, gp - 1) and (tx, gp).
            Some(p) => Position::new(p.tx_id(), p.global_position() - 1),
            None => Position::START,
        }
    }

    fn reader(&self, pool: PgPool) -> LogReader {
        LogReader::new(pool).with_personal_data(if self.include_personal_data {
            PersonalData::Revealed
        } else {
            PersonalData::Redacted
        })
    }

    fn filter(&self) -> LogFilter {
        LogFilter {
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
            recorded_from: self.from_time,
            recorded_to: self.to_time,
            event_types: self.event_types.clone(),
            until: self.to_position,
        }
    }
}

/// File formats of `mercato events export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line (the same shape as `events tail`).
    Jsonl,
    /// RFC 4180 CSV with a header; payload and metadata as JSON text.
    Csv,
    /// Apache Parquet with typed columns (zstd); opens in DuckDB, pandas, Spark.
    Parquet,
}

/// `mercato events export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Which events.
    #[command(flatten)]
    pub selection: Selection,
    /// Output format; by default taken from the file extension, else JSON Lines.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write to this file instead of stdout (a progress bar then shows on stderr).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Events read per query.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
}

/// `mercato events tail`.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// Which events.
    #[command(flatten)]
    pub selection: Selection,
    /// Keep following new events as they commit (Ctrl-C stops).
    #[arg(long, short)]
    pub follow: bool,
    /// When following, how often to look for new events if no notification arrives.
    #[arg(long, default_value_t = 500)]
    pub poll_ms: u64,
}

impl ExportArgs {
    fn format(&self) -> Format {
        if let Some(format) = self.format {
            return format;
        }
        let extension = self
            .output
            .as_ref()
            .and_then(|p| p.extension())
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("csv") => Format::Csv,
            Some("parquet") | Some("pq") => Format::Parquet,
            _ => Format::Jsonl,
        }
    }
}

/// Exports the selected events; returns how many were written.
pub async fn export(pool: PgPool, args: ExportArgs) -> anyhow::Result<u64> {
    let reader = args.selection.reader(pool);
    let filter = args.selection.filter();
    let mut after = args.selection.start();
    let to_file = args.output.as_ref().is_some_and(|p| p.as_os_str() != "-");
    let progress = if to_file {
        let total = reader.count(after, &filter).await?;
        let bar = ProgressBar::new(u64::try_from(total).unwrap_or_default());
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {human_pos}/{human_len} events  {per_sec}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let output: Box<dyn Write + Send> = match &args.output {
        Some(path) if to_file => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        _ => Box::new(io::stdout()),
    };
    let mut sink = sink(args.format(), BufWriter::with_capacity(1 << 20, output))?;

    // Reading and writing overlap: PostgreSQL fills the next batch while this one is encoded.
    let (tx, mut rx) = mpsc::channel::<Vec<RecordedEvent>>(2);
    let bar = progress.clone();
    let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let mut written = 0u64;
        while let Some(batch) = rx.blocking_recv() {
            sink.write(&batch)?;
            written += batch.len() as u64;
            bar.inc(batch.len() as u64);
        }
        sink.finish()?;
        Ok(written)
    });
    let batch_size = args.batch_size as usize;
    loop {
        let batch = reader.read(after, &filter, batch_size).await?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        let full = batch.len() == batch_size;
        if tx.send(batch).await.is_err() {
            break; // the writer failed; its error is reported below
        }
        if !full {
            break;
        }
    }
    drop(tx);
    let written = writer.await.context("the export writer stopped")??;
    progress.finish_and_clear();
    if to_file {
        tracing::info!(events = written, "export written");
    }
    Ok(written)
}

/// Prints the selected events as JSON Lines; with `follow`, keeps printing new ones.
pub async fn tail(pool: PgPool, args: TailArgs) -> anyhow::Result<()> {
    let reader = args.selection.reader(pool.clone());
    let filter = args.selection.filter();
    let mut after = args.selection.start();
    let mut listener = if args.follow {
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(EVENTS_CHANNEL).await?;
        Some(listener)
    } else {
        None
    };
    let poll = Duration::from_millis(args.poll_ms.max(10));
    let mut out = BufWriter::new(io::stdout().lock());
    loop {
        let batch = reader.read(after, &filter, 1000).await?;
        if let Some(last) = batch.last() {
            after = last.position;
            for event in &batch {
                if !write_line(&mut out, event)? {
                    return Ok(()); // the reader went away (`| head`)
                }
            }
            if !flush(&mut out)? {
                return Ok(());
            }
            if batch.len() == 1000 {
                continue;
            }
        }
        if filter.until.is_some_and(|until| after >= until) {
            return Ok(());
        }
        let Some(listener) = listener.as_mut() else {
            return Ok(());
        };
        // A notification wakes us at once; the poll covers NOTIFY being off and events the
        // horizon held back when we last looked.
        tokio::select! {
            _ = listener.recv() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

fn write_line(out: &mut impl Write, event: &RecordedEvent) -> anyhow::Result<bool> {
    let result = serde_json::to_writer(&mut *out, event)
        .map_err(io::Error::from)
        .and_then(|()| out.write_all(b"\n"));
    handle_pipe(result)
}

fn flush(out: &mut impl Write) -> anyhow::Result<bool> {
    handle_pipe(out.flush())
}

fn handle_pipe(result: io::Result<()>) -> anyhow::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Encodes batches of events into one output format.
trait Sink: Send {
    fn write(&mut self, events: &[RecordedEvent]) -> anyhow::Result<()>;
    fn finish(self: Box<Self>) -> anyhow::Result<()>;
}

type Output = BufWriter<Box<dyn Write + Send>>;

fn sink(format: Format, out: Output) -> anyhow::Result<Box<dyn Sink>> {
    Ok(match format {
        Format::Jsonl => Box::new(JsonLines(out)),
        Format::Csv => Box::new(Csv::new(out)?),
        Format::Parquet => Box::new(Parquet::new(out)?),
    })
}

struct JsonLines(Output);

impl Sink for JsonLines {
    fn write(&mut self, events: &[RecordedEvent]) -> anyhow::Result<()> {
        for event in events {
            if !write_line(&mut self.0, event)? {
                bail!("the output was closed");
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        handle_pipe(self.0.flush()).map(|_| ())
    }
}

struct Csv(csv::Writer<Output>);

const CSV_HEADER: [&str; 10] = [
    "position",
    "event_id",
    "recorded_at",
    "aggregate_type",
    "aggregate_id",
    "sequence",
    "event_type",
    "event_version",
    "payload",
    "metadata",
];

impl Csv {
    fn new(out: Output) -> anyhow::Result<Self> {
        let mut writer = csv::Writer::from_writer(out);
        writer.write_record(CSV_HEADER)?;
        Ok(Self(writer))
    }
}

impl Sink for Csv {
    fn write(&mut self, events: &[RecordedEvent]) -> anyhow::Result<()> {
        for e in events {
            self.0.write_record([
                e.position.to_string(),
                e.event_id.to_string(),
                e.recorded_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                e.aggregate_type.clone(),
                e.aggregate_id.clone(),
                e.sequence.to_string(),
                e.event_type.clone(),
                e.event_version.clone(),
                e.payload.to_string(),
                serde_json::to_string(&e.metadata)?,
            ])?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        self.0.flush()?;
        Ok(())
    }
}

struct Parquet {
    writer: ArrowWriter<Output>,
    schema: SchemaRef,
}

/// The Parquet schema: one typed column per event field; payload and metadata are JSON text.
pub fn parquet_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("position", DataType::Utf8, false),
        Field::new("tx_id", DataType::UInt64, false),
        Field::new("global_position", DataType::Int64, false),
        Field::new("event_id", DataType::Utf8, false),
        Field::new(
            "recorded_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("aggregate_type", DataType::Utf8, false),
        Field::new("aggregate_id", DataType::Utf8, false),
        Field::new("sequence", DataType::Int64, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("event_version", DataType::Utf8, false),
        Field::new("payload", DataType::Utf8, false),
        Field::new("metadata", DataType::Utf8, false),
    ]))
}

impl Parquet {
    fn new(out: Output) -> anyhow::Result<Self> {
        let schema = parquet_schema();
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_size(128 * 1024)
            .build();
        let writer = ArrowWriter::try_new(out, schema.clone(), Some(properties))?;
        Ok(Self { writer, schema })
    }
}

impl Sink for Parquet {
    fn write(&mut self, events: &[RecordedEvent]) -> anyhow::Result<()> {
        let n = events.len();
        let mut position = StringBuilder::with_capacity(n, n * 12);
        let mut tx_id = UInt64Builder::with_capacity(n);
        let mut global_position = Int64Builder::with_capacity(n);
        let mut event_id = StringBuilder::with_capacity(n, n * 36);
        let mut recorded_at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut aggregate_type = StringBuilder::new();
        let mut aggregate_id = StringBuilder::new();
        let mut sequence = Int64Builder::with_capacity(n);
        let mut event_type = StringBuilder::new();
        let mut event_version = StringBuilder::new();
        let mut payload = StringBuilder::new();
        let mut metadata = StringBuilder::new();
        for e in events {
            position.append_value(e.position.to_string());
            tx_id.append_value(e.position.tx_id());
            global_position.append_value(e.position.global_position());
            event_id.append_value(e.event_id.to_string());
            recorded_at.append_value(e.recorded_at.timestamp_micros());
            aggregate_type.append_value(&e.aggregate_type);
            aggregate_id.append_value(&e.aggregate_id);
            sequence.append_value(e.sequence);
            event_type.append_value(&e.event_type);
            event_version.append_value(&e.event_version);
            payload.append_value(e.payload.to_string());
            metadata.append_value(serde_json::to_string(&e.metadata)?);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(position.finish()),
            Arc::new(tx_id.finish()),
            Arc::new(global_position.finish()),
            Arc::new(event_id.finish()),
            Arc::new(recorded_at.finish()),
            Arc::new(aggregate_type.finish()),
            Arc::new(aggregate_id.finish()),
            Arc::new(sequence.finish()),
            Arc::new(event_type.finish()),
            Arc::new(event_version.finish()),
            Arc::new(payload.finish()),
            Arc::new(metadata.finish()),
        ];
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.writer.write(&batch)?;
        Ok(())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        let mut out = self.writer.into_inner()?;
        out.flush()?;
        Ok(())
    }
}
