//! `GET /search`: full text, filters, facets, sort and cursor paging.

use std::ops::Bound;

use serde::{Deserialize, Serialize};
use tantivy::collector::sort_key::{SortBySimilarityScore, SortByStaticFastValue, SortByString};
use tantivy::collector::{Count, FacetCollector, FacetCounts, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, BoostQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery};
use tantivy::schema::{Facet, Field, IndexRecordOption};
use tantivy::tokenizer::TokenStream;
use tantivy::{DocAddress, Order, Searcher, Term};
use utoipa::ToSchema;

use super::grammar::{self, Clause};
use super::{Catalog, CatalogError, TEXT_ANALYZER};
use crate::view::{ProductView, ViewStatus};

/// The most hits one page returns.
pub const MAX_LIMIT: usize = 100;
/// How deep paging goes: hits beyond this rank are not served (narrow the search).
pub const MAX_DEPTH: usize = 10_000;
/// The most values reported per facet.
const MAX_FACET_VALUES: usize = 50;

/// Field weights of the full-text match.
const NAME_BOOST: f32 = 3.0;
const BRAND_BOOST: f32 = 2.0;
const DESCRIPTION_BOOST: f32 = 1.0;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// BM25 score, best first; without a `q`, the same as `Name`.
    #[default]
    Relevance,
    PriceAsc,
    PriceDesc,
    /// Case-insensitive name, then SKU.
    Name,
}

