//! Schema evolution: a log written by the build before schema version 2 (recorded in
//! `tests/fixtures/schema-v1/`) is read by today's code: every view a node builds
//! from it answers exactly what the old build answered, and the command side folds
//! it and goes on writing (now at version 2) on top of it.
//!
//! The recorded run: KET-1 (GTIN, 10 units, adjusted -2, reserved 3 and shipped,
//! renamed and repriced), MUG-2 (12 received, 5 reserved and released, discontinued),
//! LAMP-3 (GTIN changed), orders o-1 (confirmed), o-2 (cancelled), o-3 (rejected).

use std::path::Path;

use serde_json::{Value, json};
use stockroom_tests::{Server, data_dir};
use stockroom_topics::{DumpedRecord, EmbeddedLog, Offset, Partition, Topic, TopicNames};

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/schema-v1"))
}

/// Writes the recorded records into a new embedded log in `dir`, each at its offset.
async fn restore(dir: &Path) {
    let text = std::fs::read_to_string(fixtures().join("events.jsonl")).expect("fixture events");
    let records: Vec<DumpedRecord> = text.lines().map(|l| serde_json::from_str(l).expect("a dumped record")).collect();
    assert!(records.iter().any(|r| r.headers.iter().any(|(n, v)| n == "schema-version" && v == "1")));
    let log = EmbeddedLog::open(&dir.join("log"), TopicNames::new("stockroom"), Some(4)).expect("open log");
    for r in &records {
        let offsets = log.append(Topic::Events, Partition(r.partition), vec![r.record()]).await.expect("append");
        assert_eq!(offsets, vec![Offset(r.offset)], "the fixture's offsets are contiguous");
    }
    log.close().await.expect("close log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_version_1_events_replay_into_todays_views() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap()).unwrap();
    let dir = data_dir();
    restore(dir.path()).await;
    let s = Server::start(dir.path(), &["--partitions", "4"]).await;

    for (sku, want) in expected["products"].as_object().unwrap() {
        let got = s.get(&format!("/products/{sku}")).await.expect(200).body;
        // Recorded before products had `sources` (catalog ingestion): events of that
        // build carry no feed origin, so today's answer adds an empty list.
        let mut want = want.clone();
        want["sources"] = Value::Array(Vec::new());
        assert_eq!(got, want, "product {sku}");
    }
    for (id, want) in expected["orders"].as_object().unwrap() {
        let got = s.get(&format!("/orders/{id}")).await.expect(200).body;
        assert_eq!(&got, want, "order {id}");
    }
    for (sku, want) in expected["history"].as_object().unwrap() {
        let got = s.get(&format!("/products/{sku}/history")).await.expect(200).body;
        let got: Vec<Value> =
            got["events"].as_array().unwrap().iter().map(|e| json!([e["version"], e["type"]])).collect();
        assert_eq!(&Value::from(got), want, "history of {sku}");
    }
    let low = s.get("/alerts/low-stock?threshold=5").await.expect(200).body;
    let mut want = expected["low_stock_5"].clone();
    for p in want["products"].as_array_mut().unwrap() {
        p["sources"] = Value::Array(Vec::new());
    }
    assert_eq!(low, want);
    // The registration reads in today's shape.
    let history = s.get("/products/KET-1/history").await.expect(200).body;
    assert_eq!(history["events"][0]["data"]["initial_on_hand"], 10, "{history}");
    assert!(history["events"][0]["data"].get("initial_stock").is_none());
    let hits = s.get("/search?q=kettle").await.expect(200).body;
    assert_eq!(hits["total"], 1, "{hits}");

    // The command side folded the old events: the next write builds on them.
    let a = s.post("/products/KET-1/stock/receipts", json!({"quantity": 4})).await.expect(200);
    assert_eq!(a.body["version"], 8);
    let at = a.header("stockroom-position").unwrap().to_owned();
    let p = s.get_at("/products/KET-1", &at).await.expect(200).body;
    assert_eq!(p["stock"]["on_hand"], 7);
    // The GTIN claims came through too: KET-1's GTIN is still taken, LAMP-3's old one is free.
    let taken = json!({"sku": "NEW-1", "name": "Copy", "gtin": "4006381333931", "price_cents": 1});
    s.post("/products", taken).await.expect_problem(409, "gtin-taken");
    let freed = json!({"sku": "NEW-2", "name": "Reuse", "gtin": "96385074", "price_cents": 1});
    s.post("/products", freed).await.expect(201);
    s.stop().await;
}
