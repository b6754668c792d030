//! Replay equivalence, as a property: for random command histories, the catalog the
//! live projector maintains (folding the log in whatever batches it happened to see
//! while the history was being written) equals the catalog rebuilt from offset 0 on
//! request and swapped in — compared as a canonical dump of every product and as
//! the answers to a fixed set of searches — and both equal a plain fold of the
//! accepted events (the model).
//!
//! The histories are decided by the domain (so they are histories a processor could
//! write), cut into appends of random sizes across partitions, and include writer
//! changes: a new fence, after which a zombie (the old writer) appends an event that
//! every reader must ignore. Real parts: an embedded sled log, tantivy indexes, the
//! node's projector, rebuilder and catalog slot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use proptest::prelude::*;
use stockroom_domain::product::{
    DetailsPatch, Money, NewProduct, Product, ProductCommand, ProductDetails, decide, evolve,
};
use stockroom_domain::product::{ProductEvent, ProductEventBody};
use stockroom_domain::{CommandId, Context, Currency, Quantity, ReservationId, Sku, Timestamp};
use stockroom_query::catalog::{SearchRequest, SearchResponse, Sort};
use stockroom_query::{CatalogProjector, CatalogSlot, OrderBook, ProductView, Rebuilder, ViewUpdate};
use stockroom_topics::events::{Provenance, encode_product_event};
use stockroom_topics::replay::{RebuildRequested, ReplayMessage};
use stockroom_topics::{EmbeddedLog, EventLog, Partition, Position, Record, Topic, TopicNames, Writer, fence_record};
use tokio_util::sync::CancellationToken;

const PARTITIONS: u32 = 3;
const SKUS: &[&str] = &["KET-1", "MUG-2", "LAMP-3", "PAN-4", "JAR-5", "OAK-6"];
const WORDS: &[&str] = &["steel kettle", "enamel mug", "reading lamp", "cast iron pan", "glass jar", "oak chair"];
const BRANDS: &[&str] = &["Hearth", "Acme", "Fjord"];

#[derive(Clone, Debug)]
enum Step {
    Register {
        sku: usize,
        name: usize,
        brand: usize,
        price: i64,
        stock: u64,
    },
    Rename {
        sku: usize,
        name: usize,
        price: i64,
    },
    Discontinue {
        sku: usize,
    },
    Receive {
        sku: usize,
        quantity: u64,
    },
    Adjust {
        sku: usize,
        delta: i64,
    },
    Reserve {
        sku: usize,
        reservation: u8,
        quantity: u64,
    },
    Confirm {
        sku: usize,
        reservation: u8,
    },
    Release {
        sku: usize,
        reservation: u8,
    },
    /// A new writer claims the partition of `sku`; the old one then appends an event
    /// for it anyway (a zombie).
    NewWriter {
        sku: usize,
    },
    /// Let the live projector catch up before going on.
    Pause,
}

fn step() -> impl Strategy<Value = Step> {
    let sku = 0..SKUS.len();
    prop_oneof![
        3 => (sku.clone(), 0..WORDS.len(), 0..BRANDS.len(), 0i64..10_000, 0u64..20)
            .prop_map(|(sku, name, brand, price, stock)| Step::Register { sku, name, brand, price, stock }),
        2 => (sku.clone(), 0..WORDS.len(), 0i64..10_000).prop_map(|(sku, name, price)| Step::Rename { sku, name, price }),
        1 => sku.clone().prop_map(|sku| Step::Discontinue { sku }),
        3 => (sku.clone(), 1u64..10).prop_map(|(sku, quantity)| Step::Receive { sku, quantity }),
        1 => (sku.clone(), -5i64..5).prop_map(|(sku, delta)| Step::Adjust { sku, delta }),
        3 => (sku.clone(), 0u8..4, 1u64..6).prop_map(|(sku, reservation, quantity)| Step::Reserve { sku, reservation, quantity }),
        2 => (sku.clone(), 0u8..4).prop_map(|(sku, reservation)| Step::Confirm { sku, reservation }),
        2 => (sku.clone(), 0u8..4).prop_map(|(sku, reservation)| Step::Release { sku, reservation }),
        1 => sku.clone().prop_map(|sku| Step::NewWriter { sku }),
        1 => Just(Step::Pause),
    ]
}

