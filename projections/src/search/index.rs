//! Writing the index: documents per SKU, batched commits with the checkpoint as payload,
//! near-real-time reader reloads.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use mercato_aggregates::product::ProductEvent;
use mercato_aggregates::stock::StockEvent;
use mercato_event_store::{Position, RecordedEvent};
use mercato_nats::{ConsumerConfig, Delivery, Handler, HandlerError, Worker};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tantivy::directory::MmapDirectory;
use tantivy::schema::{
    Facet, FacetOptions, Field, NumericOptions, Schema, TextOptions, Value, STORED, STRING, TEXT,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::decode::decode;
use crate::error::ProjectionError;
use crate::runtime::ProjectionDeps;

/// Bumped when the schema, the documents or the meaning of the payload change: an index of
/// another version is rebuilt. 2: the position is a watermark (gaps filled from the log).
/// 3: typos and prefixes are matched on one field of the short texts (`tolerant`).
/// 4: attributes are facets (`attribute`: `/<key>/<value>`, `attribute_key`: the keys), for
/// attribute filters and counts; an index of version 3 lacks them and is rebuilt.
pub const SEARCH_VERSION: u32 = 4;

const WRITER_MEMORY: usize = 50_000_000;

/// Most events the search worker applies in one commit.
const SEARCH_BATCH: usize = 2048;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub sku: Field,
    pub name: Field,
    pub description: Field,
    pub brand_text: Field,
    pub brand: Field,
    pub category: Field,
    pub category_text: Field,
    pub attributes: Field,
    /// Each attribute as the facet `/<key>/<value>` (values counted per key).
    pub attribute: Field,
    /// Each attribute's key as a raw term: the keys there are, to count their values.
    pub attribute_key: Field,
    /// Name, brand, category and attributes in one field: typos and prefixes are matched
    /// here, one automaton per query word instead of one per field.
    pub tolerant: Field,
    pub price: Field,
    pub available: Field,
    pub status: Field,
    pub doc: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let num = NumericOptions::default()
        .set_indexed()
        .set_fast()
        .set_stored();
    let fields = Fields {
        sku: b.add_text_field("sku", STRING | STORED),
        name: b.add_text_field("name", TEXT | STORED),
        description: b.add_text_field("description", TEXT | STORED),
        brand_text: b.add_text_field("brand_text", TEXT),
        brand: b.add_facet_field("brand", FacetOptions::default()),
        category: b.add_facet_field("category", FacetOptions::default()),
        category_text: b.add_text_field("category_text", TEXT),
        attributes: b.add_text_field("attributes", TEXT),
        attribute: b.add_facet_field("attribute", FacetOptions::default()),
        attribute_key: b.add_text_field("attribute_key", STRING),
        tolerant: b.add_text_field("tolerant", TEXT),
        price: b.add_u64_field("price", num.clone()),
        available: b.add_u64_field("available", num),
        status: b.add_text_field("status", STRING),
        doc: b.add_text_field("doc", TextOptions::default().set_stored()),
    };
    (b.build(), fields)
}

/// What the index knows of one SKU (stored whole in the document, so the index alone is
/// the state: a restart reloads it and checks sequences against it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProductDoc {
    pub sku: String,
    pub product_seq: i64,
    pub stock_seq: i64,
    pub name: String,
    pub description: String,
    pub brand: String,
    pub category: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub price: i64,
    pub currency: String,
    /// `none` until the product is created (stock can come first), then its status.
    pub status: String,
    pub available: u64,
}

/// The checkpoint stored as the commit payload.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Payload {
    version: u32,
    position: Position,
    last_event_id: Option<Uuid>,
}

struct WriterState {
    writer: IndexWriter,
    docs: HashMap<String, ProductDoc>,
}

pub(crate) struct Inner {
    pub index: Index,
    pub reader: IndexReader,
    pub fields: Fields,
    state: Mutex<WriterState>,
    /// Position the searchable index reflects (committed, or only non-catalog events after it).
    position: RwLock<(Position, Option<Uuid>)>,
    fresh: bool,
    dir: PathBuf,
}

