//! Catalog ingestion end to end, on both backends (API.md, "Catalog ingestion"): the
//! real binary over real HTTP, fed the fixtures of `tests/fixtures/ingest/` (its
//! README says what each one exercises).
//!
//! One scenario per backend, in order, because each rule builds on the catalog the
//! earlier feeds left: clean and create (DummyJSON), re-ingest appends nothing, a
//! manual amendment, a higher-priority CSV supplier merging by GTIN and by brand and
//! name, a lower-priority marketplace in JSON lines, snapshot discontinuation, and bad
//! feeds answered with problems and nothing lost.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use stockroom_tests::{Backend, Server, data_dir};

/// Patient nodes (the shared test broker can be slow), with a small feed limit so a
/// huge feed is cheap to send.
const PATIENT: &[&str] = &["--write-timeout", "20s", "--read-timeout", "20s", "--max-feed-bytes", "1000000"];

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/ingest").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Sends a feed, expects 202 with a Location, and returns the finished run.
async fn ingest(s: &Server, source: &str, mode: &str, body: Vec<u8>, content_type: &str) -> Value {
    let a = s.raw("POST", &format!("/ingest/{source}?mode={mode}"), body, Some(content_type)).await.expect(202);
    finished(s, a).await
}

/// The run a 202 answer started, once it is done; its counts checked to add up.
async fn finished(s: &Server, a: stockroom_tests::Answer) -> Value {
    let run_id = a.body["run_id"].as_str().expect("run_id").to_owned();
    assert_eq!(a.header("location"), Some(format!("/ingest/runs/{run_id}").as_str()));
    for _ in 0..1200 {
        let run = s.get(&format!("/ingest/runs/{run_id}")).await.expect(200).body;
        if run["state"] != "running" {
            assert_eq!(run["state"], "done", "{run}");
            let n = |k: &str| run[k].as_u64().unwrap();
            assert_eq!(n("read"), n("created") + n("updated") + n("unchanged") + n("rejected"), "counts add up: {run}");
            assert_eq!(n("read"), n("total"), "every row read: {run}");
            assert_eq!(run["rejections"].as_array().unwrap().len() as u64, n("rejected"));
            return run;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {run_id} never finished");
}

/// The product once the catalog shows `check` true of it (the read side follows the log).
async fn product_when(s: &Server, sku: &str, check: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let a = s.get(&format!("/products/{sku}")).await;
        if a.status == 200 {
            if check(&a.body) {
                return a.body;
            }
            last = a.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{sku} never matched; last seen {last}");
}

fn sources_of(p: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = p["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["source"].as_str().unwrap().to_owned(), s["source_id"].as_str().unwrap().to_owned()))
        .collect();
    v.sort();
    v
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

async fn feeds_are_cleaned_matched_merged_and_written(backend: Backend) {
    let dir = data_dir();
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;

    // Sources: 201 new, 200 replaced, 422 invalid, listed.
    let dummy = json!({"priority": 10,
        "fields": {"source_id": "id", "sku": "sku", "name": "title", "description": "description", "brand": "brand",
                   "category": "category", "gtin": "meta.barcode", "price": "price", "stock": "stock"},
        "attributes": {"weight": "weight"}, "price_unit": "major", "currency": "USD"});
    s.request("PUT", "/ingest/sources/dummyjson", Some(dummy.clone()), &[]).await.expect(201);
    s.request("PUT", "/ingest/sources/dummyjson", Some(dummy), &[]).await.expect(200);
    s.request("PUT", "/ingest/sources/bad", Some(json!({"fields": {"name": "title"}})), &[])
        .await
        .expect_problem(422, "validation");
    let listed = s.get("/ingest/sources").await.expect(200).body;
    assert_eq!(listed["sources"][0]["name"], "dummyjson");
    assert_eq!(listed["sources"][0]["priority"], 10);

    // DummyJSON: every row creates a product; wrong check digits are dropped with a warning.
    let run = ingest(&s, "dummyjson", "delta", fixture("dummyjson-products.json"), "application/json").await;
    // Two pairs of rows are one product each by brand and name (91/92: Off White
    // sneakers; 96/191: Rolex Cellini Moonphase): merged, not created twice.
    let counts = ["read", "created", "updated", "rejected"].map(|k| run[k].as_u64().unwrap());
    assert_eq!(counts, [194, 192, 2, 0], "{run}");
    product_when(&s, "MEN-OFF-SPO-091", |p| p["sources"].as_array().unwrap().len() == 2).await;
    assert_eq!(s.get("/products/MEN-OFF-SPO-092").await.status, 404);
    assert_eq!(run["warnings"], 178, "178 barcodes have wrong check digits");
    let mascara = product_when(&s, "BEA-ESS-ESS-001", |_| true).await;
    assert_eq!(mascara["name"], "Essence Mascara Lash Princess");
    assert_eq!(mascara["price_cents"], 999);
    assert_eq!(mascara["gtin"], Value::Null);
    assert_eq!(mascara["stock"]["on_hand"], 99);
    assert_eq!(mascara["attributes"]["weight"], "4");
    assert_eq!(sources_of(&mascara), vec![pair("dummyjson", "1")]);
    let palette = product_when(&s, "BEA-GLA-EYE-002", |_| true).await;
    assert_eq!(palette["gtin"], "09170275171413", "valid GTINs are kept in canonical form");
    let decor = product_when(&s, "HOM-BRD-HOU-045", |_| true).await;
    assert_eq!(decor["category"], "home-decoration");

    // The same feed again: every row unchanged, no event appended.
    let history = s.get("/products/BEA-ESS-ESS-001/history").await.expect(200).body;
    let run = ingest(&s, "dummyjson", "delta", fixture("dummyjson-products.json"), "application/json").await;
    assert_eq!(run["unchanged"], 194, "{run}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.get("/products/BEA-ESS-ESS-001/history").await.expect(200).body, history);
    assert_eq!(s.get("/products/BEA-ESS-ESS-001").await.expect(200).body["version"], 1);

    // A manual amendment through the API.
    s.request("PATCH", "/products/BEA-GLA-EYE-002", Some(json!({"name": "Eyeshadow Palette (manual)"})), &[])
        .await
        .expect(200);

    // A CSV supplier of higher priority, prices in cents, other column names.
    let csv = json!({"priority": 20,
        "fields": {"source_id": "item_no", "name": "Product Name", "brand": "Maker", "category": "Group",
                   "gtin": "EAN", "price": "Cost (cents)", "stock": "Qty"},
        "price_unit": "minor", "currency": "USD"});
    s.request("PUT", "/ingest/sources/acme-csv", Some(csv), &[]).await.expect(201);
    let run = ingest(&s, "acme-csv", "delta", fixture("supplier.csv"), "text/csv").await;
    let counts = ["read", "created", "updated", "unchanged", "rejected", "warnings"].map(|k| run[k].as_u64().unwrap());
    assert_eq!(counts, [9, 2, 3, 0, 4, 1], "{run}");
    let reasons: Vec<&str> =
        run["rejections"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert!(reasons[0].starts_with("name:"), "{reasons:?}");
    assert!(reasons[1].starts_with("price:") && reasons[2].starts_with("price:"), "{reasons:?}");
    assert!(reasons[3].starts_with("source_id:"), "{reasons:?}");
    assert_eq!(run["rejections"][0]["row"], 6);
    assert_eq!(run["rejections"][0]["source_id"], "A-900");
    // Matched by GTIN: the higher priority takes the price, the manual name stays.
    let palette = product_when(&s, "BEA-GLA-EYE-002", |p| p["price_cents"] == 1799).await;
    assert_eq!(palette["name"], "Eyeshadow Palette (manual)", "a manual amendment survives a feed");
    assert_eq!(sources_of(&palette), vec![pair("acme-csv", "A-100"), pair("dummyjson", "2")]);
    // Matched by brand and name only (case, spacing, punctuation, accents ignored).
    let mascara = product_when(&s, "BEA-ESS-ESS-001", |p| p["price_cents"] == 1049).await;
    assert_eq!(mascara["name"], "essence MASCARA lash-princess");
    assert_eq!(sources_of(&mascara), vec![pair("acme-csv", "A-101"), pair("dummyjson", "1")]);
    let chanel = product_when(&s, "FRA-CHA-CHA-007", |p| p["price_cents"] == 12500).await;
    assert_eq!(sources_of(&chanel).len(), 2);
    // New products: SKU from the source and its id; stock only at creation.
    let drill = product_when(&s, "ACME-CSV-A-200", |_| true).await;
    assert_eq!(drill["gtin"], "04006381333931");
    assert_eq!(drill["category"], "power-tools");
    assert_eq!(drill["stock"]["on_hand"], 5);
    let hose = product_when(&s, "ACME-CSV-A-201", |_| true).await;
    assert_eq!(hose["gtin"], Value::Null, "an invalid EAN is dropped");
    assert_eq!(hose["name"], "Garden Hose, 20 m");

    // A marketplace of lower priority, in JSON lines, prices with currency signs.
    let market = json!({"priority": 5,
        "fields": {"source_id": "id", "name": "title", "brand": "brand", "category": "category",
                   "gtin": "barcode", "price": "price"},
        "price_unit": "major", "currency": "USD"});
    s.request("PUT", "/ingest/sources/market", Some(market), &[]).await.expect(201);
    let run = ingest(&s, "market", "delta", fixture("marketplace.ndjson"), "application/x-ndjson").await;
    let counts = ["read", "created", "updated", "unchanged", "rejected"].map(|k| run[k].as_u64().unwrap());
    assert_eq!(counts, [4, 2, 1, 0, 1], "{run}");
    let dolce = product_when(&s, "FRA-DOL-DOL-009", |p| p["sources"].as_array().unwrap().len() == 2).await;
    assert_eq!(dolce["name"], "Dolce Shine Eau de", "a lower priority does not overwrite");
    assert_eq!(dolce["price_cents"], 6999);
    let kettle = product_when(&s, "MARKET-M-2", |_| true).await;
    assert_eq!((kettle["price_cents"].as_i64(), kettle["currency"].as_str()), (Some(129_900), Some("USD")));
    assert_eq!(kettle["name"], "Stainless Steel Kettle");
    assert_eq!(kettle["category"], "home-decoration");
    let towel = product_when(&s, "MARKET-M-3", |_| true).await;
    assert_eq!((towel["price_cents"].as_i64(), towel["currency"].as_str()), (Some(1299), Some("EUR")));

    // `stockroom ingest`: the same feed again from the command line, its format from
    // the extension; the last line is the finished run.
    let fixture_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/ingest/marketplace.ndjson");
    let cli = |source: &str| {
        std::process::Command::new(stockroom_tests::binary())
            .args(["ingest", "--source", source, "--url", &s.url("")])
            .arg(&fixture_path)
            .output()
            .expect("run stockroom ingest")
    };
    let out = cli("market");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let run: Value = serde_json::from_str(stdout.lines().last().expect("a last line")).expect("the run as JSON");
    assert_eq!(
        (run["state"].as_str(), run["unchanged"].as_u64(), run["rejected"].as_u64()),
        (Some("done"), Some(3), Some(1))
    );
    let out = cli("no-such-source");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"), "{}", String::from_utf8_lossy(&out.stderr));

    // Snapshot mode: what this source alone listed and no longer lists is discontinued.
    let clearance = json!({"priority": 1, "fields": {"source_id": "id", "name": "name", "price": "price"}});
    s.request("PUT", "/ingest/sources/clearance", Some(clearance), &[]).await.expect(201);
    let both = b"id,name,price\nc-1,Old Lamp,5.00\nc-2,Old Chair,7.00\n".to_vec();
    let run = ingest(&s, "clearance", "snapshot", both, "text/csv").await;
    assert_eq!(run["created"], 2);
    let run = ingest(&s, "clearance", "snapshot", b"id,name,price\nc-1,Old Lamp,5.00\n".to_vec(), "text/csv").await;
    assert_eq!((run["unchanged"].as_u64(), run["discontinued"].as_u64()), (Some(1), Some(1)), "{run}");
    product_when(&s, "CLEARANCE-C-2", |p| p["status"] == "discontinued").await;
    assert_eq!(s.get("/products/CLEARANCE-C-1").await.expect(200).body["status"], "active");

    // /metrics counts the rows of the runs so far by outcome.
    let metrics = s.get("/metrics").await.text;
    let created = metrics.lines().find(|l| l.starts_with("stockroom_ingest_rows_total{outcome=\"created\"}"));
    let created: u64 = created.and_then(|l| l.rsplit(' ').next()?.parse().ok()).expect("ingest rows in /metrics");
    assert_eq!(created, 192 + 2 + 2 + 2, "{metrics}");

    // Bad feeds: a clear problem each, and nothing written.
    let before = s.get("/search?limit=1").await.expect(200).body["total"].clone();
    s.raw("POST", "/ingest/nope", b"[]".to_vec(), Some("application/json")).await.expect_problem(404, "not-found");
    s.raw("POST", "/ingest/market", b"id,name\n".to_vec(), Some("text/plain"))
        .await
        .expect_problem(415, "unsupported-media-type");
    s.raw("POST", "/ingest/clearance", b"id,name,price\nc-9,\"Bad,9\n".to_vec(), Some("text/csv"))
        .await
        .expect_problem(400, "unreadable-feed");
    s.raw("POST", "/ingest/clearance", b"sku,title\nx,y\n".to_vec(), Some("text/csv"))
        .await
        .expect_problem(400, "unreadable-feed");
    s.raw("POST", "/ingest/market", b"[{\"id\": 1,".to_vec(), Some("application/json"))
        .await
        .expect_problem(400, "unreadable-feed");
    let huge = format!("id,name,price\nh-1,{},1.00\n", "x".repeat(1_000_001)).into_bytes();
    s.raw("POST", "/ingest/clearance", huge, Some("text/csv")).await.expect_problem(413, "payload-too-large");
    s.raw("POST", "/ingest/market?mode=sometimes", b"[]".to_vec(), Some("application/json")).await.expect(400);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.get("/search?limit=1").await.expect(200).body["total"], before);
    s.stop().await;

    // The raw rows are in the log, each once although DummyJSON was sent twice (an
    // identical row is not kept again); a garbage row without a source id has no key.
    if let Backend::Embedded = backend {
        let out = std::process::Command::new(stockroom_tests::binary())
            .args(["log", "dump", "--topic", "sources", "--data-dir"])
            .arg(dir.path())
            .output()
            .expect("stockroom log dump");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let keys: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["key"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(keys.iter().filter(|k| k.starts_with("dummyjson/")).count(), 194);
        assert_eq!(keys.iter().filter(|k| k.starts_with("acme-csv/")).count(), 8);
        assert_eq!(keys.iter().filter(|k| k.starts_with("definition/")).count(), 5, "{keys:?}");
    }
}

/// kill -9 in the middle of a large feed, restart, send the feed again: every product
/// exists exactly once, the counts add up, and the source definition survived.
async fn a_run_killed_mid_feed_resumes_by_sending_it_again(backend: Backend) {
    const ROWS: usize = 8000;
    let dir = data_dir();
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    let source = json!({"priority": 1, "fields": {"source_id": "id", "name": "name", "price": "price"}});
    s.request("PUT", "/ingest/sources/bulk", Some(source), &[]).await.expect(201);
    let mut feed = String::from("id,name,price\n");
    for i in 0..ROWS {
        feed.push_str(&format!("r-{i},Bulk item {i},{}.{:02}\n", i % 100, i % 100));
    }
    let a = s.raw("POST", "/ingest/bulk", feed.clone().into_bytes(), Some("text/csv")).await.expect(202);
    let run = format!("/ingest/runs/{}", a.body["run_id"].as_str().unwrap());
    let mut read_before_kill = 0;
    for _ in 0..600 {
        read_before_kill = s.get(&run).await.expect(200).body["read"].as_u64().unwrap();
        if read_before_kill >= 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(read_before_kill > 0 && read_before_kill < ROWS as u64, "killed mid-run ({read_before_kill} rows read)");
    s.kill();

    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    let listed = s.get("/ingest/sources").await.expect(200).body;
    assert_eq!(listed["sources"][0]["name"], "bulk", "definitions are kept in the log");
    // The cut run is still known after the restart, and says what happened to it.
    let cut = s.get(&run).await.expect(200).body;
    assert_eq!(cut["state"], "failed", "{cut}");
    assert!(cut["error"].as_str().unwrap().contains("send the feed again"), "{cut}");
    let run = ingest(&s, "bulk", "delta", feed.into_bytes(), "text/csv").await;
    let n = |k: &str| run[k].as_u64().unwrap();
    assert_eq!(n("read"), ROWS as u64);
    assert_eq!(n("created") + n("unchanged"), ROWS as u64, "{run}");
    assert!(n("unchanged") >= read_before_kill.saturating_sub(1), "rows written before the kill are unchanged: {run}");
    assert_eq!((n("updated"), n("rejected")), (0, 0), "{run}");
    // Every product once: the catalog holds exactly ROWS products.
    for _ in 0..300 {
        if s.get("/search?limit=1").await.expect(200).body["total"] == ROWS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.get("/search?limit=1").await.expect(200).body["total"], ROWS);
    let p = s.get("/products/BULK-R-0").await.expect(200).body;
    assert_eq!((p["version"].as_u64(), sources_of(&p)), (Some(1), vec![pair("bulk", "r-0")]));
    s.stop().await;
}

/// One feed that repeats a GTIN and a brand and name across a run's windows of 2,048
/// rows (a window is matched against the tables as the windows before it left them):
/// each product is created once, and the repeats merge into it.
async fn repeats_across_concurrent_rows_create_one_product(backend: Backend) {
    const ROWS: usize = 3000;
    let dir = data_dir();
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    let source = json!({"priority": 1, "fields":
        {"source_id": "id", "name": "name", "brand": "brand", "gtin": "gtin", "price": "price"}});
    s.request("PUT", "/ingest/sources/repeats", Some(source), &[]).await.expect(201);
    let mut feed = String::new();
    for i in 0..ROWS {
        // Rows 2040..2060 share one GTIN (straddling row 2048); every other row's
        // brand and name recurs 1,000 and 2,000 rows later.
        let row = if (2040..2060).contains(&i) {
            json!({"id": format!("r-{i}"), "name": format!("Barcoded thing {i}"), "gtin": "4006381333931", "price": "9.99"})
        } else {
            json!({"id": format!("r-{i}"), "name": format!("Item {}", i % 1000), "brand": "Acme", "price": "1.00"})
        };
        feed.push_str(&format!("{row}\n"));
    }
    let run = ingest(&s, "repeats", "delta", feed.into_bytes(), "application/x-ndjson").await;
    let n = |k: &str| run[k].as_u64().unwrap();
    assert_eq!((n("read"), n("created"), n("rejected")), (ROWS as u64, 1001, 0), "{run}");
    assert_eq!(n("updated") + n("unchanged"), ROWS as u64 - 1001, "{run}");
    for _ in 0..300 {
        if s.get("/search?limit=1").await.expect(200).body["total"] == 1001 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        s.get("/search?limit=1").await.expect(200).body["total"],
        1001,
        "one product per GTIN or brand and name"
    );
    let barcoded = product_when(&s, "REPEATS-R-2040", |p| p["sources"].as_array().is_some_and(|a| a.len() == 20)).await;
    assert_eq!(barcoded["gtin"], "04006381333931");
    let item = product_when(&s, "REPEATS-R-7", |p| p["sources"].as_array().is_some_and(|a| a.len() == 3)).await;
    assert_eq!(sources_of(&item), vec![pair("repeats", "r-1007"), pair("repeats", "r-2007"), pair("repeats", "r-7")]);
    s.stop().await;
}

/// A re-run takes the raw rows the log kept for a source through today's definition:
/// a category mapping added after the feed changes the products it applies to, and
/// nothing else; a second re-run changes nothing.
async fn a_rerun_applies_todays_rules_to_the_kept_rows(backend: Backend) {
    let dir = data_dir();
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    let mut def = json!({"priority": 1, "fields":
        {"source_id": "id", "name": "name", "price": "price", "category": "category"}});
    s.request("PUT", "/ingest/sources/shop", Some(def.clone()), &[]).await.expect(201);
    let feed = [("a", "Alpha phone", "Phones"), ("b", "Beta phone", "Phones"), ("c", "Gamma novel", "Books")]
        .map(|(id, name, category)| json!({"id": id, "name": name, "price": "10.00", "category": category}).to_string())
        .join("\n");
    let run = ingest(&s, "shop", "delta", feed.into_bytes(), "application/x-ndjson").await;
    assert_eq!(run["created"], 3, "{run}");
    product_when(&s, "SHOP-A", |p| p["category"] == "phones").await;

    def["category_map"] = json!({"Phones": "smartphones"});
    s.request("PUT", "/ingest/sources/shop", Some(def), &[]).await.expect(200);
    let rerun = s.raw("POST", "/ingest/shop/rerun", Vec::new(), None).await.expect(202);
    let run = finished(&s, rerun).await;
    let n = |run: &Value, k: &str| run[k].as_u64().unwrap();
    assert_eq!([n(&run, "read"), n(&run, "updated"), n(&run, "unchanged"), n(&run, "created")], [3, 2, 1, 0], "{run}");
    for sku in ["SHOP-A", "SHOP-B"] {
        product_when(&s, sku, |p| p["category"] == "smartphones").await;
    }
    assert_eq!(product_when(&s, "SHOP-C", |_| true).await["category"], "books");

    // Again, from the command line (`stockroom ingest --rerun`): nothing changes now.
    let out = std::process::Command::new(stockroom_tests::binary())
        .args(["ingest", "--source", "shop", "--rerun", "--url", &s.url("")])
        .output()
        .expect("run stockroom ingest --rerun");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let run: Value = serde_json::from_str(stdout.lines().last().expect("a last line")).expect("the run as JSON");
    assert_eq!([n(&run, "read"), n(&run, "unchanged")], [3, 3], "{run}");
    s.raw("POST", "/ingest/nosuch/rerun", Vec::new(), None).await.expect_problem(404, "not-found");
    s.stop().await;

    // Runs are kept in the log: after a restart the node still reports them whole.
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    let kept = s.get(&format!("/ingest/runs/{}", run["run_id"].as_str().unwrap())).await.expect(200).body;
    assert_eq!(kept, run);
    s.stop().await;
}

stockroom_tests::on_both_backends!(
    a_rerun_applies_todays_rules_to_the_kept_rows,
    feeds_are_cleaned_matched_merged_and_written,
    a_run_killed_mid_feed_resumes_by_sending_it_again,
    repeats_across_concurrent_rows_create_one_product
);
