//! `mercato events export` and `tail` as an analyst runs them, against a real log.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use arrow_array::{Array, Int64Array, StringArray, TimestampMicrosecondArray, UInt64Array};
use arrow_schema::{DataType, TimeUnit};
use mercato_event_store::testing::counter::CounterCommand;
use mercato_event_store::testing::TestDatabase;
use mercato_event_store::{EventMetadata, RecordedEvent};
use mercato_nats::testing::{append_to, counters, log};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::process::database_url;

fn mercato(db: &TestDatabase, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_mercato"))
        .args(args)
        .env("MERCATO_DATABASE_URL", database_url(db))
        .env(
            "MERCATO_DATA_KEY",
            mercato_event_store::testing::TEST_DATA_KEY,
        )
        .env("MERCATO_DATABASE_MAX_CONNECTIONS", "2")
        .output()
        .expect("mercato runs");
    assert!(
        output.status.success(),
        "mercato {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn scratch(extension: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "mercato-export-{}.{extension}",
        uuid::Uuid::new_v4()
    ))
}

/// 30 `Added` events over five counters and three `Noted` events on `n1`.
async fn history(db: &TestDatabase) -> Vec<RecordedEvent> {
    let store = counters(db);
    append_to(&store, "c", 30).await;
    for i in 0..3 {
        store
            .execute(
                "n1",
                CounterCommand::Note(format!("note {i}, with a comma and \"quotes\"")),
                &EventMetadata::for_actor("analyst-test"),
                None,
            )
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = log(db).await;
        if events.len() == 33 || std::time::Instant::now() > deadline {
            assert_eq!(events.len(), 33);
            return events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("every line is one JSON object"))
        .collect()
}

fn expected_json(events: &[RecordedEvent]) -> Vec<serde_json::Value> {
    events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

#[tokio::test]
async fn a_json_lines_export_to_stdout_is_the_log_in_order_with_filters_applied() {
    let db = TestDatabase::new().await;
    let events = history(&db).await;

    let all = mercato(&db, &["events", "export"]);
    assert_eq!(json_lines(&all.stdout), expected_json(&events));
    assert!(
        !String::from_utf8_lossy(&all.stdout).contains("\"level\""),
        "logs must not mix into the data on stdout"
    );

    let notes = mercato(&db, &["events", "export", "--event-type", "Noted"]);
    let noted: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "Noted")
        .cloned()
        .collect();
    assert_eq!(json_lines(&notes.stdout), expected_json(&noted));

    let one = mercato(&db, &["events", "export", "--aggregate-id", "c3"]);
    let c3: Vec<_> = events
        .iter()
        .filter(|e| e.aggregate_id == "c3")
        .cloned()
        .collect();
    assert_eq!(json_lines(&one.stdout), expected_json(&c3));

    let (from, to) = (
        events[4].position.to_string(),
        events[9].position.to_string(),
    );
    let window = mercato(
        &db,
        &[
            "events",
            "export",
            "--from-position",
            &from,
            "--to-position",
            &to,
        ],
    );
    assert_eq!(json_lines(&window.stdout), expected_json(&events[4..=9]));
    let after = mercato(&db, &["events", "export", "--after", &to]);
    assert_eq!(json_lines(&after.stdout), expected_json(&events[10..]));
}

#[tokio::test]
async fn a_csv_export_has_a_header_and_one_quoted_row_per_event() {
    let db = TestDatabase::new().await;
    let events = history(&db).await;
    let path = scratch("csv");
    mercato(&db, &["events", "export", "-o", path.to_str().unwrap()]);

    let mut reader = csv::Reader::from_path(&path).unwrap();
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "position",
            "event_id",
            "recorded_at",
            "aggregate_type",
            "aggregate_id",
            "sequence",
            "event_type",
            "event_version",
            "payload",
            "metadata"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), events.len());
    for (row, event) in rows.iter().zip(&events) {
        assert_eq!(row[0], event.position.to_string());
        assert_eq!(row[1], event.event_id.to_string());
        assert_eq!(row[4], event.aggregate_id);
        assert_eq!(row[5], event.sequence.to_string());
        let payload: serde_json::Value = serde_json::from_str(&row[8]).unwrap();
        assert_eq!(payload, event.payload, "payload survives commas and quotes");
    }
    std::fs::remove_file(path).ok();
}

#[tokio::test]
async fn a_parquet_export_has_typed_columns_with_every_event() {
    let db = TestDatabase::new().await;
    let events = history(&db).await;
    let path = scratch("parquet");
    // A small batch size makes the export span several reads and record batches.
    mercato(
        &db,
        &[
            "events",
            "export",
            "--batch-size",
            "7",
            "-o",
            path.to_str().unwrap(),
        ],
    );

    let file = std::fs::File::open(&path).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let schema = builder.schema().clone();
    let field = |name: &str| schema.field_with_name(name).unwrap().data_type().clone();
    assert_eq!(field("tx_id"), DataType::UInt64);
    assert_eq!(field("global_position"), DataType::Int64);
    assert_eq!(field("sequence"), DataType::Int64);
    assert_eq!(
        field("recorded_at"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    for text in [
        "position",
        "event_id",
        "aggregate_type",
        "aggregate_id",
        "event_type",
        "event_version",
        "payload",
    ] {
        assert_eq!(field(text), DataType::Utf8, "{text}");
    }

    let mut seen = 0;
    for batch in builder.build().unwrap() {
        let batch = batch.unwrap();
        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        let tx = col("tx_id");
        let tx = tx.as_any().downcast_ref::<UInt64Array>().unwrap();
        let gp = col("global_position");
        let gp = gp.as_any().downcast_ref::<Int64Array>().unwrap();
        let at = col("recorded_at");
        let at = at
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        let payload = col("payload");
        let payload = payload.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..batch.num_rows() {
            let event = &events[seen];
            assert_eq!(tx.value(i), event.position.tx_id());
            assert_eq!(gp.value(i), event.position.global_position());
            assert_eq!(at.value(i), event.recorded_at.timestamp_micros());
            let p: serde_json::Value = serde_json::from_str(payload.value(i)).unwrap();
            assert_eq!(p, event.payload);
            seen += 1;
        }
        assert!(tx.null_count() == 0);
    }
    assert_eq!(seen, events.len());
    std::fs::remove_file(path).ok();
}

#[tokio::test]
async fn tail_follow_prints_history_then_events_committed_later() {
    let db = TestDatabase::new().await;
    let events = history(&db).await;
    let start = events[29].position.to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mercato"))
        .args([
            "events",
            "tail",
            "--follow",
            "--poll-ms",
            "100",
            "--after",
            &start,
        ])
        .env("MERCATO_DATABASE_URL", database_url(&db))
        .env(
            "MERCATO_DATA_KEY",
            mercato_event_store::testing::TEST_DATA_KEY,
        )
        .env("MERCATO_DATABASE_MAX_CONNECTIONS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || -> serde_json::Value {
        let line = rx
            .recv_timeout(Duration::from_secs(15))
            .expect("tail prints the event");
        serde_json::from_str(&line).unwrap()
    };
    // The three events after `--after`, then five committed while it follows.
    for event in &events[30..] {
        assert_eq!(next(), serde_json::to_value(event).unwrap());
    }
    append_to(&counters(&db), "late", 5).await;
    let later: Vec<_> = (0..5).map(|_| next()).collect();
    let log = log(&db).await;
    assert_eq!(later, expected_json(&log[33..38]));
    child.kill().ok();
    child.wait().ok();
}