fn details(name: usize, brand: usize, price: i64) -> ProductDetails {
    ProductDetails {
        name: WORDS[name].to_owned(),
        description: Some(format!("a {} for every home", WORDS[name])),
        brand: Some(BRANDS[brand].to_owned()),
        category: Some(if price % 2 == 0 { "kitchen" } else { "home" }.to_owned()),
        gtin: None,
        price: Money { cents: price, currency: Currency::parse("EUR").unwrap() },
        attributes: Default::default(),
    }
}

fn command(step: &Step) -> Option<(usize, ProductCommand)> {
    let q = |n: u64| Quantity::new(n).unwrap();
    let r = |n: u8| ReservationId::parse(format!("r-{n}")).unwrap();
    Some(match *step {
        Step::Register { sku, name, brand, price, stock } => (
            sku,
            ProductCommand::Register(NewProduct {
                details: details(name, brand, price),
                initial_stock: stock,
                origin: None,
            }),
        ),
        Step::Rename { sku, name, price } => (
            sku,
            ProductCommand::UpdateDetails(DetailsPatch {
                name: Some(WORDS[name].to_owned()),
                price_cents: Some(price),
                ..DetailsPatch::default()
            }),
        ),
        Step::Discontinue { sku } => (sku, ProductCommand::Discontinue),
        Step::Receive { sku, quantity } => {
            (sku, ProductCommand::ReceiveStock { quantity: q(quantity), reference: None })
        }
        Step::Adjust { sku, delta } => (sku, ProductCommand::AdjustStock { delta, reason: "count".into() }),
        Step::Reserve { sku, reservation, quantity } => (
            sku,
            ProductCommand::Reserve {
                reservation_id: r(reservation),
                quantity: q(quantity),
                expires_at: None,
                order_id: None,
            },
        ),
        Step::Confirm { sku, reservation } => {
            (sku, ProductCommand::ConfirmReservation { reservation_id: r(reservation) })
        }
        Step::Release { sku, reservation } => {
            (sku, ProductCommand::ReleaseReservation { reservation_id: r(reservation) })
        }
        Step::NewWriter { .. } | Step::Pause => return None,
    })
}

/// The fixed searches both catalogs must answer alike.
fn searches() -> Vec<SearchRequest> {
    let base = SearchRequest { limit: 50, ..SearchRequest::default() };
    vec![
        SearchRequest { q: Some("kettle".into()), ..base.clone() },
        SearchRequest { q: Some("home".into()), sort: Sort::PriceAsc, ..base.clone() },
        SearchRequest { brand: Some("Acme".into()), sort: Sort::Name, ..base.clone() },
        SearchRequest { in_stock: Some(true), sort: Sort::PriceDesc, ..base.clone() },
        SearchRequest { category: Some("kitchen".into()), include_discontinued: true, ..base.clone() },
        SearchRequest { min_price: Some(1_000), max_price: Some(6_000), sort: Sort::Name, ..base.clone() },
        SearchRequest { q: Some("lamp OR jar".into()), ..base },
    ]
}

struct History {
    log: EventLog,
    writers: Vec<Writer>,
    products: BTreeMap<String, Product>,
    model: BTreeMap<String, ProductView>,
    commands: u64,
}

impl History {
    fn partition(&self, sku: &str) -> Partition {
        self.log.partition_for_key(Topic::Events, sku.as_bytes())
    }

    fn encode(&self, event: &ProductEvent, p: Partition, writer: &Writer) -> Record {
        encode_product_event(event, 0, writer, "/test", &Provenance::default()).unwrap_or_else(|e| panic!("{e} {p:?}"))
    }

