//! `commands`: HTTP writes at 32 connections, driven by wrk, through `mercato serve` (every
//! worker running: relay, projections, order process, notifications) beside a minimal
//! service built the default way on the same crates — axum and postgres-es's
//! `postgres_cqrs`, an aggregate with one event per command and one view updated inline, as
//! the cqrs-es demo does — on its own scratch database in the same run.
//!
//! Two loads each: a write spread over many aggregates (Mercato: a stock receipt per request;
//! the baseline: a deposit), and every write on one hot aggregate. Successful writes per
//! second, latency percentiles, and the share of answers that were not 2xx (409 conflicts).
//! Then reads of what the writes made: Mercato's stock GET on the query API, the baseline's
//! view GET, and PostgreSQL's own primary-key select (`pgbench -S`) at the same concurrency.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{GenericQuery, ViewRepository};
use cqrs_es::{Aggregate, AggregateError, DomainEvent, EventEnvelope, View};
use postgres_es::{PostgresCqrs, PostgresViewRepository};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

use crate::report::ratio;
use crate::setup::BenchEnv;

/// How hard and how long.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent HTTP connections (wrk `-c`).
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Seconds per load.
    #[arg(long, default_value_t = 15)]
    seconds: u32,
    /// Aggregates the spread load writes to.
    #[arg(long, default_value_t = 1_000)]
    aggregates: u32,
}

pub async fn run(env: &BenchEnv, args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        which("wrk"),
        "wrk is missing: deploy/local/stack.sh installs it (Debian package wrk)"
    );
    anyhow::ensure!(args.aggregates > 0 && args.connections > 0 && args.seconds > 0);

    // Mercato, as `mercato serve` runs it.
    let stop = CancellationToken::new();
    let (mercato, mercato_reads, token) = start_mercato(env, &stop).await?;
    let ours_spread = wrk(
        mercato,
        &token,
        "/v1/stock/BENCH-%04d/receipts",
        r#"{"warehouse":"main","quantity":1}"#,
        args.aggregates,
        args,
    )?;
    let ours_hot = wrk(
        mercato,
        &token,
        "/v1/stock/BENCH-%04d/receipts",
        r#"{"warehouse":"main","quantity":1}"#,
        1,
        args,
    )?;
    // Reads of what the writes made (the stock read model), once the projection has it all.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ours_reads = wrk(
        mercato_reads,
        "",
        "/v1/stock/BENCH-%04d",
        "",
        args.aggregates,
        args,
    )?;
    stop.cancel();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The baseline, on its own database.
    let baseline_url = baseline_database(env).await?;
    let stop_baseline = CancellationToken::new();
    let baseline = start_baseline(&baseline_url, &stop_baseline).await?;
    let base_spread = wrk(
        baseline,
        "",
        "/accounts/acct-%04d/deposit",
        r#"{"amount":1}"#,
        args.aggregates,
        args,
    )?;
    let base_hot = wrk(
        baseline,
        "",
        "/accounts/acct-%04d/deposit",
        r#"{"amount":1}"#,
        1,
        args,
    )?;
    let base_reads = wrk(
        baseline,
        "",
        "/accounts/acct-%04d",
        "",
        args.aggregates,
        args,
    )?;
    stop_baseline.cancel();
    let pk_selects = pgbench_select(env, args).await?;

    println!(
        "### commands: HTTP writes, {} connections, {} s per load (wrk)\n",
        args.connections, args.seconds
    );
    println!(
        "| load | service | successful writes/s | p50 ms | p99 ms | not 2xx | ratio (writes/s) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (load, ours, base) in [
        (
            format!("{} aggregates", args.aggregates),
            &ours_spread,
            &base_spread,
        ),
        ("1 hot aggregate".to_owned(), &ours_hot, &base_hot),
    ] {
        println!(
            "| {load} | baseline (axum + postgres-es) | {} | |",
            base.cells()
        );
        println!(
            "| {load} | mercato serve | {} | {} |",
            ours.cells(),
            ratio(ours.successful_per_second(), base.successful_per_second())
        );
    }
    println!(
        "\n### reads: {} connections, {} s per load (wrk; pgbench -S)\n",
        args.connections, args.seconds
    );
    println!("| read | answers/s | p50 ms | p99 ms | not 2xx | mercato / it |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| mercato: `GET /v1/stock/{{sku}}` (query API) | {} | |",
        ours_reads.cells()
    );
    println!(
        "| baseline: `GET /accounts/{{id}}` (view) | {} | {} |",
        base_reads.cells(),
        ratio(
            ours_reads.successful_per_second(),
            base_reads.successful_per_second()
        )
    );
    println!(
        "| PostgreSQL: primary-key select (`pgbench -S`) | {pk_selects:.0} | | | | {} |",
        ratio(ours_reads.successful_per_second(), pk_selects)
    );
    Ok(())
}