impl Sort {
    fn as_str(self) -> &'static str {
        match self {
            Sort::Relevance => "relevance",
            Sort::PriceAsc => "price_asc",
            Sort::PriceDesc => "price_desc",
            Sort::Name => "name",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SearchRequest {
    pub q: Option<String>,
    pub category: Option<String>,
    pub brand: Option<String>,
    /// Cents, inclusive.
    pub min_price: Option<i64>,
    /// Cents, inclusive.
    pub max_price: Option<i64>,
    /// `true`: only products with available stock; `false`: only those without.
    pub in_stock: Option<bool>,
    pub include_discontinued: bool,
    pub sort: Sort,
    pub limit: usize,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

/// Value counts over every hit of the search (not just the page), most frequent first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Facets {
    pub category: Vec<FacetCount>,
    pub brand: Vec<FacetCount>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SearchResponse {
    /// How many products match (all pages).
    pub total: u64,
    pub hits: Vec<ProductView>,
    pub facets: Facets,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{0}")]
    BadQuery(String),
    #[error("the cursor does not belong to this search")]
    BadCursor,
    #[error("{name}: {message}")]
    BadParameter { name: String, message: String },
    #[error(transparent)]
    Index(#[from] CatalogError),
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(e: tantivy::TantivyError) -> Self {
        SearchError::Index(e.into())
    }
}

fn bad(name: &str, message: impl Into<String>) -> SearchError {
    SearchError::BadParameter { name: name.into(), message: message.into() }
}

impl SearchRequest {
    fn validate(&self) -> Result<(), SearchError> {
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(bad("limit", format!("limit must be from 1 to {MAX_LIMIT}")));
        }
        if let (Some(min), Some(max)) = (self.min_price, self.max_price)
            && min > max
        {
            return Err(bad("min_price", "min_price is above max_price"));
        }
        Ok(())
    }

    /// A digest of everything that selects and orders the hits: a cursor is only
    /// valid for the search that issued it.
    fn fingerprint(&self) -> u64 {
        let mut h = Fnv::default();
        for part in [
            self.q.as_deref().unwrap_or(""),
            self.category.as_deref().unwrap_or(""),
            self.brand.as_deref().unwrap_or(""),
            &format!("{:?}|{:?}|{:?}|{}", self.min_price, self.max_price, self.in_stock, self.include_discontinued),
            self.sort.as_str(),
        ] {
            h.write(part.as_bytes());
            h.write(&[0xff]);
        }
        h.0
    }

    fn offset(&self) -> Result<usize, SearchError> {
        let Some(cursor) = &self.cursor else { return Ok(0) };
        let (offset, fingerprint) = decode_cursor(cursor).ok_or(SearchError::BadCursor)?;
        if fingerprint != self.fingerprint() {
            return Err(SearchError::BadCursor);
        }
        if offset >= MAX_DEPTH {
            return Err(bad(
                "cursor",
                format!("pages beyond the first {MAX_DEPTH} hits are not served; narrow the search"),
            ));
        }
        Ok(offset)
    }
}

/// 64-bit FNV-1a: stable across builds and platforms, unlike `DefaultHasher`.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn encode_cursor(offset: usize, fingerprint: u64) -> String {
    format!("{offset:x}.{fingerprint:016x}")
}

fn decode_cursor(cursor: &str) -> Option<(usize, u64)> {
    let (offset, fingerprint) = cursor.split_once('.')?;
    if fingerprint.len() != 16 {
        return None;
    }
    Some((usize::from_str_radix(offset, 16).ok()?, u64::from_str_radix(fingerprint, 16).ok()?))
}

impl Catalog {
    /// Answers `request`: from the answers already computed on the current searcher
    /// generation when the same request was asked since the last commit (see
    /// [`super::answers`]), else by [`Catalog::search_uncached`].
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResponse, SearchError> {
        let searcher = self.reader.searcher();
        let generation = searcher.generation().generation_id();
        if let Some(answer) = self.answers.get(generation, request) {
            return Ok(answer);
        }
        let answer = self.search_on(&searcher, request)?;
        self.answers.put(generation, request, &answer);
        Ok(answer)
    }

    /// Computes the answer on the index, whether or not it was asked before (what the
    /// in-process benchmark measures).
    pub fn search_uncached(&self, request: &SearchRequest) -> Result<SearchResponse, SearchError> {
        self.search_on(&self.reader.searcher(), request)
    }

    /// Searches answered from the cache of answers, and searches computed, since this
    /// catalog was opened.
    pub fn answer_cache_counts(&self) -> (u64, u64) {
        self.answers.counts()
    }

    fn search_on(&self, searcher: &Searcher, request: &SearchRequest) -> Result<SearchResponse, SearchError> {
        request.validate()?;
        let offset = request.offset()?;
        let clauses = grammar::parse(request.q.as_deref().unwrap_or("")).map_err(SearchError::BadQuery)?;
        let has_text = clauses.iter().any(|c| !c.negated);
        let query = self.query(&clauses, request);
        let limit = request.limit.min(MAX_DEPTH - offset);
        let top = TopDocs::with_limit(limit).and_offset(offset);
        let sort = match request.sort {
            Sort::Relevance if !has_text => Sort::Name,
            sort => sort,
        };
        // Equal keys are ordered by SKU, so the order (and every cursor's page) is the
        // same on every node and after every rebuild, whatever the index's segments.
        let sku = || (SortByString::for_field("sku"), Order::Asc);
        let price = || SortByStaticFastValue::<i64>::for_field("price");
        let (total, addresses, categories, brands) = match sort {
            Sort::Relevance => {
                self.collect(searcher, &query, top.order_by(((SortBySimilarityScore, Order::Desc), sku())))?
            }
            Sort::PriceAsc => self.collect(searcher, &query, top.order_by(((price(), Order::Asc), sku())))?,
            Sort::PriceDesc => self.collect(searcher, &query, top.order_by(((price(), Order::Desc), sku())))?,
            Sort::Name => self.collect(searcher, &query, top.order_by_string_fast_field("name_sort", Order::Asc))?,
        };
        let hits =
            addresses.into_iter().map(|a| self.view_of(&searcher.doc(a)?)).collect::<Result<Vec<_>, CatalogError>>()?;
        let end = offset + hits.len();
        let next_cursor =
            (end < total && end < MAX_DEPTH && !hits.is_empty()).then(|| encode_cursor(end, request.fingerprint()));
        Ok(SearchResponse {
            total: total as u64,
            hits,
            facets: Facets { category: facet_values(&categories), brand: facet_values(&brands) },
            next_cursor,
        })
    }

    fn collect<K, C>(
        &self,
        searcher: &Searcher,
        query: &dyn Query,
        top: C,
    ) -> Result<(usize, Vec<DocAddress>, FacetCounts, FacetCounts), SearchError>
    where
        C: tantivy::collector::Collector<Fruit = Vec<(K, DocAddress)>>,
    {
        let mut categories = FacetCollector::for_field("category_facet");
        categories.add_facet(Facet::root());
        let mut brands = FacetCollector::for_field("brand_facet");
        brands.add_facet(Facet::root());
        let (total, top, categories, brands) = searcher.search(query, &(Count, top, categories, brands))?;
        Ok((total, top.into_iter().map(|(_, a)| a).collect(), categories, brands))
    }

    /// The tantivy query of the text clauses and the filters.
    fn query(&self, clauses: &[Clause], request: &SearchRequest) -> BooleanQuery {
        let f = &self.fields;
        let mut parts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for clause in clauses {
            let Some(text_query) = self.text_query(clause) else { continue };
            parts.push((if clause.negated { Occur::MustNot } else { Occur::Must }, text_query));
        }
        if !parts.iter().any(|(occur, _)| *occur == Occur::Must) {
            parts.push((Occur::Must, Box::new(AllQuery)));
        }
        let exact = |field: Field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic))
        };
        if let Some(category) = &request.category {
            parts.push((Occur::Must, exact(f.category, category)));
        }
        if let Some(brand) = &request.brand {
            parts.push((Occur::Must, exact(f.brand, brand)));
        }
        if request.min_price.is_some() || request.max_price.is_some() {
            let bound =
                |b: Option<i64>| b.map_or(Bound::Unbounded, |v| Bound::Included(Term::from_field_i64(f.price, v)));
            parts.push((Occur::Must, Box::new(RangeQuery::new(bound(request.min_price), bound(request.max_price)))));
        }
        match request.in_stock {
            Some(true) => parts.push((
                Occur::Must,
                Box::new(RangeQuery::new(Bound::Included(Term::from_field_u64(f.available, 1)), Bound::Unbounded)),
            )),
            Some(false) => parts.push((
                Occur::Must,
                Box::new(TermQuery::new(Term::from_field_u64(f.available, 0), IndexRecordOption::Basic)),
            )),
            None => {}
        }
        if !request.include_discontinued {
            parts.push((
                Occur::Must,
                Box::new(TermQuery::new(ViewStatus::active_term(f.status), IndexRecordOption::Basic)),
            ));
        }
        BooleanQuery::new(parts)
    }

    /// One clause across the text fields (any field may match), or `None` if the
    /// clause has no searchable token (punctuation only).
    fn text_query(&self, clause: &Clause) -> Option<Box<dyn Query>> {
        let tokens = self.analyze(&clause.text);
        if tokens.is_empty() {
            return None;
        }
        let f = &self.fields;
        let per_field = [(f.name, NAME_BOOST), (f.brand_text, BRAND_BOOST), (f.description, DESCRIPTION_BOOST)]
            .into_iter()
            .map(|(field, boost)| {
                let terms: Vec<Term> = tokens.iter().map(|t| Term::from_field_text(field, t)).collect();
                // A word that analyzes into several tokens ("x-ray") is a phrase too.
                let q: Box<dyn Query> = if terms.len() == 1 {
                    Box::new(TermQuery::new(terms.into_iter().next()?, IndexRecordOption::WithFreqs))
                } else {
                    Box::new(PhraseQuery::new(terms))
                };
                Some((Occur::Should, Box::new(BoostQuery::new(q, boost)) as Box<dyn Query>))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Box::new(BooleanQuery::new(per_field)))
    }

    fn analyze(&self, text: &str) -> Vec<String> {
        let Some(mut analyzer) = self.index.tokenizers().get(TEXT_ANALYZER) else { return Vec::new() };
        let mut stream = analyzer.token_stream(text);
        let mut tokens = Vec::new();
        while stream.advance() {
            tokens.push(stream.token().text.clone());
        }
        tokens
    }
}

