//! Crypto-shredding: personal data is written only sealed with its data subject's key, and
//! erasure destroys that key (`docs/adr/0013-crypto-shredding.md`).
//!
//! The domain marks personal data as `{"$subject": S, "$personal": V}` (`mercato_aggregates::
//! Personal`). Before an event or snapshot is written, [`seal`] replaces every such node with
//! `{"$subject": S, "$sealed": base64(nonce || AES-256-GCM(V))}` under S's data key, so the
//! `events` and `snapshots` tables, JetStream and anything copied from them hold ciphertext
//! only. Readers that need the data [`reveal`] it (one query for the keys of a whole batch);
//! once S's key is destroyed ([`shred`]) the node reads `{"$subject": S, "$erased": true}`.
//! Exports [`redact`] it instead.
//!
//! Data keys are random 256-bit AES-GCM keys, one per subject, stored in `data_keys` wrapped
//! (AES-256-GCM, the subject as associated data) by a master key from configuration. The
//! master key of each row is named by its id (a fingerprint), so after a rotation the old key
//! unwraps the rows [`rotate`] has not rewrapped yet. Erasure leaves a tombstone row: no key
//! is ever made again for an erased subject, so nothing new of theirs can be written.
//!
//! The master keys are process configuration, installed once at start ([`install`]) like the
//! allocator: every store, reader and worker of the process uses them.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::{PgExecutor, PgPool};

use crate::reader::RecordedEvent;

/// The key naming a value's subject.
pub const SUBJECT: &str = "$subject";
/// The key of a revealed value.
pub const PERSONAL: &str = "$personal";
/// The key of a sealed value.
pub const SEALED: &str = "$sealed";
/// The key of an erased value.
pub const ERASED: &str = "$erased";
/// The key of a value withheld from an export.
pub const REDACTED: &str = "$redacted";

const NONCE_BYTES: usize = 12;

/// Why personal data could not be sealed or revealed.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// No master key was installed in this process.
    #[error("no master data key is configured (MERCATO_DATA_KEY or MERCATO_DATA_KEY_FILE)")]
    NoMasterKey,
    /// A configured master key is not 32 bytes of base64.
    #[error("invalid master data key: {0}")]
    InvalidMasterKey(String),
    /// Another set of master keys is installed already.
    #[error("master data keys are installed already, with another current key")]
    AlreadyInstalled,
    /// A data key is wrapped by a master key this process does not have.
    #[error("the data key of {subject} is wrapped by master key {key_id}, which is not configured (set it in MERCATO_DATA_KEY_PREVIOUS)")]
    UnknownMasterKey {
        /// The subject.
        subject: String,
        /// The master key's id.
        key_id: String,
    },
    /// The subject was erased: nothing of theirs can be written any more.
    #[error("the personal data of {0} was erased")]
    Erased(String),
    /// A key or a sealed value does not decrypt (tampered with, or a wrong master key).
    #[error("personal data of {subject} cannot be decrypted: {reason}")]
    Corrupt {
        /// The subject.
        subject: String,
        /// What failed.
        reason: &'static str,
    },
    /// A personal value names no valid subject.
    #[error("personal data without a subject")]
    NoSubject,
    /// PostgreSQL failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// A master key: wraps the data keys.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let digest = Sha256::digest([b"mercato master key id:".as_slice(), bytes].concat());
        Self {
            id: hex_prefix(&digest),
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)),
        }
    }

    /// A key from its base64 text (32 bytes; surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, PrivacyError> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|e| PrivacyError::InvalidMasterKey(e.to_string()))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            PrivacyError::InvalidMasterKey(format!("{} bytes; a key is 32", b.len()))
        })?;
        Ok(Self::from_bytes(&bytes))
    }

    /// A new random key and its base64 text.
    pub fn generate() -> (Self, String) {
        let bytes: [u8; 32] = rand::random();
        (Self::from_bytes(&bytes), B64.encode(bytes))
    }

    /// The key's id: a fingerprint that names it in `data_keys` without revealing it.
    pub fn id(&self) -> &str {
        &self.id
    }
}