/// A replica's search index (cheap to clone).
#[derive(Clone)]
pub struct SearchIndex {
    pub(crate) inner: Arc<Inner>,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it (or recreating it when it is of another
    /// version or unreadable) as needed, and loads its documents.
    pub fn open(dir: &Path) -> Result<Self, ProjectionError> {
        std::fs::create_dir_all(dir)?;
        match Self::try_open(dir) {
            Ok(Some(index)) => Ok(index),
            Ok(None) => Self::recreate(dir),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "search index unreadable; rebuilding it");
                Self::recreate(dir)
            }
        }
    }

    fn recreate(dir: &Path) -> Result<Self, ProjectionError> {
        std::fs::remove_dir_all(dir)?;
        std::fs::create_dir_all(dir)?;
        Self::try_open(dir)?.ok_or_else(|| ProjectionError::Payload("fresh index refused".into()))
    }

    /// `None` when the directory holds an index of another version.
    fn try_open(dir: &Path) -> Result<Option<Self>, ProjectionError> {
        let (schema, fields) = schema();
        let directory = MmapDirectory::open(dir)
            .map_err(|e| ProjectionError::Payload(format!("cannot open {}: {e}", dir.display())))?;
        let index = Index::open_or_create(directory, schema.clone())?;
        if index.schema() != schema {
            return Ok(None);
        }
        let metas = index.load_metas()?;
        let payload = match metas.payload.as_deref() {
            None => None,
            Some(text) => Some(
                serde_json::from_str::<Payload>(text)
                    .map_err(|e| ProjectionError::Payload(e.to_string()))?,
            ),
        };
        if matches!(payload, Some(p) if p.version != SEARCH_VERSION) {
            return Ok(None);
        }
        let reader: IndexReader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let mut docs = HashMap::new();
        let searcher = reader.searcher();
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(1)?;
            for id in segment.doc_ids_alive() {
                let stored: TantivyDocument = store.get(id)?;
                if let Some(json) = stored.get_first(fields.doc).and_then(|v| v.as_str()) {
                    let doc: ProductDoc = serde_json::from_str(json)
                        .map_err(|e| ProjectionError::Payload(e.to_string()))?;
                    docs.insert(doc.sku.clone(), doc);
                }
            }
        }
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        let position = payload
            .map(|p| (p.position, p.last_event_id))
            .unwrap_or((Position::START, None));
        Ok(Some(Self {
            inner: Arc::new(Inner {
                index,
                reader,
                fields,
                state: Mutex::new(WriterState { writer, docs }),
                position: RwLock::new(position),
                fresh: payload.is_none(),
                dir: dir.to_owned(),
            }),
        }))
    }

    /// Whether the index had no commit when opened (its consumer must start from the beginning).
    pub fn is_fresh(&self) -> bool {
        self.inner.fresh
    }

    /// The directory it lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The position the searchable index has reached, and its last event id.
    pub fn position(&self) -> (Position, Option<Uuid>) {
        *self
            .inner
            .position
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The position stored in the last commit's payload (what a restart resumes from).
    pub fn committed_position(&self) -> Result<Option<Position>, ProjectionError> {
        let metas = self.inner.index.load_metas()?;
        metas
            .payload
            .as_deref()
            .map(|t| {
                serde_json::from_str::<Payload>(t)
                    .map(|p| p.position)
                    .map_err(|e| ProjectionError::Payload(e.to_string()))
            })
            .transpose()
    }

    /// Searchable documents (published products).
    pub fn published_count(&self) -> u64 {
        let searcher = self.inner.reader.searcher();
        let term = Term::from_field_text(self.inner.fields.status, "published");
        let query = tantivy::query::TermQuery::new(term, tantivy::schema::IndexRecordOption::Basic);
        searcher
            .search(&query, &tantivy::collector::Count)
            .map(|n| n as u64)
            .unwrap_or(0)
    }

    /// Applies a delivered batch after completing it from the PostgreSQL log: when events
    /// between the index's position and the batch's last event are missing (awaiting a
    /// redelivery), the whole range is read from the log instead, so the position stays a
    /// watermark (every event up to it applied) and no gap waits for a redelivery.
    pub async fn apply_with_log(
        &self,
        pool: &PgPool,
        events: Vec<RecordedEvent>,
    ) -> Result<(), ProjectionError> {
        let events = super::repair::complete(pool, self.position().0, events).await?;
        if events.is_empty() {
            return Ok(());
        }
        self.apply(events).await
    }

    /// Applies a batch of events and commits (off the async runtime).
    pub async fn apply(&self, events: Vec<RecordedEvent>) -> Result<(), ProjectionError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.apply_blocking(&events))
            .await
            .map_err(|e| ProjectionError::Payload(format!("index task failed: {e}")))?
    }

    fn apply_blocking(&self, events: &[RecordedEvent]) -> Result<(), ProjectionError> {
        let inner = &self.inner;
        let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let (mut position, mut last_event_id) = self.position();
        let mut overlay: HashMap<String, ProductDoc> = HashMap::new();
        for event in events {
            if event.position > position {
                position = event.position;
                last_event_id = Some(event.event_id);
            }
            let is_product = match event.aggregate_type.as_str() {
                "Product" => true,
                "Stock" => false,
                _ => continue,
            };
            let sku = &event.aggregate_id;
            let doc = overlay.entry(sku.clone()).or_insert_with(|| {
                state.docs.get(sku).cloned().unwrap_or_else(|| ProductDoc {
                    sku: sku.clone(),
                    status: "none".into(),
                    ..ProductDoc::default()
                })
            });
            let applied = if is_product {
                doc.product_seq
            } else {
                doc.stock_seq
            };
            if event.sequence <= applied {
                continue;
            }
            if event.sequence > applied + 1 {
                return Err(ProjectionError::SequenceGap {
                    aggregate_type: event.aggregate_type.clone(),
                    aggregate_id: sku.clone(),
                    sequence: event.sequence,
                    expected: applied + 1,
                });
            }
            if is_product {
                apply_product(doc, decode(event)?);
                doc.product_seq = event.sequence;
            } else {
                apply_stock(doc, decode(event)?);
                doc.stock_seq = event.sequence;
            }
        }
        overlay.retain(|sku, doc| state.docs.get(sku) != Some(doc));
        if !overlay.is_empty() {
            let f = inner.fields;
            for doc in overlay.values() {
                state
                    .writer
                    .delete_term(Term::from_field_text(f.sku, &doc.sku));
                state.writer.add_document(to_document(&f, doc))?;
            }
            let payload = serde_json::to_string(&Payload {
                version: SEARCH_VERSION,
                position,
                last_event_id,
            })
            .map_err(|e| ProjectionError::Payload(e.to_string()))?;
            let committed = state.writer.prepare_commit().and_then(|mut prepared| {
                prepared.set_payload(&payload);
                prepared.commit()
            });
            if let Err(e) = committed {
                let _ = state.writer.rollback();
                return Err(e.into());
            }
            state.docs.extend(overlay);
            inner.reader.reload()?;
        }
        *inner.position.write().unwrap_or_else(|e| e.into_inner()) = (position, last_event_id);
        metrics::gauge!("projection_position", "projection" => "search")
            .set(position.global_position() as f64);
        Ok(())
    }
}

