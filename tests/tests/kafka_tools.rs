//! The topics read by Kafka's own tools: `kafka-console-consumer`
//! (`org.apache.kafka.tools.consumer.ConsoleConsumer`, run by `scripts/kafka.sh tool`)
//! prints the events with their CloudEvents headers, the SKU as key and JSON bodies.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use stockroom_tests::{Backend, Server, data_dir};

/// One record as the console consumer prints it with headers and key.
struct Printed {
    headers: Vec<(String, String)>,
    key: String,
    value: String,
}

impl Printed {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// `headers<TAB>key<TAB>value`, headers as `k:v` joined by `;` (set below).
fn parse(line: &str) -> Printed {
    let mut parts = line.splitn(3, '\t');
    let (headers, key, value) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let headers =
        headers.split(';').filter_map(|h| h.split_once(':')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    Printed { headers, key: key.to_owned(), value: value.to_owned() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkas_console_consumer_reads_the_events() {
    let backend = Backend::kafka_with(2);
    let Backend::Kafka { bootstrap, prefix } = &backend else { unreachable!() };
    let dir = data_dir();
    let s = Server::start_on(&backend, dir.path(), &[]).await;
    let product = json!({"sku": "KC-1", "name": "Console", "brand": "Acme", "category": "parts", "price_cents": 100});
    s.post("/products", product).await.expect(201);
    s.post("/products/KC-1/stock/receipts", json!({"quantity": 3})).await.expect(200);
    // Two writer fences (one per partition) and the product's two events.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/kafka.sh");
    let out = std::process::Command::new(script)
        .args(["tool", "org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", bootstrap])
        .args(["--topic", &format!("{prefix}.events"), "--from-beginning", "--max-messages", "4"])
        .args(["--timeout-ms", "30000", "--isolation-level", "read_committed"])
        .args(["--property", "print.headers=true", "--property", "print.key=true"])
        .args(["--property", "headers.separator=;"])
        .output()
        .expect("scripts/kafka.sh tool runs the console consumer");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let records: Vec<Printed> = stdout.lines().filter(|l| !l.is_empty()).map(parse).collect();
    assert_eq!(records.len(), 4, "{stdout}");

    let products: Vec<&Printed> = records.iter().filter(|r| r.key == "KC-1").collect();
    let types: BTreeSet<&str> = products.iter().filter_map(|r| r.header("ce_type")).collect();
    assert_eq!(types, BTreeSet::from(["stockroom.product.registered", "stockroom.product.stock-received"]));
    for r in &products {
        for name in ["ce_id", "ce_source", "ce_specversion", "ce_time", "ce_subject", "causation-id"] {
            assert!(r.header(name).is_some(), "{name} missing in {:?}", r.headers);
        }
        assert_eq!(r.header("ce_specversion"), Some("1.0"));
        assert_eq!(r.header("ce_subject"), Some("products/KC-1"));
        let body: Value = serde_json::from_str(&r.value).expect("a JSON body");
        assert_eq!(body["sku"], "KC-1", "{body}");
    }
    let fences = records.iter().filter(|r| r.header("ce_type") == Some("stockroom.partition.claimed")).count();
    assert_eq!(fences, 2, "one writer fence per partition");
    assert!(s.stop().await.success());
}
