//! Crypto-shredding through the real store: personal data is written sealed, read back
//! revealed, and unreadable everywhere once its subject's key is destroyed.

use std::num::NonZeroUsize;

use mercato_aggregates::customer::{Customer, CustomerCommand};
use mercato_aggregates::values::{CustomerId, Email, PersonName, PostalAddress};
use mercato_aggregates::{DataSubject, Personal};
use mercato_event_store::privacy::{self, MasterKey, MasterKeys, PrivacyError};
use mercato_event_store::testing::{TestDatabase, TEST_DATA_KEY};
use mercato_event_store::{
    AggregateStore, EventMetadata, EventStoreError, LogReader, PersonalData, SnapshotPolicy,
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::wait_readable;

fn customers(db: &TestDatabase, snapshot_every: usize) -> AggregateStore<Customer> {
    let policy = SnapshotPolicy::never().with("Customer", NonZeroUsize::new(snapshot_every));
    AggregateStore::new(db.pool.clone(), (), &policy)
        .with_upcasters(mercato_aggregates::upcasting::upcasters())
}

fn register(id: Uuid) -> CustomerCommand {
    CustomerCommand::RegisterCustomer {
        customer_id: CustomerId::new(id),
        email: Email::new("ada.lovelace@example.com").unwrap(),
        name: PersonName::new("Ada Lovelace").unwrap(),
    }
}

fn address() -> PostalAddress {
    serde_json::from_value(
        json!({"recipient": "Ada Lovelace", "line1": "12 Analytical Row",
        "line2": null, "city": "London", "postal_code": "N1 1AA", "country": "GB"}),
    )
    .unwrap()
}

/// Every text column of `table` as one string.
async fn dump(db: &TestDatabase, table: &str) -> String {
    sqlx::query_scalar::<_, String>(&format!(
        "SELECT coalesce(string_agg(t::text, ' '), '') FROM {table} t"
    ))
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn personal_data_is_stored_sealed_read_revealed_and_erased_with_its_key() {
    let db = TestDatabase::new().await;
    let store = customers(&db, 2);
    let meta = EventMetadata::for_actor("test");
    let id = Uuid::new_v4();
    store
        .execute(&id.to_string(), register(id), &meta, None)
        .await
        .unwrap();
    store
        .execute(
            &id.to_string(),
            CustomerCommand::ChangeCustomerAddress { address: address() },
            &meta,
            None,
        )
        .await
        .unwrap();

    // Neither the events nor the snapshot hold any of it in the clear.
    for table in ["events", "snapshots"] {
        let text = dump(&db, table).await;
        for secret in ["ada.lovelace", "Lovelace", "Analytical"] {
            assert!(!text.contains(secret), "{table} holds {secret:?}: {text}");
        }
        assert!(text.contains("$sealed"), "{table}: {text}");
    }
    assert!(
        !dump(&db, "snapshots").await.is_empty(),
        "a snapshot was written"
    );

    // The aggregate reads it back; the raw log has it sealed, a revealing reader in the
    // clear, a redacting one withheld.
    let (customer, _) = store.load(&id.to_string()).await.unwrap();
    assert_eq!(
        customer
            .email()
            .and_then(Personal::expose)
            .map(Email::as_str),
        Some("ada.lovelace@example.com")
    );
    let sealed = wait_readable(&LogReader::new(db.pool.clone()), 2).await;
    assert!(sealed[0].payload.to_string().contains("$sealed"));
    let revealed = wait_readable(
        &LogReader::new(db.pool.clone()).with_personal_data(PersonalData::Revealed),
        2,
    )
    .await;
    assert!(revealed[0]
        .payload
        .to_string()
        .contains("ada.lovelace@example.com"));
    let redacted = wait_readable(
        &LogReader::new(db.pool.clone()).with_personal_data(PersonalData::Redacted),
        2,
    )
    .await;
    let text = redacted[0].payload.to_string();
    assert!(
        text.contains("$redacted") && !text.contains("$sealed"),
        "{text}"
    );

    // Erasure: the key goes, and with it every copy.
    let subject = DataSubject::Customer(CustomerId::new(id)).to_string();
    assert!(privacy::shred(&db.pool, &subject).await.unwrap());
    assert!(!privacy::shred(&db.pool, &subject).await.unwrap(), "once");
    assert!(privacy::is_erased(&db.pool, &subject).await.unwrap());
    let (customer, version) = store.load(&id.to_string()).await.unwrap();
    assert_eq!(version, 2);
    assert!(customer.email().is_some_and(Personal::is_erased));
    assert!(customer.address().is_some_and(Personal::is_erased));
    let after = wait_readable(
        &LogReader::new(db.pool.clone()).with_personal_data(PersonalData::Revealed),
        2,
    )
    .await;
    let text = after
        .iter()
        .map(|e| e.payload.to_string())
        .collect::<String>();
    assert!(
        text.contains("$erased") && !text.contains("ada.lovelace"),
        "{text}"
    );
    // Nothing new of an erased subject is written.
    let err = store
        .execute(
            &id.to_string(),
            CustomerCommand::ChangeCustomerAddress { address: address() },
            &meta,
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EventStoreError::Erased { .. }), "{err:?}");
    let keys = dump(&db, "data_keys").await;
    assert!(keys.contains(&subject), "the tombstone stays: {keys}");
}

#[tokio::test]
async fn rotation_rewraps_every_live_key_under_the_new_master_key() {
    let db = TestDatabase::new().await;
    let store = customers(&db, 100);
    let meta = EventMetadata::for_actor("test");
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        store
            .execute(&id.to_string(), register(*id), &meta, None)
            .await
            .unwrap();
    }
    let erased = DataSubject::Customer(CustomerId::new(ids[2])).to_string();
    privacy::shred(&db.pool, &erased).await.unwrap();

    let old = MasterKey::from_base64(TEST_DATA_KEY).unwrap();
    let (new, _) = MasterKey::generate();
    let rotated = MasterKeys::new(new.clone(), vec![old.clone()]);
    let done = privacy::rotate(&db.pool, &rotated).await.unwrap();
    assert_eq!((done.rewrapped, done.current), (2, 2));
    assert_eq!(
        privacy::rotate(&db.pool, &rotated).await.unwrap().rewrapped,
        0
    );

    let payloads = || async {
        let events = wait_readable(&LogReader::new(db.pool.clone()), 3).await;
        events
            .into_iter()
            .map(|e| e.payload)
            .collect::<Vec<Value>>()
    };
    // The new key alone reads everything; the old key alone no longer can.
    let mut values = payloads().await;
    let mut refs: Vec<&mut Value> = values.iter_mut().collect();
    privacy::reveal_with(&db.pool, &MasterKeys::new(new, vec![]), &mut refs)
        .await
        .unwrap();
    let text = values.iter().map(Value::to_string).collect::<String>();
    assert_eq!(
        text.matches("ada.lovelace@example.com").count(),
        2,
        "{text}"
    );
    assert_eq!(
        text.matches("$erased").count(),
        2,
        "email and name of the erased one"
    );
    let mut values = payloads().await;
    let mut refs: Vec<&mut Value> = values.iter_mut().collect();
    let err = privacy::reveal_with(&db.pool, &MasterKeys::new(old, vec![]), &mut refs)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PrivacyError::UnknownMasterKey { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn concurrent_writers_of_a_new_subject_share_one_key() {
    let db = TestDatabase::new().await;
    let subject = format!("order:{}", Uuid::new_v4());
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let pool = db.pool.clone();
            let subject = subject.clone();
            tokio::spawn(async move {
                let mut value =
                    json!({"$subject": subject, "$personal": format!("guest{i}@example.com")});
                privacy::seal(&pool, &mut [&mut value]).await.unwrap();
                value
            })
        })
        .collect();
    let mut sealed = Vec::new();
    for task in tasks {
        sealed.push(task.await.unwrap());
    }
    let mut refs: Vec<&mut Value> = sealed.iter_mut().collect();
    privacy::reveal(&db.pool, &mut refs).await.unwrap();
    for (i, value) in sealed.iter().enumerate() {
        assert_eq!(value["$personal"], json!(format!("guest{i}@example.com")));
    }
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM data_keys")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(keys, 1);
}

#[tokio::test]
async fn the_domain_and_the_store_speak_the_same_markers() {
    use mercato_aggregates::personal as domain;
    assert_eq!(
        [
            domain::SUBJECT,
            domain::PERSONAL,
            domain::SEALED,
            domain::ERASED,
            domain::REDACTED
        ],
        [
            privacy::SUBJECT,
            privacy::PERSONAL,
            privacy::SEALED,
            privacy::ERASED,
            privacy::REDACTED
        ]
    );
    // A value the domain writes is one the store seals, and what it reveals the domain reads.
    let db = TestDatabase::new().await;
    let subject = DataSubject::Customer(CustomerId::new(Uuid::new_v4()));
    let email = Personal::new(subject, Email::new("grace@example.com").unwrap());
    let mut value = serde_json::to_value(&email).unwrap();
    privacy::seal(&db.pool, &mut [&mut value]).await.unwrap();
    assert!(
        serde_json::from_value::<Personal<Email>>(value.clone()).is_err(),
        "sealed"
    );
    privacy::reveal(&db.pool, &mut [&mut value]).await.unwrap();
    assert_eq!(
        serde_json::from_value::<Personal<Email>>(value).unwrap(),
        email
    );
}