    async fn run(&mut self, step: &Step) {
        match step {
            Step::Pause => tokio::time::sleep(Duration::from_millis(30)).await,
            Step::NewWriter { sku } => {
                let p = self.partition(SKUS[*sku]);
                let old = self.writers[p.0 as usize].clone();
                let new = Writer { epoch: old.epoch + 1, owner: format!("w{}", old.epoch + 1) };
                self.log.append(Topic::Events, p, vec![fence_record(p, &new, 0)]).await.unwrap();
                self.writers[p.0 as usize] = new;
                // The zombie: an event the old writer still appends, at the next
                // version, that no reader may apply.
                if let Some(product) = self.products.get(SKUS[*sku]) {
                    let zombie = ProductEvent {
                        sku: product.sku.clone(),
                        version: product.version + 1,
                        command_id: CommandId::parse("zombie").unwrap(),
                        at: Timestamp(1),
                        body: ProductEventBody::StockReceived { quantity: 1_000, reference: None },
                    };
                    let record = self.encode(&zombie, p, &old);
                    self.log.append(Topic::Events, p, vec![record]).await.unwrap();
                }
            }
            other => {
                let (i, command) = command(other).expect("a command");
                self.commands += 1;
                let sku = Sku::parse(SKUS[i]).unwrap();
                let ctx = Context::new(CommandId::parse(format!("c-{}", self.commands)).unwrap(), Timestamp(10));
                let state = self.products.get(SKUS[i]);
                let Ok(events) = decide(state, &sku, &command, &ctx) else { return };
                let p = self.partition(SKUS[i]);
                let writer = self.writers[p.0 as usize].clone();
                let records = events.iter().map(|e| self.encode(e, p, &writer)).collect();
                self.log.append(Topic::Events, p, records).await.unwrap();
                for e in &events {
                    let next = evolve(self.products.remove(SKUS[i]), e);
                    if let Some(next) = next {
                        self.products.insert(SKUS[i].to_owned(), next);
                    }
                    match ProductView::apply(self.model.get(SKUS[i]), e) {
                        ViewUpdate::Applied(view) => {
                            self.model.insert(SKUS[i].to_owned(), *view);
                        }
                        other => panic!("the model refused a decided event: {other:?}"),
                    }
                }
            }
        }
    }
}

async fn head(log: &EventLog) -> Position {
    let mut p = Position::default();
    for i in 0..PARTITIONS {
        p.set(Partition(i), log.end_offset(Topic::Events, Partition(i)).await.unwrap());
    }
    p
}