fn hex_prefix(digest: &[u8]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The current master key (wraps new data keys) and earlier ones (still unwrap the rows
/// wrapped before a rotation).
#[derive(Debug, Clone)]
pub struct MasterKeys {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl MasterKeys {
    /// `current`, with `previous` keys for rows not rewrapped yet.
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        Self { current, previous }
    }

    /// The key that wraps new data keys.
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    fn find(&self, id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
    }
}

static MASTER_KEYS: OnceLock<MasterKeys> = OnceLock::new();

/// Installs this process's master keys. Installing the same current key again is a no-op;
/// another one is refused.
pub fn install(keys: MasterKeys) -> Result<(), PrivacyError> {
    let installed = MASTER_KEYS.get_or_init(|| keys.clone());
    if installed.current.id == keys.current.id {
        Ok(())
    } else {
        Err(PrivacyError::AlreadyInstalled)
    }
}

/// The installed master keys.
pub fn master_keys() -> Result<&'static MasterKeys, PrivacyError> {
    MASTER_KEYS.get().ok_or(PrivacyError::NoMasterKey)
}

/// A subject's data key.
struct DataKey(Box<Aes256Gcm>);

impl DataKey {
    fn seal(&self, subject: &str, plaintext: &[u8]) -> Result<String, PrivacyError> {
        encrypt(&self.0, subject, plaintext).map(|bytes| B64.encode(bytes))
    }

    fn open(&self, subject: &str, sealed: &str) -> Result<Vec<u8>, PrivacyError> {
        let bytes = B64.decode(sealed).map_err(|_| PrivacyError::Corrupt {
            subject: subject.to_owned(),
            reason: "sealed value is not base64",
        })?;
        decrypt(&self.0, subject, &bytes)
    }
}

fn encrypt(cipher: &Aes256Gcm, subject: &str, plaintext: &[u8]) -> Result<Vec<u8>, PrivacyError> {
    let nonce: [u8; NONCE_BYTES] = rand::random();
    let mut out = nonce.to_vec();
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: subject.as_bytes(),
            },
        )
        .map_err(|_| PrivacyError::Corrupt {
            subject: subject.to_owned(),
            reason: "encryption failed",
        })?;
    out.extend(sealed);
    Ok(out)
}

fn decrypt(cipher: &Aes256Gcm, subject: &str, bytes: &[u8]) -> Result<Vec<u8>, PrivacyError> {
    if bytes.len() < NONCE_BYTES {
        return Err(PrivacyError::Corrupt {
            subject: subject.to_owned(),
            reason: "too short",
        });
    }
    let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: subject.as_bytes(),
            },
        )
        .map_err(|_| PrivacyError::Corrupt {
            subject: subject.to_owned(),
            reason: "authentication failed",
        })
}

fn wrap(master: &MasterKey, subject: &str, key: &[u8; 32]) -> Result<Vec<u8>, PrivacyError> {
    encrypt(&master.cipher, subject, key)
}

fn unwrap_key(
    keys: &MasterKeys,
    subject: &str,
    key_id: &str,
    wrapped: &[u8],
) -> Result<[u8; 32], PrivacyError> {
    let master = keys
        .find(key_id)
        .ok_or_else(|| PrivacyError::UnknownMasterKey {
            subject: subject.to_owned(),
            key_id: key_id.to_owned(),
        })?;
    decrypt(&master.cipher, subject, wrapped)?
        .try_into()
        .map_err(|_| PrivacyError::Corrupt {
            subject: subject.to_owned(),
            reason: "a data key is 32 bytes",
        })
}

/// What `data_keys` holds for a subject.
enum KeyState {
    Live(DataKey),
    Erased,
}

