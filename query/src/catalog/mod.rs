//! The catalog: a tantivy index of [`ProductView`]s, one document per SKU.
//!
//! The whole view is stored (as JSON) beside the indexed fields, so a read never
//! needs anything but the index. Writes come only from the projector, in batches:
//! [`Catalog::write_batch`] upserts the batch's documents and commits them together
//! with the projector's checkpoint as the commit payload, then reloads the searcher,
//! so the batch is searchable as soon as `write_batch` returns.
//!
//! The index is a disposable view: if its schema is not the one this code writes
//! (an older build made it), it is thrown away and rebuilt from the log.

mod answers;
mod grammar;
mod search;

pub use answers::CAPACITY as ANSWER_CACHE_CAPACITY;
pub use grammar::{MAX_CLAUSES, MAX_QUERY_BYTES};
pub use search::{FacetCount, Facets, MAX_DEPTH, MAX_LIMIT, SearchError, SearchRequest, SearchResponse, Sort};

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{AllQuery, TermQuery};
use tantivy::schema::{
    FAST, Facet, FacetOptions, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use tracing::warn;

use crate::view::{ProductView, ViewStatus};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("catalog directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("catalog directory: {0}")]
    Directory(#[from] tantivy::directory::error::OpenDirectoryError),
    #[error("a stored catalog document is unreadable: {0}")]
    Document(#[from] serde_json::Error),
    #[error("a stored catalog document has no view")]
    MissingView,
}

/// The fields of a catalog document.
#[derive(Clone, Copy)]
struct Fields {
    /// Exact SKU: the document's identity, and the tie-break of every sort.
    sku: Field,
    /// Full text, English stemming, with positions for phrases.
    name: Field,
    description: Field,
    brand_text: Field,
    /// Exact values for the filters.
    category: Field,
    brand: Field,
    status: Field,
    /// Facet counts.
    category_facet: Field,
    brand_facet: Field,
    /// Sort keys and range filters.
    price: Field,
    available: Field,
    name_sort: Field,
    /// The whole view, as JSON.
    view: Field,
}

/// The tokenizer of the full-text fields: simple tokens, lowercased, English stems.
const TEXT_ANALYZER: &str = "en_stem";

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TEXT_ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        sku: b.add_text_field("sku", STRING | FAST),
        name: b.add_text_field("name", text.clone()),
        description: b.add_text_field("description", text.clone()),
        brand_text: b.add_text_field("brand_text", text),
        category: b.add_text_field("category", STRING),
        brand: b.add_text_field("brand", STRING),
        status: b.add_text_field("status", STRING),
        category_facet: b.add_facet_field("category_facet", FacetOptions::default()),
        brand_facet: b.add_facet_field("brand_facet", FacetOptions::default()),
        price: b.add_i64_field("price", INDEXED | FAST),
        available: b.add_u64_field("available", INDEXED | FAST),
        name_sort: b.add_text_field("name_sort", STRING | FAST),
        view: b.add_text_field("view", STORED),
    };
    (b.build(), fields)
}

/// Heap for the index writer; tantivy flushes a segment when it is full.
const WRITER_HEAP_BYTES: usize = 64 * 1024 * 1024;
/// Heap of a rebuild's writer (both threads together).
const REBUILD_WRITER_HEAP_BYTES: usize = 256 * 1024 * 1024;

pub struct Catalog {
    index: Index,
    fields: Fields,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    /// Answers of the current searcher generation ([`answers`]).
    answers: answers::Answers,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").finish_non_exhaustive()
    }
}

impl Catalog {
    /// Opens the catalog in `dir`, creating it if there is none (or rebuilding it
    /// from scratch if it was written with another schema).
    pub fn open(dir: &Path) -> Result<Catalog, CatalogError> {
        // One indexing thread: the projector writes small batches, and the machine
        // shares its cores with the command side.
        Self::open_with(dir, 1, WRITER_HEAP_BYTES)
    }

    /// Opens (or creates) a catalog that a rebuild fills: the index writer gets two
    /// threads and a larger heap, so indexing runs beside the log's decoding.
    pub fn open_for_rebuild(dir: &Path) -> Result<Catalog, CatalogError> {
        Self::open_with(dir, 2, REBUILD_WRITER_HEAP_BYTES)
    }

    fn open_with(dir: &Path, threads: usize, heap: usize) -> Result<Catalog, CatalogError> {
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = schema();
        let index = match Index::open_or_create(MmapDirectory::open(dir)?, schema.clone()) {
            Ok(index) => index,
            Err(tantivy::TantivyError::SchemaError(e)) => {
                warn!(dir = %dir.display(), error = %e, "catalog has another schema; discarding it to rebuild from the log");
                std::fs::remove_dir_all(dir)?;
                std::fs::create_dir_all(dir)?;
                Index::open_or_create(MmapDirectory::open(dir)?, schema)?
            }
            Err(e) => return Err(e.into()),
        };
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let writer = index.writer_with_num_threads(threads, heap)?;
        Ok(Catalog { index, fields, reader, writer: Mutex::new(writer), answers: answers::Answers::default() })
    }

