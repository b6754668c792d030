//! `stockroom log export`: an embedded log copied into Kafka serves the same answers
//! from a Kafka-backed node; a second export resumes (copies nothing); topics that
//! hold another log are refused.

use std::process::Command;

use serde_json::json;
use stockroom_tests::{Backend, Server, binary, data_dir, kafka_bootstrap, order};

fn export(dir: &std::path::Path, kafka: &Backend) -> std::process::Output {
    Command::new(binary())
        .args(["log", "export", "--data-dir"])
        .arg(dir)
        .args(kafka.args())
        .output()
        .expect("run stockroom log export")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_log_serves_the_same_answers_on_kafka() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let prefix = format!("export-{}-{nanos:x}", std::process::id());
    let kafka = Backend::Kafka { bootstrap: kafka_bootstrap(), prefix: prefix.clone() };

    // An embedded node with some history: products, a GTIN, stock, an order.
    let dir = data_dir();
    let s = Server::start(dir.path(), &["--topic-prefix", &prefix, "--partitions", "4"]).await;
    for (sku, gtin, stock) in [("EXP-A", "4006381333931", 5), ("EXP-B", "00000000000017", 3)] {
        let body = json!({"sku": sku, "name": format!("Exported {sku}"), "brand": "Acme", "price_cents": 250,
                          "gtin": gtin, "initial_stock": stock});
        s.post("/products", body).await.expect(201);
    }
    s.post("/products/EXP-A/stock/receipts", json!({"quantity": 2})).await.expect(200);
    let a = s.post("/orders", order("exp-o", &[("EXP-A", 1), ("EXP-B", 2)])).await.expect(201);
    let at = a.header("stockroom-position").unwrap().to_owned();
    let paths = [
        "/products/EXP-A",
        "/products/EXP-B",
        "/search?q=exported&sort=name",
        "/orders/exp-o",
        "/products/EXP-A/history",
    ];
    let mut before = Vec::new();
    for p in paths {
        before.push(s.get_at(p, &at).await.expect(200).body);
    }
    s.stop().await;

    let out = export(dir.path(), &kafka);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "export failed: {}{}", stdout, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("exported") && !stdout.contains("exported 0 records"), "{stdout}");
    // Run again: everything is there, nothing is copied twice.
    let out = export(dir.path(), &kafka);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("exported 0 records"), "{stdout}");

    // A Kafka node, with nothing but the topics, answers the same (the position
    // token of the embedded node still means the same records).
    let fresh = data_dir();
    let k = Server::start_on(&kafka, fresh.path(), &[]).await;
    for (p, expected) in paths.iter().zip(&before) {
        assert_eq!(&k.get_at(p, &at).await.expect(200).body, expected, "{p}");
    }
    // Its state was rebuilt too: the GTIN is still taken, the order still holds stock.
    let body = json!({"sku": "EXP-C", "name": "Copy", "price_cents": 1, "gtin": "4006381333931"});
    k.post("/products", body).await.expect_problem(409, "gtin-taken");
    let c = k.post("/orders/exp-o/confirm", json!({})).await.expect(200);
    assert_eq!(k.stock_after("EXP-B", &c).await, json!({"on_hand": 1, "reserved": 0, "available": 1}));
    k.stop().await;

    // Another log into the same topics: refused.
    let other = data_dir();
    let s = Server::start(other.path(), &["--topic-prefix", &prefix, "--partitions", "4"]).await;
    for i in 0..8 {
        let body = json!({"sku": format!("OTHER-{i}"), "name": "Other", "price_cents": 1});
        s.post("/products", body).await.expect(201);
    }
    s.stop().await;
    let out = export(other.path(), &kafka);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing"), "{}", String::from_utf8_lossy(&out.stderr));
}