fn facet_values(counts: &FacetCounts) -> Vec<FacetCount> {
    let mut values: Vec<FacetCount> = counts
        .get(Facet::root())
        .filter_map(|(facet, count)| {
            let value = facet.to_path().last()?.to_string();
            Some(FacetCount { value, count })
        })
        .collect();
    values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    values.truncate(MAX_FACET_VALUES);
    values
}

#[cfg(test)]
pub(super) fn encode_cursor_for_test(offset: usize, request: &SearchRequest) -> String {
    encode_cursor(offset, request.fingerprint())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let fp = 0x0123_4567_89ab_cdef;
        assert_eq!(decode_cursor(&encode_cursor(40, fp)), Some((40, fp)));
        for garbage in ["", ".", "zz.0123456789abcdef", "10.123", "10", "10.0123456789abcdeg"] {
            assert_eq!(decode_cursor(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn a_cursor_only_fits_its_own_search() {
        let first = SearchRequest { q: Some("kettle".into()), limit: 10, ..Default::default() };
        let cursor = encode_cursor(10, first.fingerprint());
        let next = SearchRequest { cursor: Some(cursor.clone()), ..first.clone() };
        assert_eq!(next.offset().unwrap(), 10);
        let other = SearchRequest { q: Some("toaster".into()), cursor: Some(cursor), ..first };
        assert!(matches!(other.offset(), Err(SearchError::BadCursor)));
    }
}