    /// The checkpoint stored with the last commit, if any.
    pub fn checkpoint<C: DeserializeOwned>(&self) -> Result<Option<C>, CatalogError> {
        match self.index.load_metas()?.payload {
            Some(payload) => Ok(Some(serde_json::from_str(&payload)?)),
            None => Ok(None),
        }
    }

    /// Upserts `views` (one per SKU) and commits them with `checkpoint`, atomically;
    /// the new documents are searchable when this returns.
    pub fn write_batch<C: Serialize>(&self, views: Vec<ProductView>, checkpoint: &C) -> Result<(), CatalogError> {
        let payload = serde_json::to_string(checkpoint)?;
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        for view in &views {
            writer.delete_term(Term::from_field_text(self.fields.sku, &view.sku));
            writer.add_document(self.document(view)?)?;
        }
        self.commit(writer, &payload)
    }

    /// Empties the catalog (for a rebuild), committing `checkpoint` with the empty index.
    pub fn clear<C: Serialize>(&self, checkpoint: &C) -> Result<(), CatalogError> {
        let payload = serde_json::to_string(checkpoint)?;
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.delete_all_documents()?;
        self.commit(writer, &payload)
    }

    /// Commits what `writer` holds with `payload` (the checkpoint) and makes it
    /// searchable before returning.
    fn commit(&self, mut writer: MutexGuard<'_, IndexWriter>, payload: &str) -> Result<(), CatalogError> {
        let mut commit = writer.prepare_commit()?;
        commit.set_payload(payload);
        commit.commit()?;
        drop(writer);
        self.reader.reload()?;
        Ok(())
    }

    /// The current view of `sku`.
    pub fn get(&self, sku: &str) -> Result<Option<ProductView>, CatalogError> {
        let searcher = self.reader.searcher();
        let query = TermQuery::new(Term::from_field_text(self.fields.sku, sku), IndexRecordOption::Basic);
        let Some((_, address)) = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?.into_iter().next()
        else {
            return Ok(None);
        };
        Ok(Some(self.view_of(&searcher.doc(address)?)?))
    }

    /// How many products the catalog holds.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Every view, by SKU: for comparing a rebuilt catalog with the one it replaces.
    pub fn dump(&self) -> Result<Vec<ProductView>, CatalogError> {
        let searcher = self.reader.searcher();
        let limit = (searcher.num_docs() as usize).max(1);
        let mut views = searcher
            .search(&AllQuery, &TopDocs::with_limit(limit).order_by_score())?
            .into_iter()
            .map(|(_, address)| self.view_of(&searcher.doc(address)?))
            .collect::<Result<Vec<_>, _>>()?;
        views.sort_by(|a, b| a.sku.cmp(&b.sku));
        Ok(views)
    }

    fn view_of(&self, doc: &TantivyDocument) -> Result<ProductView, CatalogError> {
        let json = doc.get_first(self.fields.view).and_then(|v| v.as_str()).ok_or(CatalogError::MissingView)?;
        Ok(serde_json::from_str(json)?)
    }

    fn document(&self, view: &ProductView) -> Result<TantivyDocument, CatalogError> {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.sku, &view.sku);
        doc.add_text(f.name, &view.name);
        if let Some(d) = &view.description {
            doc.add_text(f.description, d);
        }
        if let Some(b) = &view.brand {
            doc.add_text(f.brand_text, b);
            doc.add_text(f.brand, b);
            doc.add_facet(f.brand_facet, Facet::from_path([b.as_str()]));
        }
        if let Some(c) = &view.category {
            doc.add_text(f.category, c);
            doc.add_facet(f.category_facet, Facet::from_path([c.as_str()]));
        }
        doc.add_text(f.status, view.status.as_str());
        doc.add_i64(f.price, view.price_cents);
        doc.add_u64(f.available, view.stock.available);
        doc.add_text(f.name_sort, name_sort_key(&view.name, &view.sku));
        doc.add_text(f.view, serde_json::to_string(view)?);
        Ok(doc)
    }
}

/// Case-insensitive name order, SKU as the tie-break so the order is total.
fn name_sort_key(name: &str, sku: &str) -> String {
    format!("{}\u{0}{sku}", name.to_lowercase())
}

impl ViewStatus {
    fn active_term(field: Field) -> Term {
        Term::from_field_text(field, ViewStatus::Active.as_str())
    }
}

#[cfg(test)]
mod tests;