/// The stored keys of `subjects` (absent: no row).
async fn fetch<'e, E: PgExecutor<'e>>(
    executor: E,
    keys: &MasterKeys,
    subjects: &[String],
) -> Result<HashMap<String, KeyState>, PrivacyError> {
    let rows: Vec<(String, Option<String>, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT subject, master_key_id, wrapped FROM data_keys WHERE subject = ANY($1)",
    )
    .bind(subjects)
    .fetch_all(executor)
    .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for (subject, key_id, wrapped) in rows {
        let state = match (key_id, wrapped) {
            (Some(key_id), Some(wrapped)) => {
                let key = unwrap_key(keys, &subject, &key_id, &wrapped)?;
                KeyState::Live(DataKey(Box::new(Aes256Gcm::new(
                    Key::<Aes256Gcm>::from_slice(&key),
                ))))
            }
            _ => KeyState::Erased,
        };
        out.insert(subject, state);
    }
    Ok(out)
}

/// The live keys of `subjects`, made for those that have none yet; an erased one fails.
async fn ensure(
    pool: &PgPool,
    keys: &MasterKeys,
    subjects: &[String],
) -> Result<HashMap<String, DataKey>, PrivacyError> {
    let mut found = fetch(pool, keys, subjects).await?;
    let missing: Vec<String> = subjects
        .iter()
        .filter(|s| !found.contains_key(*s))
        .cloned()
        .collect();
    if !missing.is_empty() {
        let mut wrapped = Vec::with_capacity(missing.len());
        for subject in &missing {
            let key: [u8; 32] = rand::random();
            wrapped.push(wrap(&keys.current, subject, &key)?);
        }
        // A concurrent writer may make the same subject's key first: theirs is kept, and read
        // back below, so every value of a subject is sealed with its one key.
        sqlx::query(
            "INSERT INTO data_keys (subject, master_key_id, wrapped) \
             SELECT s, $2, w FROM unnest($1::text[], $3::bytea[]) AS k(s, w) \
             ON CONFLICT (subject) DO NOTHING",
        )
        .bind(&missing)
        .bind(keys.current.id())
        .bind(&wrapped)
        .execute(pool)
        .await?;
        found.extend(fetch(pool, keys, &missing).await?);
    }
    subjects
        .iter()
        .map(|s| match found.remove(s) {
            Some(KeyState::Live(key)) => Ok((s.clone(), key)),
            _ => Err(PrivacyError::Erased(s.clone())),
        })
        .collect()
}

/// Calls `f` on every personal-data node (an object with `$subject`) in `value`.
fn visit(value: &mut Value, f: &mut dyn FnMut(&mut Map<String, Value>)) {
    match value {
        Value::Object(map) if map.contains_key(SUBJECT) => f(map),
        Value::Object(map) => map.values_mut().for_each(|v| visit(v, f)),
        Value::Array(items) => items.iter_mut().for_each(|v| visit(v, f)),
        _ => {}
    }
}

/// The subjects of the nodes holding `marker`.
fn subjects_with(values: &mut [&mut Value], marker: &str) -> Result<Vec<String>, PrivacyError> {
    let mut subjects = HashSet::new();
    let mut invalid = false;
    for value in values.iter_mut() {
        visit(value, &mut |node| {
            if node.contains_key(marker) {
                match node.get(SUBJECT).and_then(Value::as_str) {
                    Some(s) if !s.is_empty() => {
                        subjects.insert(s.to_owned());
                    }
                    _ => invalid = true,
                }
            }
        });
    }
    if invalid {
        return Err(PrivacyError::NoSubject);
    }
    Ok(subjects.into_iter().collect())
}

