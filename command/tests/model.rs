//! Model-based test of the command side: random sequences of commands, retries and
//! crashes (stop, and stop with the state store deleted) run against the real
//! processor on a real embedded log, each outcome checked against a reference model.
//!
//! What it checks: every outcome is the model's (so an accepted command is applied
//! exactly once, and a retry of one is answered, not applied again); at the end the
//! state store equals the model (SKUs and GTINs unique, on hand ≥ 0, reserved ≤ on
//! hand), and the state rebuilt from the log alone equals the live state.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{Node, PARTITIONS, open_log, start_with};
use proptest::prelude::*;
use stockroom_command::protocol::{Outcome, Target};
use stockroom_command::store::StateStore;
use stockroom_domain::product::{DetailsPatch, Patch, ProductCommand, ProductDetails};
use stockroom_domain::testsuite::{details, receive, reserve};
use stockroom_domain::{Gtin, ReservationId, Sku};
use stockroom_topics::partitioner::partition_for_key;

const SKUS: usize = 4;
const GTINS: [&str; 3] = ["4006381333931", "00000000000017", "00000000000024"];
const RIDS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Register {
        sku: usize,
        gtin: Option<usize>,
        stock: u64,
    },
    Receive {
        sku: usize,
        qty: u64,
    },
    Reserve {
        sku: usize,
        rid: usize,
        qty: u64,
    },
    Confirm {
        sku: usize,
        rid: usize,
    },
    Release {
        sku: usize,
        rid: usize,
    },
    SetGtin {
        sku: usize,
        gtin: Option<usize>,
    },
    Discontinue {
        sku: usize,
    },
    /// Send an earlier accepted command again (same id, same request).
    Retry {
        pick: usize,
    },
    /// Several commands at once. Those that share a SKU or a GTIN with an earlier one
    /// of the group are dropped, so every interleaving ends the same and the model
    /// can still say what each one answers.
    Together(Vec<Op>),
    /// Stop the node; with `wipe`, delete its state so it is rebuilt from the log.
    Restart {
        wipe: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let sku = 0..SKUS;
    prop_oneof![
        3 => (sku.clone(), proptest::option::of(0..GTINS.len()), 0u64..5)
            .prop_map(|(sku, gtin, stock)| Op::Register { sku, gtin, stock }),
        2 => (sku.clone(), 1u64..4).prop_map(|(sku, qty)| Op::Receive { sku, qty }),
        3 => (sku.clone(), 0..RIDS, 1u64..4).prop_map(|(sku, rid, qty)| Op::Reserve { sku, rid, qty }),
        2 => (sku.clone(), 0..RIDS).prop_map(|(sku, rid)| Op::Confirm { sku, rid }),
        2 => (sku.clone(), 0..RIDS).prop_map(|(sku, rid)| Op::Release { sku, rid }),
        2 => (sku.clone(), proptest::option::of(0..GTINS.len())).prop_map(|(sku, gtin)| Op::SetGtin { sku, gtin }),
        1 => sku.prop_map(|sku| Op::Discontinue { sku }),
        2 => any::<usize>().prop_map(|pick| Op::Retry { pick }),
        1 => any::<bool>().prop_map(|wipe| Op::Restart { wipe }),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let step = prop_oneof![
        6 => op(),
        1 => proptest::collection::vec(op(), 2..5).prop_map(Op::Together),
    ];
    proptest::collection::vec(step, 1..40)
}

/// The SKU and GTINs a command touches (`None` for retries and restarts).
fn footprint(op: &Op) -> Option<(usize, Vec<usize>)> {
    match *op {
        Op::Register { sku, gtin, .. } | Op::SetGtin { sku, gtin } => Some((sku, gtin.into_iter().collect())),
        Op::Receive { sku, .. }
        | Op::Reserve { sku, .. }
        | Op::Confirm { sku, .. }
        | Op::Release { sku, .. }
        | Op::Discontinue { sku } => Some((sku, Vec::new())),
        Op::Retry { .. } | Op::Restart { .. } | Op::Together(_) => None,
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct MProduct {
    gtin: Option<usize>,
    on_hand: u64,
    reservations: BTreeMap<usize, u64>,
    discontinued: bool,
    version: u64,
}

#[derive(Default)]
struct Model {
    products: BTreeMap<usize, MProduct>,
}

/// What the model says a command ends in.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expect {
    Accepted { version: u64, changed: bool },
    Rejected(&'static str),
}

impl Model {
    fn holder(&self, gtin: usize) -> Option<usize> {
        self.products.iter().find(|(_, p)| p.gtin == Some(gtin)).map(|(s, _)| *s)
    }

    /// Applies `op` to the model and says what the processor must answer.
    fn apply(&mut self, op: &Op) -> Expect {
        use Expect::*;
        let ok = |p: &mut MProduct| {
            p.version += 1;
            Accepted { version: p.version, changed: true }
        };
        match *op {
            Op::Register { sku, gtin, stock } => {
                if let Some(g) = gtin
                    && self.holder(g).is_some_and(|h| h != sku)
                {
                    return Rejected("gtin-taken");
                }
                if self.products.contains_key(&sku) {
                    return Rejected("sku-taken");
                }
                let p = MProduct { gtin, on_hand: stock, version: 1, ..Default::default() };
                self.products.insert(sku, p);
                Accepted { version: 1, changed: true }
            }
            Op::SetGtin { sku, gtin } => {
                if let Some(g) = gtin
                    && self.holder(g).is_some_and(|h| h != sku)
                {
                    return Rejected("gtin-taken");
                }
                let Some(p) = self.products.get_mut(&sku) else { return Rejected("not-found") };
                if p.discontinued {
                    return Rejected("product-discontinued");
                }
                if p.gtin == gtin {
                    return Accepted { version: p.version, changed: false };
                }
                p.gtin = gtin;
                ok(p)
            }
            Op::Receive { sku, qty } => {
                let Some(p) = self.products.get_mut(&sku) else { return Rejected("not-found") };
                if p.discontinued {
                    return Rejected("product-discontinued");
                }
                p.on_hand += qty;
                ok(p)
            }
            Op::Reserve { sku, rid, qty } => {
                let Some(p) = self.products.get_mut(&sku) else { return Rejected("not-found") };
                if p.discontinued {
                    return Rejected("product-discontinued");
                }
                if p.reservations.contains_key(&rid) {
                    return Rejected("reservation-exists");
                }
                let reserved: u64 = p.reservations.values().sum();
                if qty > p.on_hand - reserved {
                    return Rejected("insufficient-stock");
                }
                p.reservations.insert(rid, qty);
                ok(p)
            }
            Op::Confirm { sku, rid } | Op::Release { sku, rid } => {
                let Some(p) = self.products.get_mut(&sku) else { return Rejected("not-found") };
                let Some(qty) = p.reservations.remove(&rid) else { return Rejected("not-found") };
                if matches!(op, Op::Confirm { .. }) {
                    p.on_hand -= qty;
                }
                ok(p)
            }
            Op::Discontinue { sku } => {
                let Some(p) = self.products.get_mut(&sku) else { return Rejected("not-found") };
                if p.discontinued {
                    return Rejected("product-discontinued");
                }
                p.discontinued = true;
                ok(p)
            }
            Op::Retry { .. } | Op::Restart { .. } | Op::Together(_) => unreachable!("not a command"),
        }
    }
}

fn sku(i: usize) -> Sku {
    Sku::parse(format!("S-{i}")).unwrap()
}

fn gtin(i: usize) -> Gtin {
    Gtin::parse(GTINS[i]).unwrap()
}

fn rid(i: usize) -> ReservationId {
    ReservationId::parse(format!("r-{i}")).unwrap()
}

fn product_details(g: Option<usize>) -> ProductDetails {
    ProductDetails { gtin: g.map(gtin), ..details("Widget") }
}

/// The product command of `op`.
fn command_of(op: &Op) -> (usize, ProductCommand) {
    match *op {
        Op::Register { sku, gtin, stock } => (
            sku,
            ProductCommand::Register(stockroom_domain::product::NewProduct {
                details: product_details(gtin),
                initial_stock: stock,
                origin: None,
            }),
        ),
        Op::SetGtin { sku, gtin: g } => {
            let patch = match g {
                Some(g) => Patch::Set(gtin(g)),
                None => Patch::Clear,
            };
            (sku, ProductCommand::UpdateDetails(DetailsPatch { gtin: patch, ..Default::default() }))
        }
        Op::Receive { sku, qty } => (sku, receive(qty)),
        Op::Reserve { sku, rid: r, qty } => (sku, reserve(rid(r).as_str(), qty)),
        Op::Confirm { sku, rid: r } => (sku, ProductCommand::ConfirmReservation { reservation_id: rid(r) }),
        Op::Release { sku, rid: r } => (sku, ProductCommand::ReleaseReservation { reservation_id: rid(r) }),
        Op::Discontinue { sku } => (sku, ProductCommand::Discontinue),
        Op::Retry { .. } | Op::Restart { .. } | Op::Together(_) => unreachable!("not a command"),
    }
}

fn check(outcome: &Outcome, expect: &Expect, what: &str) {
    match (outcome, expect) {
        (Outcome::Accepted { version, .. }, Expect::Accepted { version: v, .. }) if version == v => {}
        (Outcome::Rejected { rejection }, Expect::Rejected(kind)) if rejection.kind() == *kind => {}
        _ => panic!("{what}: got {outcome:?}, the model says {expect:?}"),
    }
}

async fn restart(node: Node, dir: &Path, wipe: bool) -> Node {
    node.stop().await;
    if wipe {
        std::fs::remove_dir_all(dir.join("state")).unwrap();
    }
    let node = start_with(open_log(dir), &dir.join("state"), "model").await;
    // Sagas a crash cut short (a claim not yet settled) are resumed at start; let them
    // finish so that the next command meets the state the model has.
    tokio::time::sleep(Duration::from_millis(300)).await;
    node
}

/// The state store, read after the node stopped, against the model.
fn assert_store_matches(dir: &Path, model: &Model, when: &str) {
    let store = StateStore::open(&dir.join("state")).unwrap();
    let partition = |key: &[u8]| store.partition(partition_for_key(key, PARTITIONS)).unwrap();
    for i in 0..SKUS {
        let s = sku(i);
        let found = partition(s.as_str().as_bytes()).product(&s).unwrap();
        match (found, model.products.get(&i)) {
            (None, None) => {}
            (Some(p), Some(m)) => {
                assert_eq!(p.version, m.version, "{when}: version of {s}");
                assert_eq!(p.stock.on_hand, m.on_hand, "{when}: on hand of {s}");
                assert_eq!(p.stock.reserved, m.reservations.values().sum::<u64>(), "{when}: reserved of {s}");
                assert!(p.stock.reserved <= p.stock.on_hand, "{when}: {s} reserves more than it has");
                assert_eq!(p.details.gtin, m.gtin.map(gtin), "{when}: GTIN of {s}");
            }
            (found, expected) => panic!("{when}: {s} is {found:?}, the model has {expected:?}"),
        }
    }
    for (g, raw) in GTINS.iter().enumerate() {
        let canonical = Gtin::parse(*raw).unwrap().canonical();
        let claim = partition(canonical.as_bytes()).gtin_claim(&canonical).unwrap();
        let held = claim.as_ref().and_then(|c| c.held.as_ref()).map(|h| h.sku.clone());
        assert_eq!(held, model.holder(g).map(sku), "{when}: holder of GTIN {raw} ({claim:?})");
        assert!(claim.as_ref().is_none_or(|c| c.pending.is_none()), "{when}: a claim of {raw} is still pending");
    }
}

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start_with(open_log(dir.path()), &dir.path().join("state"), "model").await;
    let mut model = Model::default();
    // Accepted commands that changed something: (id, target, the version they made).
    let mut accepted: Vec<(String, Target, u64)> = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        match op {
            Op::Restart { wipe } => node = restart(node, dir.path(), *wipe).await,
            Op::Together(group) => {
                // Keep the commands that touch nothing another one touches (including
                // the GTIN a product holds now, which a change would release).
                let mut skus = Vec::new();
                let mut gtins = Vec::new();
                let mut sends = Vec::new();
                for (k, op) in group.iter().enumerate() {
                    let Some((s, mut g)) = footprint(op) else { continue };
                    g.extend(model.products.get(&s).and_then(|p| p.gtin));
                    if skus.contains(&s) || g.iter().any(|x| gtins.contains(x)) {
                        continue;
                    }
                    skus.push(s);
                    gtins.extend(g);
                    let expect = model.apply(op);
                    let (s, command) = command_of(op);
                    let id = format!("op-{n}-{k}");
                    sends.push((id, Target::Product { sku: sku(s), command }, expect, op.clone()));
                }
                let outcomes = futures::future::join_all(
                    sends.iter().map(|(id, target, _, _)| node.send_target(id, "fp", target.clone())),
                )
                .await;
                for ((id, target, expect, op), outcome) in sends.into_iter().zip(outcomes) {
                    check(&outcome, &expect, &format!("op {n}: {op:?} (together)"));
                    if let Expect::Accepted { version, changed: true } = expect {
                        accepted.push((id, target, version));
                    }
                }
            }
            Op::Retry { pick } => {
                if accepted.is_empty() {
                    continue;
                }
                let (id, target, version) = accepted[pick % accepted.len()].clone();
                let outcome = node.send_target(&id, "fp", target).await;
                check(&outcome, &Expect::Accepted { version, changed: false }, &format!("op {n}: retry of {id}"));
            }
            op => {
                let expect = model.apply(op);
                let (s, command) = command_of(op);
                let id = format!("op-{n}");
                let target = Target::Product { sku: sku(s), command };
                let outcome = node.send_target(&id, "fp", target.clone()).await;
                check(&outcome, &expect, &format!("op {n}: {op:?}"));
                if let Expect::Accepted { version, changed: true } = expect {
                    accepted.push((id, target, version));
                }
            }
        }
    }
    // Let the last sagas (a release, a settle) land, then compare.
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.stop().await;
    assert_store_matches(dir.path(), &model, "live");
    // The same state, from the log alone.
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    let node = start_with(open_log(dir.path()), &dir.path().join("state"), "model").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.stop().await;
    assert_store_matches(dir.path(), &model, "rebuilt from the log");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_processor_agrees_with_the_model(ops in ops()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run(ops));
    }
}