/// A query node's catalog side on `log`: the live projector and the rebuilder.
struct QueryNode {
    slot: Arc<CatalogSlot>,
    applied: tokio::sync::watch::Receiver<stockroom_topics::Position>,
    status: Arc<stockroom_query::RebuildStatus>,
    cancel: CancellationToken,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl QueryNode {
    fn start(log: &EventLog, data: &std::path::Path) -> QueryNode {
        std::fs::create_dir_all(data).unwrap();
        let slot = Arc::new(CatalogSlot::open(data).unwrap());
        let (orders, fresh) = OrderBook::open(&data.join("orders")).unwrap();
        let (projector, applied) = CatalogProjector::new(log.clone(), slot.clone(), Arc::new(orders), fresh).unwrap();
        let rebuilder = Rebuilder::new(log.clone(), slot.clone(), projector.swapper(), "test");
        let status = rebuilder.status();
        let cancel = CancellationToken::new();
        let tasks = [tokio::spawn(projector.run(cancel.clone())), tokio::spawn(rebuilder.run(cancel.clone()))];
        QueryNode { slot, applied, status, cancel, tasks }
    }

    async fn stop(cancel: CancellationToken, tasks: [tokio::task::JoinHandle<()>; 2]) {
        cancel.cancel();
        for t in tasks {
            t.await.unwrap();
        }
    }
}

async fn check(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let log =
        EventLog::embedded(EmbeddedLog::open(&dir.path().join("log"), TopicNames::new("t"), Some(PARTITIONS)).unwrap());
    let writers: Vec<Writer> = (0..PARTITIONS).map(|_| Writer { epoch: 1, owner: "w1".into() }).collect();
    for (p, w) in writers.iter().enumerate() {
        log.append(Topic::Events, Partition(p as u32), vec![fence_record(Partition(p as u32), w, 0)]).await.unwrap();
    }
    let data = dir.path().join("node");
    let QueryNode { slot, mut applied, status, cancel, tasks } = QueryNode::start(&log, &data);

    // Write the history while the live projector folds it.
    let mut history =
        History { log: log.clone(), writers, products: BTreeMap::new(), model: BTreeMap::new(), commands: 0 };
    for s in &steps {
        history.run(s).await;
    }
    let end = head(&log).await;
    tokio::time::timeout(Duration::from_secs(30), applied.wait_for(|p| p.covers(&end))).await.unwrap().unwrap();
    let live = slot.current();
    let live_dump = live.dump().unwrap();
    let model: Vec<ProductView> = history.model.values().cloned().collect();
    prop_assert_eq!(&live_dump, &model, "the live catalog differs from the fold of the accepted events");
    let live_answers: Vec<_> = searches().iter().map(|r| live.search(r).unwrap()).collect();
    drop(live);

    // Rebuild from offset 0 on request; wait for the swap.
    let request = ReplayMessage::Requested(RebuildRequested { view: "catalog".into(), by: "test".into(), at_ms: 0 });
    log.append(Topic::Replay, Partition(0), vec![request.encode("/test")]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while status.completed.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the rebuild finishes");
    let rebuilt = slot.current();
    prop_assert_eq!(rebuilt.dump().unwrap(), live_dump, "the rebuilt catalog differs from the live one");
    for (request, live_answer) in searches().iter().zip(&live_answers) {
        let answer = rebuilt.search(request).unwrap();
        if request.q.is_some() && request.sort == Sort::Relevance {
            // BM25 counts documents deleted but not merged away yet (every upsert
            // deletes one), so a live index's scores can differ a little from a fresh
            // one's: the same hits and facets, but near scores may swap places.
            prop_assert_eq!(answer.total, live_answer.total, "search {:?}", request);
            prop_assert_eq!(&answer.facets, &live_answer.facets, "search {:?}", request);
            let skus = |a: &SearchResponse| a.hits.iter().map(|h| h.sku.clone()).collect::<BTreeSet<_>>();
            prop_assert_eq!(skus(&answer), skus(live_answer), "search {:?}", request);
        } else {
            prop_assert_eq!(&answer, live_answer, "search {:?}", request);
        }
    }
    prop_assert!(std::fs::read_to_string(data.join("catalog.current")).unwrap().starts_with("catalog.r"));
    prop_assert!(!data.join("catalog").exists(), "the replaced catalog is deleted");
    QueryNode::stop(cancel, tasks).await;
    log.close().await.unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_live_catalog_equals_the_catalog_rebuilt_from_offset_0(steps in prop::collection::vec(step(), 1..80)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(check(steps))?;
    }
}

/// A rebuild cut short (its task stopped mid-way, as by a crash) resumes from its last
/// commit when the rebuilder starts again, and the result equals the live catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_cut_short_resumes_from_its_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let log =
        EventLog::embedded(EmbeddedLog::open(&dir.path().join("log"), TopicNames::new("t"), Some(PARTITIONS)).unwrap());
    let writer = Writer { epoch: 1, owner: "w1".into() };
    for p in 0..PARTITIONS {
        log.append(Topic::Events, Partition(p), vec![fence_record(Partition(p), &writer, 0)]).await.unwrap();
    }
    // 3,000 products, registered and then received into, in appends of 100.
    let mut history = History {
        log: log.clone(),
        writers: vec![writer; PARTITIONS as usize],
        products: BTreeMap::new(),
        model: BTreeMap::new(),
        commands: 0,
    };
    let mut records: Vec<Vec<Record>> = vec![Vec::new(); PARTITIONS as usize];
    for i in 0..3_000u64 {
        let sku = Sku::parse(format!("P-{i}")).unwrap();
        let ctx = Context::new(CommandId::parse(format!("c-{i}")).unwrap(), Timestamp(10));
        let register = ProductCommand::Register(NewProduct {
            details: details(i as usize % 6, 0, i as i64),
            initial_stock: i,
            origin: None,
        });
        let events = decide(None, &sku, &register, &ctx).unwrap();
        let p = history.partition(sku.as_str());
        for e in &events {
            records[p.0 as usize].push(history.encode(e, p, &history.writers[p.0 as usize]));
            history.model.insert(
                sku.as_str().to_owned(),
                match ProductView::apply(None, e) {
                    ViewUpdate::Applied(v) => *v,
                    other => panic!("{other:?}"),
                },
            );
        }
        if records[p.0 as usize].len() >= 100 {
            log.append(Topic::Events, p, std::mem::take(&mut records[p.0 as usize])).await.unwrap();
        }
    }
    for (p, batch) in records.into_iter().enumerate() {
        log.append(Topic::Events, Partition(p as u32), batch).await.unwrap();
    }
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    let slot = Arc::new(CatalogSlot::open(&data).unwrap());
    let (orders, fresh) = OrderBook::open(&data.join("orders")).unwrap();
    let (projector, mut applied) = CatalogProjector::new(log.clone(), slot.clone(), Arc::new(orders), fresh).unwrap();
    let swaps = projector.swapper();
    let cancel = CancellationToken::new();
    let projecting = tokio::spawn(projector.run(cancel.clone()));
    let end = head(&log).await;
    applied.wait_for(|p| p.covers(&end)).await.unwrap();
    let request = ReplayMessage::Requested(RebuildRequested { view: "catalog".into(), by: "test".into(), at_ms: 0 });
    log.append(Topic::Replay, Partition(0), vec![request.encode("/test")]).await.unwrap();

    // A rebuilder that commits every 50 records, stopped once it has read some.
    let first = Rebuilder::new(log.clone(), slot.clone(), swaps.clone(), "test").commit_every(50);
    let status = first.status();
    let stop_first = CancellationToken::new();
    let running = tokio::spawn(first.run(stop_first.clone()));
    tokio::time::timeout(Duration::from_secs(30), async {
        while status.latest().is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the first rebuilder reads");
    stop_first.cancel();
    running.await.unwrap();
    assert_eq!(status.completed.load(Ordering::Relaxed), 0, "stopped before the swap");

    // Started again, it finds the rebuild's last commit and goes on from there.
    let second = Rebuilder::new(log.clone(), slot.clone(), swaps, "test");
    let status = second.status();
    let rebuilding = tokio::spawn(second.run(cancel.clone()));
    tokio::time::timeout(Duration::from_secs(30), async {
        while status.completed.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the second rebuilder finishes");
    let resumed = status.resumed_from.load(Ordering::Relaxed);
    assert!(resumed >= 50, "the rebuild started over instead of resuming ({resumed})");
    let model: Vec<ProductView> = history.model.values().cloned().collect();
    assert_eq!(slot.current().dump().unwrap(), model, "the resumed rebuild lost or doubled products");
    assert!(std::fs::read_to_string(data.join("catalog.current")).unwrap().starts_with("catalog.r"));
    cancel.cancel();
    projecting.await.unwrap();
    rebuilding.await.unwrap();
    log.close().await.unwrap();
}

/// Garbage on the replay topic goes to the dead-letter topic with its reason, and the
/// request after it is still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_replay_record_goes_to_the_dlq_and_rebuilds_go_on() {
    use stockroom_topics::dlq::origin_of;
    use stockroom_topics::{Offset, Record};
    let dir = tempfile::tempdir().unwrap();
    let log =
        EventLog::embedded(EmbeddedLog::open(&dir.path().join("log"), TopicNames::new("t"), Some(PARTITIONS)).unwrap());
    let data = dir.path().join("node");
    let QueryNode { slot, mut applied, status, cancel, tasks } = QueryNode::start(&log, &data);
    // Let the first (empty) catalog commit, so that later requests are not pre-answered.
    let mut history = History {
        log: log.clone(),
        writers: vec![Writer { epoch: 1, owner: "w1".into() }; 3],
        products: BTreeMap::new(),
        model: BTreeMap::new(),
        commands: 0,
    };
    history.run(&Step::Register { sku: 0, name: 0, brand: 0, price: 10, stock: 1 }).await;
    let end = head(&log).await;
    applied.wait_for(|p| p.covers(&end)).await.unwrap();
    while slot.current().checkpoint::<stockroom_query::CatalogCheckpoint>().unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let garbage =
        Record { key: Some(b"catalog".to_vec()), headers: Default::default(), payload: b"{".to_vec(), timestamp_ms: 0 };
    let request = ReplayMessage::Requested(RebuildRequested { view: "catalog".into(), by: "test".into(), at_ms: 0 });
    log.append(Topic::Replay, Partition(0), vec![garbage, request.encode("/test")]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while status.completed.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the request after the garbage is answered");
    let mut dlq = log.reader(Topic::Dlq, &[(Partition(0), Offset(0))]).unwrap();
    let dead = dlq.poll(10, Duration::from_secs(5)).await.unwrap();
    let origin = dead.first().and_then(|d| origin_of(&d.record)).expect("a dead letter with its origin");
    assert_eq!(origin.topic, "replay");
    assert!(!origin.reason.is_empty());
    assert_eq!(slot.current().dump().unwrap(), history.model.values().cloned().collect::<Vec<_>>());
    QueryNode::stop(cancel, tasks).await;
    log.close().await.unwrap();
}
