//! A synthetic catalog for the query side's benchmarks: product text (names, brands,
//! categories, descriptions) and reproducible randomness.
//!
//! Names are "<word> <product noun> <n>" and descriptions twelve words. The words come
//! from a vocabulary of 4,000 made-up words drawn with a Zipf-like skew (a few words
//! are common, most are rare), as in real product text; with a small uniform
//! vocabulary every query would match a large share of the catalog, which no real
//! catalog does.

#![allow(dead_code)] // each example uses part of it

use stockroom_domain::product::{Money, ProductDetails, ProductEvent, ProductEventBody, ReleaseReason};
use stockroom_domain::{CommandId, Currency, ReservationId, Sku, Timestamp};
use stockroom_topics::events::{Provenance, encode_product_event};
use stockroom_topics::{EventLog, Partition, Record, Topic, Writer, fence_record};

pub const WORDS: &[&str] = &[
    "steel", "kettle", "enamel", "mug", "lamp", "reading", "oak", "chair", "linen", "towel", "cast", "iron", "pan",
    "ceramic", "bowl", "wool", "blanket", "glass", "jar", "copper", "pot", "bamboo", "board", "cotton", "apron",
    "walnut", "shelf", "brass", "hook", "stone", "mortar", "pestle", "silk", "pillow", "clay", "vase",
];
pub const BRANDS: &[&str] = &["Hearth", "Nordic Home", "Acme", "Fjord", "Maison", "Atlas", "Kiln & Co", "Brightside"];
pub const CATEGORIES: &[&str] = &["kitchen", "lighting", "furniture", "bath", "textiles", "garden", "storage", "decor"];

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ren", "tor", "vel", "sa", "quin", "bor", "del", "fa", "gri", "hol", "jun", "mar", "nes", "pol",
    "ris", "tam", "ul", "ven", "wy", "zor", "bel", "cor", "dra", "el", "fin", "gal", "har", "in", "ket", "lum", "mor",
    "nal", "or", "pra", "rin", "sel", "tu",
];
/// Words in the vocabulary.
pub const VOCABULARY: usize = 4_000;

/// The `i`-th word of the vocabulary (distinct for every `i` below [`VOCABULARY`]).
pub fn vocabulary_word(i: usize) -> String {
    let n = SYLLABLES.len();
    format!("{}{}{}", SYLLABLES[i % n], SYLLABLES[(i / n) % n], SYLLABLES[(i / (n * n) + i) % n])
}

pub struct Rng(pub u64);
impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
    /// A word of the vocabulary, low indices far more often than high ones.
    pub fn word(&mut self) -> String {
        let u = self.below(1 << 24) as f64 / (1u64 << 24) as f64;
        vocabulary_word(((VOCABULARY as f64) * u.powi(3)) as usize)
    }
    pub fn words(&mut self, n: usize) -> String {
        (0..n).map(|_| self.word()).collect::<Vec<_>>().join(" ")
    }
    pub fn noun(&mut self) -> &'static str {
        WORDS[self.below(WORDS.len() as u64) as usize]
    }
}

/// The events of one product: registration, then a life of stock movements.
pub fn product_events(rng: &mut Rng, i: u64, count: u64) -> Vec<ProductEvent> {
    let sku = Sku::parse(format!("SKU-{i:07}")).expect("sku");
    let details = ProductDetails {
        name: format!("{} {} {}", rng.word(), rng.noun(), i),
        description: Some(rng.words(12)),
        brand: Some(BRANDS[rng.below(BRANDS.len() as u64) as usize].to_owned()),
        category: Some(CATEGORIES[rng.below(CATEGORIES.len() as u64) as usize].to_owned()),
        gtin: None,
        price: Money { cents: 100 + rng.below(20_000) as i64, currency: Currency::parse("EUR").expect("currency") },
        attributes: Default::default(),
    };
    let mut events = Vec::with_capacity(count as usize);
    let mut body = ProductEventBody::ProductRegistered { details: details.clone(), initial_stock: 50, origin: None };
    let mut open: Option<ReservationId> = None;
    for v in 1..=count {
        let at = Timestamp(1_790_000_000_000 + (i * 10 + v) as i64);
        events.push(ProductEvent {
            sku: sku.clone(),
            version: v,
            command_id: CommandId::parse(format!("bench-{i}-{v}")).expect("command id"),
            at,
            body: body.clone(),
        });
        body = match (v % 5, open.take()) {
            (0, _) => {
                let mut d = details.clone();
                d.price.cents += 1;
                ProductEventBody::DetailsUpdated {
                    details: d,
                    changed: vec![stockroom_domain::product::DetailField::Price],
                    origin: None,
                }
            }
            (1 | 3, None) => {
                let id = ReservationId::parse(format!("r-{v}")).expect("reservation id");
                open = Some(id.clone());
                ProductEventBody::StockReserved { reservation_id: id, quantity: 1, expires_at: None, order_id: None }
            }
            (_, Some(id)) if v % 2 == 0 => ProductEventBody::ReservationConfirmed { reservation_id: id, quantity: 1 },
            (_, Some(id)) => ProductEventBody::ReservationReleased {
                reservation_id: id,
                quantity: 1,
                reason: ReleaseReason::Released,
            },
            _ => ProductEventBody::StockReceived { quantity: 5, reference: Some(format!("PO-{v}")) },
        };
    }
    events
}

/// Writes `events` product events (`per_product` per product: the registration,
/// then stock movements) into `log`, behind one fence per partition; returns how many
/// products that is.
pub async fn write_log(log: &EventLog, partitions: u32, events: u64, per_product: u64) -> u64 {
    let products = events.div_ceil(per_product);
    let writer = Writer { epoch: 1, owner: "bench".into() };
    let mut batches: Vec<Vec<Record>> = (0..partitions).map(|_| Vec::new()).collect();
    for p in 0..partitions {
        log.append(Topic::Events, Partition(p), vec![fence_record(Partition(p), &writer, 0)]).await.expect("fence");
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut written = 0;
    for i in 0..products {
        let count = per_product.min(events - written);
        let evs = product_events(&mut rng, i, count);
        let p = log.partition_for_key(Topic::Events, evs[0].sku.as_str().as_bytes());
        for (k, e) in evs.iter().enumerate() {
            let record = encode_product_event(e, k, &writer, "/bench", &Provenance::default()).expect("encode");
            batches[p.0 as usize].push(record);
        }
        written += count;
        if batches[p.0 as usize].len() >= 5_000 {
            log.append(Topic::Events, p, std::mem::take(&mut batches[p.0 as usize])).await.expect("append");
        }
    }
    for (p, batch) in batches.into_iter().enumerate() {
        log.append(Topic::Events, Partition(p as u32), batch).await.expect("append");
    }
    products
}
