//! The catalog against a real tantivy index on disk.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::*;
use crate::view::StockView;

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Cp {
    next: u64,
}

fn view(
    sku: &str,
    name: &str,
    description: &str,
    brand: &str,
    category: &str,
    cents: i64,
    available: u64,
) -> ProductView {
    ProductView {
        sku: sku.into(),
        name: name.into(),
        description: Some(description.into()),
        brand: Some(brand.into()),
        category: Some(category.into()),
        gtin: None,
        price_cents: cents,
        currency: "EUR".into(),
        attributes: BTreeMap::new(),
        status: ViewStatus::Active,
        version: 1,
        stock: StockView { on_hand: available, reserved: 0, available },
        sources: Vec::new(),
    }
}

fn sample() -> Vec<ProductView> {
    vec![
        view("K-1", "Steel kettle", "Boils water fast", "Acme", "kitchen", 2_999, 5),
        view("K-2", "Glass kettle", "See the water boil", "Brewster", "kitchen", 3_999, 0),
        view("T-1", "Toaster", "Two slots, steel body, fits a kettle-sized counter", "Acme", "kitchen", 1_999, 2),
        view("L-1", "Desk lamp", "Warm light", "Lumo", "office", 4_999, 7),
        view("A-1", "Acme anvil", "Heavy", "Wile", "garden", 9_999, 1),
    ]
}

fn catalog() -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(dir.path()).unwrap();
    catalog.write_batch(sample(), &Cp { next: 5 }).unwrap();
    (dir, catalog)
}

fn search(catalog: &Catalog, request: SearchRequest) -> SearchResponse {
    catalog.search(&SearchRequest { limit: if request.limit == 0 { 20 } else { request.limit }, ..request }).unwrap()
}

fn q(text: &str) -> SearchRequest {
    SearchRequest { q: Some(text.into()), ..Default::default() }
}

fn skus(response: &SearchResponse) -> Vec<&str> {
    response.hits.iter().map(|h| h.sku.as_str()).collect()
}

#[test]
fn upserts_replace_by_sku_and_survive_a_reopen_with_their_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    {
        let catalog = Catalog::open(dir.path()).unwrap();
        assert_eq!(catalog.checkpoint::<Cp>().unwrap(), None);
        catalog.write_batch(sample(), &Cp { next: 5 }).unwrap();
        let mut kettle = catalog.get("K-1").unwrap().unwrap();
        kettle.name = "Steel kettle XL".into();
        kettle.version = 2;
        catalog.write_batch(vec![kettle], &Cp { next: 6 }).unwrap();
        assert_eq!(catalog.num_docs(), 5);
    }
    let catalog = Catalog::open(dir.path()).unwrap();
    assert_eq!(catalog.checkpoint::<Cp>().unwrap(), Some(Cp { next: 6 }));
    let kettle = catalog.get("K-1").unwrap().unwrap();
    assert_eq!((kettle.name.as_str(), kettle.version), ("Steel kettle XL", 2));
    assert_eq!(catalog.get("nope").unwrap(), None);
    assert_eq!(
        catalog.dump().unwrap().iter().map(|v| v.sku.as_str()).collect::<Vec<_>>(),
        ["A-1", "K-1", "K-2", "L-1", "T-1"]
    );
}

#[test]
fn words_are_stemmed_and_all_must_match() {
    let (_dir, catalog) = catalog();
    let found = search(&catalog, q("kettles"));
    assert_eq!(found.total, 3, "{:?}", skus(&found)); // two names, one description
    let found = search(&catalog, q("STEEL kettle"));
    assert_eq!(BTreeSet::from_iter(skus(&found)), BTreeSet::from(["K-1", "T-1"]));
    assert_eq!(search(&catalog, q("kettle lamp")).total, 0);
}

#[test]
fn name_matches_outrank_description_matches() {
    let (_dir, catalog) = catalog();
    let found = search(&catalog, q("kettle"));
    assert_eq!(found.hits.last().unwrap().sku, "T-1", "{:?}", skus(&found));
    // Brand outranks description: "acme" is the brand of K-1 and T-1, and in A-1's name.
    let found = search(&catalog, q("acme"));
    assert_eq!(found.hits[0].sku, "A-1");
    assert_eq!(found.total, 3);
}