/// Seals every revealed personal value in `values` with its subject's key (made on first
/// use). Fails for an erased subject: nothing new of theirs is written.
pub async fn seal(pool: &PgPool, values: &mut [&mut Value]) -> Result<(), PrivacyError> {
    let subjects = subjects_with(values, PERSONAL)?;
    if subjects.is_empty() {
        return Ok(());
    }
    let keys = ensure(pool, master_keys()?, &subjects).await?;
    let mut failure = None;
    for value in values.iter_mut() {
        visit(value, &mut |node| {
            let Some(plain) = node.remove(PERSONAL) else {
                return;
            };
            let subject = node
                .get(SUBJECT)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let sealed = keys
                .get(&subject)
                .ok_or_else(|| PrivacyError::Erased(subject.clone()))
                .and_then(|key| key.seal(&subject, plain.to_string().as_bytes()));
            match sealed {
                Ok(text) => {
                    node.insert(SEALED.to_owned(), Value::String(text));
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        });
    }
    failure.map_or(Ok(()), Err)
}

/// Reveals every sealed personal value in `values`, in place, with one query for the keys:
/// the plain value, or `$erased` once the subject's key is gone.
pub async fn reveal<'e, E: PgExecutor<'e>>(
    executor: E,
    values: &mut [&mut Value],
) -> Result<(), PrivacyError> {
    reveal_with(executor, master_keys()?, values).await
}

/// [`reveal`] with the given master keys.
pub async fn reveal_with<'e, E: PgExecutor<'e>>(
    executor: E,
    keys: &MasterKeys,
    values: &mut [&mut Value],
) -> Result<(), PrivacyError> {
    let subjects = subjects_with(values, SEALED)?;
    if subjects.is_empty() {
        return Ok(());
    }
    let found = fetch(executor, keys, &subjects).await?;
    let mut failure = None;
    for value in values.iter_mut() {
        visit(value, &mut |node| {
            let Some(Value::String(sealed)) = node.remove(SEALED) else {
                return;
            };
            let subject = node
                .get(SUBJECT)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            match found.get(&subject) {
                Some(KeyState::Live(key)) => {
                    let plain = key.open(&subject, &sealed).and_then(|bytes| {
                        serde_json::from_slice(&bytes).map_err(|_| PrivacyError::Corrupt {
                            subject: subject.clone(),
                            reason: "sealed value is not JSON",
                        })
                    });
                    match plain {
                        Ok(plain) => {
                            node.insert(PERSONAL.to_owned(), plain);
                        }
                        Err(e) => {
                            failure.get_or_insert(e);
                        }
                    }
                }
                // Erased (or a key row removed by hand): the data is gone for good.
                _ => {
                    node.insert(ERASED.to_owned(), Value::Bool(true));
                }
            }
        });
    }
    failure.map_or(Ok(()), Err)
}

/// [`reveal`] for the payloads of `events`.
pub async fn reveal_events<'e, E: PgExecutor<'e>>(
    executor: E,
    events: &mut [RecordedEvent],
) -> Result<(), PrivacyError> {
    let mut payloads: Vec<&mut Value> = events.iter_mut().map(|e| &mut e.payload).collect();
    reveal(executor, &mut payloads).await
}

/// Replaces every personal value in `value` (sealed or revealed) with `$redacted`, keeping
/// its subject (a pseudonymous id): what an export holds unless personal data is asked for.
pub fn redact(value: &mut Value) {
    visit(value, &mut |node| {
        if node.remove(SEALED).is_some() | node.remove(PERSONAL).is_some() {
            node.insert(REDACTED.to_owned(), Value::Bool(true));
        }
    });
}

/// Destroys `subject`'s data key, leaving a tombstone so none is made again. Every sealed
/// value of the subject, wherever a copy of it is, reads as erased from now on. Returns
/// whether a live key was destroyed (`false` when the subject was erased before or never
/// had personal data).
pub async fn shred(pool: &PgPool, subject: &str) -> Result<bool, PrivacyError> {
    let live: Option<bool> = sqlx::query_scalar(
        "WITH old AS (SELECT wrapped IS NOT NULL AS live FROM data_keys WHERE subject = $1), \
         upsert AS ( \
           INSERT INTO data_keys (subject, master_key_id, wrapped, erased_at) VALUES ($1, NULL, NULL, now()) \
           ON CONFLICT (subject) DO UPDATE SET master_key_id = NULL, wrapped = NULL, \
             erased_at = coalesce(data_keys.erased_at, now())) \
         SELECT live FROM old",
    )
    .bind(subject)
    .fetch_optional(pool)
    .await?;
    let destroyed = live.unwrap_or(false);
    if destroyed {
        metrics::counter!("mercato_data_keys_shredded_total").increment(1);
    }
    Ok(destroyed)
}

/// Whether `subject` was erased.
pub async fn is_erased<'e, E: PgExecutor<'e>>(
    executor: E,
    subject: &str,
) -> Result<bool, PrivacyError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM data_keys WHERE subject = $1 AND wrapped IS NULL)",
    )
    .bind(subject)
    .fetch_one(executor)
    .await?)
}