fn apply_product(doc: &mut ProductDoc, event: ProductEvent) {
    let set_details = |doc: &mut ProductDoc, d: &mercato_aggregates::product::ProductDetails| {
        doc.name = d.name.as_str().to_owned();
        doc.description = d.description.as_str().to_owned();
        doc.brand = d.brand.as_str().to_owned();
        doc.category = d.category.segments().to_vec();
        doc.attributes = d.attributes.entries().clone();
    };
    match event {
        ProductEvent::ProductCreated { details, price, .. } => {
            set_details(doc, &details);
            doc.price = price.amount();
            doc.currency = price.currency().as_str().to_owned();
            doc.status = "draft".into();
        }
        ProductEvent::ProductDetailsUpdated { details } => set_details(doc, &details),
        ProductEvent::ProductPriceChanged { new_price, .. } => {
            doc.price = new_price.amount();
            doc.currency = new_price.currency().as_str().to_owned();
        }
        ProductEvent::ProductPublished => doc.status = "published".into(),
        ProductEvent::ProductUnpublished => doc.status = "unpublished".into(),
        ProductEvent::ProductDiscontinued => doc.status = "discontinued".into(),
    }
}

fn apply_stock(doc: &mut ProductDoc, event: StockEvent) {
    match event {
        StockEvent::StockReceived {
            total_available, ..
        }
        | StockEvent::StockAdjusted {
            total_available, ..
        }
        | StockEvent::StockReserved {
            total_available, ..
        }
        | StockEvent::StockReservationReleased {
            total_available, ..
        }
        | StockEvent::StockReservationCommitted {
            total_available, ..
        }
        | StockEvent::StockRestocked {
            total_available, ..
        } => doc.available = total_available,
        StockEvent::StockReservationRejected { .. } => {}
    }
}