#[test]
fn phrases_and_exclusions() {
    let (_dir, catalog) = catalog();
    assert_eq!(skus(&search(&catalog, q("\"glass kettle\""))), ["K-2"]);
    assert_eq!(search(&catalog, q("\"kettle glass\"")).total, 0);
    assert_eq!(BTreeSet::from_iter(skus(&search(&catalog, q("kettle -glass")))), BTreeSet::from(["K-1", "T-1"]));
    // Only exclusions: everything else.
    assert_eq!(search(&catalog, q("-kettle")).total, 2);
    // Punctuation has no tokens and asks for nothing.
    assert_eq!(search(&catalog, q("!!! lamp")).total, 1);
}

#[test]
fn filters_combine_with_text() {
    let (_dir, catalog) = catalog();
    let r = |category: Option<&str>, brand: Option<&str>, min, max, in_stock| SearchRequest {
        category: category.map(Into::into),
        brand: brand.map(Into::into),
        min_price: min,
        max_price: max,
        in_stock,
        ..Default::default()
    };
    assert_eq!(search(&catalog, r(Some("kitchen"), None, None, None, None)).total, 3);
    assert_eq!(skus(&search(&catalog, r(Some("kitchen"), Some("Acme"), Some(2_000), None, None))), ["K-1"]);
    assert_eq!(search(&catalog, r(None, None, Some(1_999), Some(3_999), None)).total, 3);
    assert_eq!(skus(&search(&catalog, r(None, None, None, None, Some(false)))), ["K-2"]);
    assert_eq!(search(&catalog, r(None, None, None, None, Some(true))).total, 4);
    assert_eq!(search(&catalog, r(Some("Kitchen"), None, None, None, None)).total, 0, "filters are exact");
}

#[test]
fn discontinued_products_are_hidden_unless_asked_for() {
    let (_dir, catalog) = catalog();
    let mut lamp = catalog.get("L-1").unwrap().unwrap();
    lamp.status = ViewStatus::Discontinued;
    catalog.write_batch(vec![lamp], &Cp { next: 6 }).unwrap();
    assert_eq!(search(&catalog, q("lamp")).total, 0);
    assert_eq!(search(&catalog, SearchRequest { include_discontinued: true, ..q("lamp") }).total, 1);
    assert_eq!(catalog.get("L-1").unwrap().unwrap().status, ViewStatus::Discontinued);
}

#[test]
fn facets_count_every_hit_not_just_the_page() {
    let (_dir, catalog) = catalog();
    let found = search(&catalog, SearchRequest { limit: 1, ..Default::default() });
    assert_eq!(found.hits.len(), 1);
    assert_eq!(
        found.facets.category,
        vec![
            FacetCount { value: "kitchen".into(), count: 3 },
            FacetCount { value: "garden".into(), count: 1 },
            FacetCount { value: "office".into(), count: 1 },
        ]
    );
    assert_eq!(found.facets.brand[0], FacetCount { value: "Acme".into(), count: 2 });
    let kitchen = search(&catalog, SearchRequest { category: Some("kitchen".into()), ..Default::default() });
    assert_eq!(kitchen.facets.category, vec![FacetCount { value: "kitchen".into(), count: 3 }]);
}

#[test]
fn sorts() {
    let (_dir, catalog) = catalog();
    let by = |sort| skus(&search(&catalog, SearchRequest { sort, ..Default::default() })).join(",");
    assert_eq!(by(Sort::PriceAsc), "T-1,K-1,K-2,L-1,A-1");
    assert_eq!(by(Sort::PriceDesc), "A-1,L-1,K-2,K-1,T-1");
    assert_eq!(by(Sort::Name), "A-1,L-1,K-2,K-1,T-1");
    assert_eq!(by(Sort::Relevance), by(Sort::Name), "without words, relevance is name order");
}

#[test]
fn cursor_paging_visits_every_hit_once() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(dir.path()).unwrap();
    let views: Vec<_> = (0..53)
        .map(|i| view(&format!("S-{i:03}"), &format!("Widget {i}"), "a widget", "Acme", "parts", i * 10, 1))
        .collect();
    catalog.write_batch(views, &Cp { next: 53 }).unwrap();
    for sort in [Sort::Relevance, Sort::PriceAsc, Sort::PriceDesc, Sort::Name] {
        let mut seen = Vec::new();
        let mut request = SearchRequest { q: Some("widget".into()), sort, limit: 10, ..Default::default() };
        loop {
            let page = catalog.search(&request).unwrap();
            assert_eq!(page.total, 53);
            seen.extend(page.hits.iter().map(|h| h.sku.clone()));
            match page.next_cursor {
                Some(c) => request.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 53, "{sort:?}");
        assert_eq!(BTreeSet::from_iter(&seen).len(), 53, "{sort:?}: no hit twice");
    }
}

