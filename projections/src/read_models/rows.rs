//! Set-based reads and writes of read-model rows, so that a batch of events costs a handful
//! of statements whatever its size (see `docs/adr/0010-set-based-projection-batches.md`).
//!
//! A projection loads the rows its batch touches in one query per table, folds the events
//! into them in memory, and writes back the rows that changed in one statement per table.
//! Rows travel as JSON (`to_jsonb` out, `json_populate_recordset` in), so a row is one
//! serde struct whose field names are the table's column names. Table names are unqualified:
//! the runtime sets `search_path` to the live schema or to a rebuild's shadow.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::PgConnection;

use crate::error::ProjectionError;

/// The rows of `table` whose column `key` (of SQL type `key_type`) is one of `keys`.
pub(crate) async fn load<T: DeserializeOwned>(
    conn: &mut PgConnection,
    table: &str,
    key: &str,
    key_type: &str,
    keys: &[String],
) -> Result<Vec<T>, ProjectionError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    // A semi-join, not `key = ANY($1)`: with the array a parameter, PostgreSQL compares every
    // row with every key when it picks a sequential scan, which it does on a table whose
    // statistics are stale (a rebuild's shadow grows from empty without an ANALYZE): a
    // 10,000-key load of a 44,000-row shadow took 5 s that way. A semi-join hashes the keys
    // or probes the primary key, whatever the statistics say (and a repeated key still
    // yields its row once).
    let rows: Vec<serde_json::Value> = sqlx::query_scalar(&format!(
        "SELECT to_jsonb(t) FROM {table} t \
         WHERE t.{key} IN (SELECT unnest($1::text[]::{key_type}[]))"
    ))
    .bind(keys)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            serde_json::from_value(row).map_err(|e| {
                ProjectionError::Payload(format!("a row of {table} does not match its type: {e}"))
            })
        })
        .collect()
}

/// Inserts `rows` into `table`, replacing every column but the key of rows that exist.
pub(crate) async fn upsert<T: Serialize>(
    conn: &mut PgConnection,
    table: &str,
    key: &[&str],
    rows: &[T],
) -> Result<(), ProjectionError> {
    let Some(columns) = columns(table, rows)? else {
        return Ok(());
    };
    let others: Vec<&str> = columns
        .iter()
        .map(String::as_str)
        .filter(|c| !key.contains(c))
        .collect();
    let all = columns.join(", ");
    let excluded: Vec<String> = others.iter().map(|c| format!("EXCLUDED.{c}")).collect();
    let on_conflict = if others.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        format!(
            "DO UPDATE SET ({}) = ROW({})",
            others.join(", "),
            excluded.join(", ")
        )
    };
    sqlx::query(&format!(
        "INSERT INTO {table} ({all}) SELECT {all} FROM json_populate_recordset(NULL::{table}, $1::json) \
         ON CONFLICT ({}) {on_conflict}",
        key.join(", ")
    ))
    .bind(to_json(table, rows)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes the rows of `table` whose key columns equal one of `keys` (each a JSON object
/// with those columns); `key` lists them as `column type`.
pub(crate) async fn delete<T: Serialize>(
    conn: &mut PgConnection,
    table: &str,
    key: &[(&str, &str)],
    keys: &[T],
) -> Result<(), ProjectionError> {
    if keys.is_empty() {
        return Ok(());
    }
    let definition: Vec<String> = key.iter().map(|(c, t)| format!("{c} {t}")).collect();
    let matches: Vec<String> = key.iter().map(|(c, _)| format!("t.{c} = k.{c}")).collect();
    sqlx::query(&format!(
        "DELETE FROM {table} t USING json_to_recordset($1::json) AS k({}) WHERE {}",
        definition.join(", "),
        matches.join(" AND ")
    ))
    .bind(to_json(table, keys)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rows as JSON text: PostgreSQL's `json` input is parsed once by the recordset function,
/// where `jsonb` would first be converted to its binary form.
fn to_json<T: Serialize>(table: &str, rows: &[T]) -> Result<String, ProjectionError> {
    serde_json::to_string(rows)
        .map_err(|e| ProjectionError::Payload(format!("rows of {table} cannot be encoded: {e}")))
}

/// The column names: the fields of the first row (`None` without rows).
fn columns<T: Serialize>(table: &str, rows: &[T]) -> Result<Option<Vec<String>>, ProjectionError> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let first = serde_json::to_value(first).map_err(|e| {
        ProjectionError::Payload(format!("a row of {table} cannot be encoded: {e}"))
    })?;
    Ok(first.as_object().map(|o| o.keys().cloned().collect()))
}