fn to_document(f: &Fields, doc: &ProductDoc) -> TantivyDocument {
    let mut d = TantivyDocument::new();
    d.add_text(f.sku, &doc.sku);
    d.add_text(f.name, &doc.name);
    d.add_text(f.description, &doc.description);
    d.add_text(f.brand_text, &doc.brand);
    if !doc.brand.is_empty() {
        d.add_facet(f.brand, Facet::from_path([doc.brand.as_str()]));
    }
    if !doc.category.is_empty() {
        d.add_facet(f.category, Facet::from_path(doc.category.iter()));
        d.add_text(f.category_text, doc.category.join(" "));
    }
    // An attribute without a value is text to match, but nothing to filter or count by.
    for (key, value) in doc.attributes.iter().filter(|(_, v)| !v.is_empty()) {
        d.add_facet(f.attribute, Facet::from_path([key, value]));
        d.add_text(f.attribute_key, key);
    }
    let attributes: Vec<&str> = doc
        .attributes
        .iter()
        .flat_map(|(k, v)| [k.as_str(), v.as_str()])
        .collect();
    let attributes = attributes.join(" ");
    d.add_text(
        f.tolerant,
        format!(
            "{} {} {} {attributes}",
            doc.name,
            doc.brand,
            doc.category.join(" ")
        ),
    );
    d.add_text(f.attributes, attributes);
    d.add_u64(f.price, u64::try_from(doc.price).unwrap_or(0));
    d.add_u64(f.available, doc.available);
    d.add_text(f.status, &doc.status);
    d.add_text(f.doc, serde_json::to_string(doc).unwrap_or_default());
    d
}

/// Feeds a replica's index from its own durable consumer (`search-<replica_id>`).
pub struct SearchWorker {
    index: SearchIndex,
    deps: ProjectionDeps,
    consumer: ConsumerConfig,
}

impl SearchWorker {
    /// A worker for `index`, consuming as replica `replica_id`.
    pub fn new(index: SearchIndex, deps: ProjectionDeps, replica_id: &str) -> Self {
        let name: String = replica_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut consumer = ConsumerConfig::new(format!("search-{name}"));
        // A commit (segment write, fsync, reader reload) costs far more than indexing a
        // document: under load, take everything that has arrived into one commit.
        consumer.batch_size = SEARCH_BATCH;
        Self {
            index,
            deps,
            consumer,
        }
    }

    /// Overrides the consumer settings (tests).
    pub fn with_consumer(mut self, f: impl FnOnce(&mut ConsumerConfig)) -> Self {
        f(&mut self.consumer);
        self
    }

    /// Runs until `shutdown`. A fresh index (no commit yet) starts its consumer over from
    /// the beginning of the stream; otherwise the consumer resumes after the last ack, which
    /// the handler sends only after the commit holding those events.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ProjectionError> {
        if self.index.is_fresh() {
            if let Ok(stream) = self.deps.js.get_stream(&self.deps.nats.stream).await {
                if stream
                    .delete_consumer(&self.consumer.durable_name)
                    .await
                    .is_ok()
                {
                    tracing::info!(consumer = %self.consumer.durable_name, "fresh search index: replaying the stream");
                }
            }
        }
        let worker = Worker::bind(
            self.deps.client.clone(),
            self.deps.js.clone(),
            &self.deps.nats,
            self.consumer.clone(),
        )
        .await?;
        let handler = SearchHandler {
            index: self.index.clone(),
            pool: self.deps.pool.clone(),
        };
        let lag = tokio::spawn(report_lag(
            self.index.clone(),
            self.deps.pool.clone(),
            shutdown.clone(),
        ));
        let result = worker.run(&handler, shutdown).await;
        lag.abort();
        result?;
        Ok(())
    }
}

struct SearchHandler {
    index: SearchIndex,
    pool: PgPool,
}

#[async_trait::async_trait]
impl Handler for SearchHandler {
    async fn handle(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        let events = batch.iter().map(|d| d.event.clone()).collect();
        self.index
            .apply_with_log(&self.pool, events)
            .await
            .map_err(|e| Box::new(e) as HandlerError)
    }
}

/// Sets this replica's `projection_lag_events` and `projection_lag_seconds`
/// (`projection="search"`) every 5 s, as the PostgreSQL projections do theirs.
async fn report_lag(index: SearchIndex, pool: PgPool, shutdown: CancellationToken) {
    let reader = mercato_event_store::LogReader::new(pool);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
        }
        match reader.health(index.position().0).await {
            Ok(health) => crate::lag::set_lag("search", &health),
            Err(e) => tracing::warn!(error = %e, "cannot measure the search index's lag"),
        }
    }
}