/// How a rotation went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Data keys rewrapped under the current master key.
    pub rewrapped: u64,
    /// Data keys already under it.
    pub current: u64,
}

/// Rewraps every live data key not wrapped by `keys`' current master key (unwrapping with a
/// previous one), in batches; safe to interrupt and rerun, and to run while Mercato serves.
/// Afterwards the previous master keys can be removed from configuration.
pub async fn rotate(pool: &PgPool, keys: &MasterKeys) -> Result<Rotation, PrivacyError> {
    let current = keys.current.id().to_owned();
    let mut rotation = Rotation::default();
    loop {
        let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
            "SELECT subject, master_key_id, wrapped FROM data_keys \
             WHERE wrapped IS NOT NULL AND master_key_id <> $1 ORDER BY subject LIMIT 500",
        )
        .bind(&current)
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            break;
        }
        let mut subjects = Vec::with_capacity(rows.len());
        let mut old_ids = Vec::with_capacity(rows.len());
        let mut rewrapped = Vec::with_capacity(rows.len());
        for (subject, key_id, wrapped) in rows {
            let key = unwrap_key(keys, &subject, &key_id, &wrapped)?;
            rewrapped.push(wrap(&keys.current, &subject, &key)?);
            subjects.push(subject);
            old_ids.push(key_id);
        }
        // Only rows unchanged since they were read: one erased meanwhile stays erased.
        let done = sqlx::query(
            "UPDATE data_keys d SET master_key_id = $2, wrapped = k.w \
             FROM unnest($1::text[], $3::text[], $4::bytea[]) AS k(s, old, w) \
             WHERE d.subject = k.s AND d.master_key_id = k.old AND d.wrapped IS NOT NULL",
        )
        .bind(&subjects)
        .bind(&current)
        .bind(&old_ids)
        .bind(&rewrapped)
        .execute(pool)
        .await?;
        rotation.rewrapped += done.rows_affected();
    }
    rotation.current =
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM data_keys WHERE master_key_id = $1")
            .bind(&current)
            .fetch_one(pool)
            .await? as u64;
    Ok(rotation)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn master_keys_parse_from_base64_and_have_stable_ids() {
        let (key, text) = MasterKey::generate();
        let again = MasterKey::from_base64(&format!(" {text}\n")).unwrap();
        assert_eq!(key.id(), again.id());
        assert_eq!(key.id().len(), 16);
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
    }

    #[test]
    fn a_data_key_wrapped_for_one_subject_does_not_unwrap_for_another() {
        let (master, _) = MasterKey::generate();
        let keys = MasterKeys::new(master.clone(), vec![]);
        let data_key = [7u8; 32];
        let wrapped = wrap(&master, "customer:a", &data_key).unwrap();
        assert_eq!(
            unwrap_key(&keys, "customer:a", master.id(), &wrapped).unwrap(),
            data_key
        );
        assert!(unwrap_key(&keys, "customer:b", master.id(), &wrapped).is_err());
        assert!(matches!(
            unwrap_key(&keys, "customer:a", "0000", &wrapped),
            Err(PrivacyError::UnknownMasterKey { .. })
        ));
    }

    #[test]
    fn redaction_withholds_sealed_and_revealed_values_and_keeps_the_rest() {
        let mut value = json!({"Placed": {
            "email": {"$subject": "order:1", "$sealed": "AAAA"},
            "address": {"$subject": "order:1", "$personal": {"city": "Paris"}},
            "total": 5,
            "list": [{"$subject": "order:1", "$personal": "x"}]
        }});
        redact(&mut value);
        assert_eq!(
            value,
            json!({"Placed": {
                "email": {"$subject": "order:1", "$redacted": true},
                "address": {"$subject": "order:1", "$redacted": true},
                "total": 5,
                "list": [{"$subject": "order:1", "$redacted": true}]
            }})
        );
    }
}