/// `pgbench -S` (a primary-key select per transaction) at the same concurrency, on a scratch
/// database of scale 1 (100,000 rows): selects per second.
async fn pgbench_select(env: &BenchEnv, args: &Args) -> anyhow::Result<f64> {
    let url = env.scratch_database("pgbench").await?;
    let init = std::process::Command::new("pgbench")
        .args(["-i", "-q", "-s", "1", &url])
        .output()
        .context("pgbench runs (Debian package postgresql-client)")?;
    anyhow::ensure!(init.status.success(), "pgbench -i failed");
    let run = std::process::Command::new("pgbench")
        .args(["-S", "-n", "-j", "2"])
        .args([
            "-c",
            &args.connections.to_string(),
            "-T",
            &args.seconds.to_string(),
        ])
        .arg(&url)
        .output()?;
    let text = String::from_utf8_lossy(&run.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse::<f64>().ok())
        .with_context(|| format!("unexpected pgbench output: {text}"))
}

/// What wrk measured.
#[derive(Debug, Default)]
struct Measured {
    requests: u64,
    not_2xx: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Measured {
    fn successful_per_second(&self) -> f64 {
        (self.requests - self.not_2xx.min(self.requests)) as f64 / self.seconds
    }

    fn cells(&self) -> String {
        format!(
            "{:.0} | {:.1} | {:.1} | {:.2}%",
            self.successful_per_second(),
            self.p50_ms,
            self.p99_ms,
            100.0 * self.not_2xx as f64 / self.requests.max(1) as f64
        )
    }
}

/// Runs wrk against `addr`: POSTs of `body` (GETs when it is empty) to `path` (a `%04d`
/// pattern) over `spread` aggregates.
fn wrk(
    addr: SocketAddr,
    token: &str,
    path: &str,
    body: &str,
    spread: u32,
    args: &Args,
) -> anyhow::Result<Measured> {
    let script = std::env::temp_dir().join(format!("mercato-bench-{}.lua", uuid::Uuid::new_v4()));
    std::fs::write(
        &script,
        format!(
            r#"{method}
{auth}
local spread = {spread}
function setup(thread) thread:set("seed", math.random(1, 1000000)) end
function init() math.randomseed(seed) end
function request()
  return wrk.format(nil, string.format("{path}", math.random(1, spread)))
end
"#,
            method = if body.is_empty() {
                r#"wrk.method = "GET""#.to_owned()
            } else {
                format!(
                    "wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\""
                )
            },
            auth = if token.is_empty() {
                String::new()
            } else {
                format!(r#"wrk.headers["Authorization"] = "Bearer {token}""#)
            },
        ),
    )?;
    let output = std::process::Command::new("wrk")
        .args(["-t", "2", "-c", &args.connections.to_string()])
        .args(["-d", &format!("{}s", args.seconds), "--latency", "-s"])
        .arg(&script)
        .arg(format!("http://{addr}"))
        .output()
        .context("wrk runs")?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "wrk failed: {text}");
    parse_wrk(&text).with_context(|| format!("unexpected wrk output: {text}"))
}

/// Reads wrk's `--latency` report.
fn parse_wrk(text: &str) -> Option<Measured> {
    let mut m = Measured::default();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => m.p50_ms = millis(v)?,
            ["99%", v] => m.p99_ms = millis(v)?,
            [n, "requests", "in", secs, ..] => {
                m.requests = n.parse().ok()?;
                m.seconds = secs
                    .trim_end_matches(',')
                    .trim_end_matches('s')
                    .parse()
                    .ok()?;
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => m.not_2xx = n.parse().ok()?,
            _ => {}
        }
    }
    (m.requests > 0 && m.seconds > 0.0).then_some(m)
}

/// wrk's `1.23ms`, `850.00us`, `1.02s` in milliseconds.
fn millis(v: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

fn which(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok()
}

/// `mercato serve` in this process on the scratch database and a fresh stream; its command
/// and query APIs' addresses and an admin token.
async fn start_mercato(
    env: &BenchEnv,
    stop: &CancellationToken,
) -> anyhow::Result<(SocketAddr, SocketAddr, String)> {
    let nats = env.fresh_stream().await?;
    let index = std::env::temp_dir().join(format!("mercato-bench-index-{}", uuid::Uuid::new_v4()));
    let url = env.database_url();
    let cli = mercato_cli::Cli::try_parse_from([
        "mercato",
        "serve",
        "--database-url",
        url.as_str(),
        "--nats-url",
        nats.url.as_str(),
        "--stream",
        nats.stream.as_str(),
        "--subject-prefix",
        nats.subject_prefix.as_str(),
        "--admin-addr",
        "127.0.0.1:0",
        "--command-api-addr",
        "127.0.0.1:0",
        "--query-api-addr",
        "127.0.0.1:0",
        "--storefront-addr",
        "127.0.0.1:0",
        "--index-dir",
        &index.to_string_lossy(),
        "--jwt-secret",
        "bench-secret-bench-secret-bench-secret",
        "--admin-email",
        "admin@mercato.bench",
        "--admin-password",
        "bench-admin-password",
    ])?;
    let app = mercato_cli::Application::build(cli.settings, mercato_cli::Parts::all()).await?;
    let addr = app.command_api_addr.context("the command api runs")?;
    let query = app.query_api_addr.context("the query api runs")?;
    let token = app.shutdown_token();
    let stopping = stop.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        token.cancel();
    });
    tokio::spawn(app.run_until_stopped());
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{addr}/v1/auth/token"))
        .json(&serde_json::json!({"email": "admin@mercato.bench", "password": "bench-admin-password"}))
        .send()
        .await?
        .json()
        .await?;
    let token = answer["access_token"]
        .as_str()
        .context("an admin token")?
        .to_owned();
    Ok((addr, query, token))
}