#[test]
fn bad_requests_are_refused_with_reasons() {
    let (_dir, catalog) = catalog();
    let refused = |request: SearchRequest| catalog.search(&request).unwrap_err();
    assert!(matches!(refused(SearchRequest { limit: 20, ..q("\"open") }), SearchError::BadQuery(_)));
    assert!(matches!(refused(SearchRequest { limit: 0, ..Default::default() }), SearchError::BadParameter { .. }));
    assert!(matches!(refused(SearchRequest { limit: 101, ..Default::default() }), SearchError::BadParameter { .. }));
    assert!(matches!(
        refused(SearchRequest { limit: 5, min_price: Some(10), max_price: Some(5), ..Default::default() }),
        SearchError::BadParameter { .. }
    ));
    assert!(matches!(
        refused(SearchRequest { limit: 5, cursor: Some("garbage".into()), ..Default::default() }),
        SearchError::BadCursor
    ));
    let deep = SearchRequest { limit: 5, ..Default::default() };
    let cursor = search::encode_cursor_for_test(MAX_DEPTH, &deep);
    assert!(matches!(refused(SearchRequest { cursor: Some(cursor), ..deep }), SearchError::BadParameter { .. }));
}

#[test]
fn a_catalog_of_another_schema_is_discarded_for_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut b = tantivy::schema::Schema::builder();
        b.add_text_field("something_else", tantivy::schema::STRING);
        let index = tantivy::Index::create_in_dir(dir.path(), b.build()).unwrap();
        let mut writer: tantivy::IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        let mut commit = writer.prepare_commit().unwrap();
        commit.set_payload("{\"next\":99}");
        commit.commit().unwrap();
    }
    let catalog = Catalog::open(dir.path()).unwrap();
    assert_eq!(catalog.checkpoint::<Cp>().unwrap(), None, "the old checkpoint went with the old index");
    assert_eq!(catalog.num_docs(), 0);
}

#[test]
fn a_repeated_search_is_answered_from_its_generation_and_a_commit_makes_it_fresh() {
    let (_dir, catalog) = catalog();
    let first = search(&catalog, q("kettle"));
    assert_eq!(catalog.answer_cache_counts(), (0, 1));
    let again = search(&catalog, q("kettle"));
    assert_eq!(again, first);
    assert_eq!(catalog.answer_cache_counts(), (1, 1), "the same request on the same generation is a hit");
    // Another page, sort or filter of the same words is another answer.
    search(&catalog, SearchRequest { sort: Sort::PriceAsc, ..q("kettle") });
    assert_eq!(catalog.answer_cache_counts(), (1, 2));

    // A commit: the next search sees the new kettle, not the kept answer.
    let mut copper = view("K-3", "Copper kettle", "Shiny", "Acme", "kitchen", 5_999, 1);
    copper.version = 1;
    catalog.write_batch(vec![copper], &Cp { next: 6 }).unwrap();
    let after = search(&catalog, q("kettle"));
    assert_eq!(after.total, first.total + 1);
    assert!(skus(&after).contains(&"K-3"));
    assert_eq!(catalog.answer_cache_counts(), (1, 3));
    assert_eq!(after, catalog.search_uncached(&SearchRequest { limit: 20, ..q("kettle") }).unwrap());
}

#[test]
fn the_answer_cache_stays_bounded() {
    let (_dir, catalog) = catalog();
    for i in 0..ANSWER_CACHE_CAPACITY + 10 {
        search(&catalog, q(&format!("kettle{i}")));
    }
    // The first of them was dropped when the cache filled: asking again computes it.
    search(&catalog, q("kettle0"));
    let (hits, misses) = catalog.answer_cache_counts();
    assert_eq!((hits, misses), (0, ANSWER_CACHE_CAPACITY as u64 + 11));
    assert!(catalog.answers.len() <= ANSWER_CACHE_CAPACITY);
}