/// A scratch database with postgres-es's tables; its URL.
async fn baseline_database(env: &BenchEnv) -> anyhow::Result<String> {
    let url = env.scratch_database("baseline").await?;
    let mut conn = PgConnection::connect(&url).await?;
    // postgres-es's schema (its db/init.sql) and the view's table.
    sqlx::raw_sql(
        "CREATE TABLE events (aggregate_type text NOT NULL, aggregate_id text NOT NULL, \
           sequence bigint CHECK (sequence >= 0) NOT NULL, event_type text NOT NULL, \
           event_version text NOT NULL, payload json NOT NULL, metadata json NOT NULL, \
           PRIMARY KEY (aggregate_type, aggregate_id, sequence)); \
         CREATE TABLE snapshots (aggregate_type text NOT NULL, aggregate_id text NOT NULL, \
           last_sequence bigint CHECK (last_sequence >= 0) NOT NULL, \
           current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL, payload json NOT NULL, \
           PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)); \
         CREATE TABLE account_query (view_id text NOT NULL, version bigint CHECK (version >= 0) NOT NULL, \
           payload json NOT NULL, PRIMARY KEY (view_id));",
    )
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(url)
}

// --- the baseline: the cqrs-es demo's shape --------------------------------------------------

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum AccountEvent {
    Deposited { amount: i64 },
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        "Deposited".to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

#[derive(Debug)]
enum AccountCommand {
    Deposit { amount: i64 },
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct AccountError(String);

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            AccountCommand::Deposit { amount } if amount > 0 => {
                sink.write(AccountEvent::Deposited { amount }, self).await;
                Ok(())
            }
            AccountCommand::Deposit { .. } => Err(AccountError("amount must be positive".into())),
        }
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AccountEvent::Deposited { amount } => self.balance += amount,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AccountView {
    balance: i64,
    deposits: u64,
}

impl View<Account> for AccountView {
    fn update(&mut self, event: &EventEnvelope<Account>) {
        match &event.payload {
            AccountEvent::Deposited { amount } => {
                self.balance += amount;
                self.deposits += 1;
            }
        }
    }
}

type AccountViews = PostgresViewRepository<AccountView, Account>;
type AccountQuery = GenericQuery<AccountViews, AccountView, Account>;

#[derive(Clone)]
struct Baseline {
    cqrs: Arc<PostgresCqrs<Account>>,
    views: Arc<AccountViews>,
}

#[derive(Deserialize)]
struct Deposit {
    amount: i64,
}

async fn deposit(
    State(s): State<Baseline>,
    Path(id): Path<String>,
    Json(body): Json<Deposit>,
) -> StatusCode {
    match s
        .cqrs
        .execute(
            &id,
            AccountCommand::Deposit {
                amount: body.amount,
            },
        )
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(AggregateError::AggregateConflict) => StatusCode::CONFLICT,
        Err(AggregateError::UserError(_)) => StatusCode::BAD_REQUEST,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn account(
    State(s): State<Baseline>,
    Path(id): Path<String>,
) -> Result<Json<AccountView>, StatusCode> {
    match s.views.load(&id).await {
        Ok(Some(view)) => Ok(Json(view)),
        Ok(None) => Err(StatusCode::NOT_FOUND),
        Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// The baseline service on port 0, until `stop`.
async fn start_baseline(url: &str, stop: &CancellationToken) -> anyhow::Result<SocketAddr> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(url)
        .await?;
    let views: Arc<AccountViews> =
        Arc::new(PostgresViewRepository::new("account_query", pool.clone()));
    let query: AccountQuery = GenericQuery::new(views.clone());
    let cqrs = Arc::new(postgres_es::postgres_cqrs(pool, vec![Box::new(query)], ()));
    let app = Router::new()
        .route("/accounts/{id}/deposit", post(deposit))
        .route("/accounts/{id}", get(account))
        .with_state(Baseline { cqrs, views });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_reports() {
        let report = "Running 15s test @ http://127.0.0.1:1\n  2 threads and 32 connections\n  Latency Distribution\n     50%    1.50ms\n     75%    2.00ms\n     90%    3.00ms\n     99%  850.00us\n  30000 requests in 15.01s, 4.00MB read\n  Non-2xx or 3xx responses: 300\nRequests/sec:   1998.67\n";
        let m = parse_wrk(report).unwrap();
        assert_eq!((m.requests, m.not_2xx), (30_000, 300));
        assert!((m.p50_ms - 1.5).abs() < 1e-9 && (m.p99_ms - 0.85).abs() < 1e-9);
        assert!((m.successful_per_second() - 29_700.0 / 15.01).abs() < 1e-6);
    }
}
