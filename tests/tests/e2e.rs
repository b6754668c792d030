//! End to end, on both backends: the real binary, real sled files, a real tantivy
//! index, real HTTP on loopback, and a real Kafka-API broker for the Kafka runs.
//! Every test is one function of the backend; the macro at the end runs each on both.

use serde_json::{Value, json};
use stockroom_tests::{Answer, Backend, Server, data_dir, order};

/// Node flags: the test broker, busy with the other tests, can take seconds per saga
/// step; these tests want outcomes, not 202s (the bounds are tested elsewhere).
const PATIENT: &[&str] = &["--write-timeout", "20s", "--read-timeout", "20s"];

fn product(sku: &str, name: &str, brand: &str, category: &str, price: i64) -> Value {
    json!({
        "sku": sku, "name": name, "brand": brand, "category": category, "price_cents": price,
        "description": format!("{name} by {brand}, a dependable {category} item"),
    })
}

/// Registers a small catalog and returns the last position token.
async fn seed(s: &Server) -> String {
    let items = [
        product("HAM-1", "Claw Hammer", "Acme", "tools", 1999),
        product("HAM-2", "Sledge Hammer", "Bolt", "tools", 4599),
        product("SAW-1", "Hand Saw", "Acme", "tools", 2599),
        product("MUG-1", "Coffee Mug", "Homely", "kitchen", 899),
    ];
    let mut position = String::new();
    for item in items {
        let a = s.post("/products", item).await.expect(201);
        position = a.header("stockroom-position").expect("position header").to_owned();
    }
    position
}

async fn register_stock_search_and_read(backend: Backend) {
    let dir = data_dir();
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    seed(&s).await;

    // Register answers 201 with version, ETag, Location and a position token.
    let a = s
        .post(
            "/products",
            json!({"sku": "DRL-1", "name": "Cordless Drill", "brand": "Acme", "category": "power tools",
            "price_cents": 8999, "gtin": "4006381333931", "initial_stock": 3, "attributes": {"voltage": "18V"}}),
        )
        .await
        .expect(201);
    assert_eq!(a.body["version"], 1);
    assert_eq!(a.header("etag"), Some("\"1\""));
    assert_eq!(a.header("location"), Some("/products/DRL-1"));
    assert_eq!(a.body["position"].as_str(), a.header("stockroom-position"));

    let a = s.post("/products/DRL-1/stock/receipts", json!({"quantity": 7, "reference": "PO-1"})).await.expect(200);
    assert_eq!(a.body["version"], 2);
    let a = s.post("/products/DRL-1/reservations", json!({"reservation_id": "r-1", "quantity": 4})).await.expect(201);
    assert_eq!(a.body["version"], 3);
    let position = a.header("stockroom-position").unwrap().to_owned();

    // Read-your-writes: the read waits for the position and reports its own.
    let p = s.get_at("/products/DRL-1", &position).await.expect(200);
    assert_eq!(p.body["version"], 3);
    assert_eq!(p.body["stock"], json!({"on_hand": 10, "reserved": 4, "available": 6}));
    assert_eq!(p.body["gtin"], "4006381333931");
    assert_eq!(p.body["attributes"]["voltage"], "18V");
    assert_eq!(p.header("etag"), Some("\"3\""));
    assert!(p.header("stockroom-position").is_some());

    // Confirm ships: on hand and reserved both drop.
    let a = s.post("/products/DRL-1/reservations/r-1/confirm", json!({})).await.expect(200);
    assert_eq!(s.stock_after("DRL-1", &a).await, json!({"on_hand": 6, "reserved": 0, "available": 6}));

    // Full text, with stemming.
    let r = s.get_at("/search?q=hammers", &position).await.expect(200);
    let skus: Vec<&str> = r.body["hits"].as_array().unwrap().iter().map(|h| h["sku"].as_str().unwrap()).collect();
    assert_eq!(r.body["total"], 2, "{}", r.text);
    assert!(skus.contains(&"HAM-1") && skus.contains(&"HAM-2"));
    // Facets over the matching set, and a facet filter.
    let r = s.get_at("/search?brand=Acme", &position).await.expect(200);
    assert_eq!(r.body["total"], 3);
    let cats = &r.body["facets"]["category"];
    assert!(cats.as_array().unwrap().contains(&json!({"value": "tools", "count": 2})), "{cats}");
    let r = s.get_at("/search?category=kitchen", &position).await.expect(200);
    assert_eq!(r.body["hits"][0]["sku"], "MUG-1");
    // Price range and sort.
    let r = s.get_at("/search?category=tools&sort=price_desc&min_price=2000", &position).await.expect(200);
    let prices: Vec<i64> =
        r.body["hits"].as_array().unwrap().iter().map(|h| h["price_cents"].as_i64().unwrap()).collect();
    assert_eq!(prices, vec![4599, 2599]);
    // In stock only: the drill is the only one with stock.
    let r = s.get_at("/search?in_stock=true", &position).await.expect(200);
    assert_eq!(r.body["total"], 1);
    assert_eq!(r.body["hits"][0]["sku"], "DRL-1");
    // Unknown product.
    s.get("/products/NOPE").await.expect_problem(404, "not-found");
    s.stop().await;
}

async fn paging_with_cursors_returns_everything_once(backend: Backend) {
    let dir = data_dir();
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    let mut position = String::new();
    for i in 0..25 {
        let a = s
            .post("/products", product(&format!("P-{i:02}"), &format!("Widget {i}"), "Acme", "parts", 100 + i))
            .await
            .expect(201);
        position = a.header("stockroom-position").unwrap().to_owned();
    }
    let mut seen = Vec::new();
    let mut path = "/search?q=widget&sort=price_asc&limit=10".to_owned();
    loop {
        let r = s.get_at(&path, &position).await.expect(200);
        assert_eq!(r.body["total"], 25);
        for h in r.body["hits"].as_array().unwrap() {
            seen.push(h["sku"].as_str().unwrap().to_owned());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/search?q=widget&sort=price_asc&limit=10&cursor={c}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("P-{i:02}")).collect();
    assert_eq!(seen, expected);
    s.stop().await;
}

/// A receipt of one unit of `CNT-1`, sent with the idempotency key `key`.
async fn receive_one(s: &Server, key: &str) -> Answer {
    s.request("POST", "/products/CNT-1/stock/receipts", Some(json!({"quantity": 1})), &[("idempotency-key", key)]).await
}

/// Every acknowledged write survives SIGTERM and kill -9, and nothing is applied twice.
async fn acknowledged_writes_survive_restarts_and_kill_9(backend: Backend) {
    let dir = data_dir();
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    s.post("/products", product("CNT-1", "Counter", "Acme", "tools", 100)).await.expect(201);
    let mut acked = 0u64;
    for i in 0..20 {
        let a = receive_one(&s, &format!("rcv-{i}")).await.expect(200);
        acked += 1;
        assert_eq!(a.body["version"], 1 + acked);
    }
    let status = s.stop().await;
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");

    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    let p = s.get("/products/CNT-1").await.expect(200);
    assert_eq!(p.body["stock"]["on_hand"], acked);
    // Retrying an acknowledged write with its key does not apply it again.
    let a = receive_one(&s, "rcv-3").await.expect(200);
    assert_eq!(a.body["version"], 5, "the original answer");
    // More writes, then kill -9 without any shutdown.
    for i in 20..40 {
        receive_one(&s, &format!("rcv-{i}")).await.expect(200);
        acked += 1;
    }
    s.kill();

    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    // The projector catches up from its checkpoint; wait for the processor's position.
    let a = s.post("/products/CNT-1/stock/adjustments", json!({"delta": 1, "reason": "probe"})).await.expect(200);
    assert_eq!(a.body["version"], 2 + acked, "every acknowledged write applied exactly once");
    assert_eq!(s.stock_after("CNT-1", &a).await["on_hand"], acked + 1);
    s.stop().await;
}

/// Delete the index and the state stores, keep the log: the same answers come back.
async fn views_and_state_are_rebuilt_from_the_log(backend: Backend) {
    let dir = data_dir();
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    seed(&s).await;
    s.post("/products/HAM-1/stock/receipts", json!({"quantity": 5})).await.expect(200);
    let a = s.post("/products/HAM-1/reservations", json!({"reservation_id": "r", "quantity": 2})).await.expect(201);
    let last = a.header("stockroom-position").unwrap().to_owned();
    let before_product = s.get_at("/products/HAM-1", &last).await.expect(200).body;
    let before_search = s.get_at("/search?q=acme&sort=name", &last).await.expect(200).body;
    s.stop().await;

    std::fs::remove_dir_all(dir.path().join("catalog")).unwrap();
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();

    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    // The catalog, rebuilt from offset 0, gives the same answers.
    assert_eq!(s.get_at("/search?q=acme&sort=name", &last).await.expect(200).body, before_search);
    assert_eq!(s.get_at("/products/HAM-1", &last).await.expect(200).body, before_product);
    assert_eq!(before_product["stock"], json!({"on_hand": 5, "reserved": 2, "available": 3}));
    // The command side rebuilt its state: the reservation still holds 2 of 5.
    s.post("/products/HAM-1/reservations", json!({"reservation_id": "r2", "quantity": 4}))
        .await
        .expect_problem(409, "insufficient-stock");
    let a = s.post("/products/HAM-1/reservations", json!({"reservation_id": "r2", "quantity": 3})).await.expect(201);
    assert_eq!(a.body["version"], 4);
    let after = s.read_after("/products/HAM-1", &a).await.expect(200).body;
    assert_eq!(after["stock"], json!({"on_hand": 5, "reserved": 5, "available": 0}));
    s.stop().await;
}

/// How a bad request is sent: a JSON value (with headers), or raw bytes with a content type.
enum Bad {
    Json(&'static str, &'static str, Option<Value>, &'static [(&'static str, &'static str)]),
    Raw(&'static str, Vec<u8>, Option<&'static str>),
}

/// A bad request, the status and problem kind it gets, and the `field` the problem
/// names (`None`: the problem names none).
type BadRow = (Bad, u16, &'static str, Option<&'static str>);

fn post(path: &'static str, body: Value) -> Bad {
    Bad::Json("POST", path, Some(body), &[])
}

fn get(path: &'static str) -> Bad {
    Bad::Json("GET", path, None, &[])
}

fn bad_requests() -> Vec<BadRow> {
    let receipt = || Some(json!({"quantity": 1}));
    let huge =
        format!("{{\"sku\":\"BIG-1\",\"name\":\"x\",\"price_cents\":1,\"description\":\"{}\"}}", "a".repeat(2 << 20));
    let json = Some("application/json");
    vec![
        (Bad::Raw("/products", b"{not json".to_vec(), json), 400, "malformed-json", None),
        (Bad::Raw("/products", b"".to_vec(), json), 400, "malformed-json", None),
        (Bad::Raw("/products", b"{\"sku\": 1}".to_vec(), None), 422, "validation", Some("sku")),
        (
            Bad::Raw("/products", b"sku=x".to_vec(), Some("application/x-www-form-urlencoded")),
            415,
            "unsupported-media-type",
            None,
        ),
        (Bad::Raw("/products", huge.into_bytes(), json), 413, "payload-too-large", None),
        (Bad::Raw("/products", vec![0xff, 0xfe, 0x00], json), 400, "malformed-json", None),
        // An integer that overflows what the field holds.
        (
            Bad::Raw("/products", br#"{"sku":"OV-1","name":"x","price_cents":9223372036854775808}"#.to_vec(), json),
            422,
            "validation",
            Some("price_cents"),
        ),
        (
            post("/products", json!({"sku": "X-1", "name": "x", "price_cents": "12"})),
            422,
            "validation",
            Some("price_cents"),
        ),
        (
            post("/products", json!({"sku": "X-1", "name": "x", "price_cents": 1, "gtin": "4006381333932"})),
            422,
            "validation",
            Some("gtin"),
        ),
        (post("/products", json!({"sku": "bad sku", "name": "x", "price_cents": 1})), 422, "validation", Some("sku")),
        (post("/products", json!({"sku": "X-1", "name": "", "price_cents": 1})), 422, "validation", Some("name")),
        (
            post("/products", json!({"sku": "X-1", "name": "x", "price_cents": -1})),
            422,
            "validation",
            Some("price_cents"),
        ),
        (
            post("/products", json!({"sku": "X-1", "name": "x", "price_cents": 1, "surprise": true})),
            422,
            "validation",
            Some("surprise"),
        ),
        (post("/products", product("OK-1", "Again", "Acme", "tools", 1)), 409, "sku-taken", None),
        (post("/products/OK-1/stock/receipts", json!({"quantity": -3})), 422, "validation", Some("quantity")),
        (post("/products/OK-1/stock/receipts", json!({"quantity": 0})), 422, "validation", Some("quantity")),
        (post("/products/OK-1/stock/receipts", json!({"quantity": 1e30})), 422, "validation", Some("quantity")),
        (
            post("/products/OK-1/stock/adjustments", json!({"delta": -1, "reason": "lost"})),
            409,
            "insufficient-stock",
            None,
        ),
        (
            post("/products/OK-1/stock/adjustments", json!({"delta": -9_223_372_036_854_775_807i64, "reason": "x"})),
            422,
            "validation",
            Some("delta"),
        ),
        (post("/products/NOPE/stock/receipts", json!({"quantity": 1})), 404, "not-found", None),
        (post("/products/OK-1/reservations/none/confirm", json!({})), 404, "not-found", None),
        (post("/orders", order("o-1", &[("bad sku", 1)])), 422, "validation", Some("lines[0].sku")),
        (post("/admin/replay", json!({"view": "nope"})), 422, "validation", Some("view")),
        (
            Bad::Json("POST", "/products/OK-1/stock/receipts", receipt(), &[("if-match", "\"7\"")]),
            412,
            "version-mismatch",
            None,
        ),
        (
            Bad::Json("POST", "/products/OK-1/stock/receipts", receipt(), &[("if-match", "banana")]),
            400,
            "invalid-header",
            Some("If-Match"),
        ),
        (
            Bad::Json("POST", "/products/OK-1/stock/receipts", receipt(), &[("idempotency-key", "")]),
            400,
            "invalid-header",
            Some("Idempotency-Key"),
        ),
        (
            Bad::Json("GET", "/products/OK-1", None, &[("stockroom-min-position", "nonsense")]),
            400,
            "invalid-header",
            Some("Stockroom-Min-Position"),
        ),
    ]
}

/// Bad query strings: each names the parameter.
fn bad_reads() -> Vec<BadRow> {
    vec![
        (get("/search?q=%22unterminated&limit=0"), 400, "invalid-parameter", Some("limit")),
        (get("/search?min_price=abc"), 400, "invalid-parameter", Some("min_price")),
        (get("/search?min_price=99999999999999999999"), 400, "invalid-parameter", Some("min_price")),
        (get("/search?min_price=9&max_price=1"), 400, "invalid-parameter", Some("min_price")),
        (get("/search?in_stock=maybe"), 400, "invalid-parameter", Some("in_stock")),
        (get("/search?sort=sideways"), 400, "invalid-parameter", Some("sort")),
        (get("/search?limit=101"), 400, "invalid-parameter", Some("limit")),
        (get("/search?cursor=garbage"), 400, "invalid-parameter", Some("cursor")),
        (get("/search?colour=red"), 400, "invalid-parameter", Some("colour")),
        (get("/no/such/route"), 404, "not-found", None),
    ]
}

/// Bad input: 4xx problem+json, never 500, naming the offending input; nothing changes.
async fn bad_input_gets_problems_and_changes_nothing(backend: Backend) {
    let dir = data_dir();
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    let a = s.post("/products", product("OK-1", "Fine", "Acme", "tools", 100)).await.expect(201);
    let before = s.read_after("/products/OK-1", &a).await.expect(200).body;

    for (request, status, kind, field) in bad_requests().into_iter().chain(bad_reads()) {
        let (answer, what) = match request {
            Bad::Json(method, path, body, headers) => (s.request(method, path, body, headers).await, path),
            Bad::Raw(path, body, content_type) => (s.raw("POST", path, body, content_type).await, path),
        };
        let answer = answer.expect_problem(status, kind);
        assert_eq!(answer.body.get("field").and_then(Value::as_str), field, "{what}: {}", answer.text);
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let a = s.raw("POST", "/products", deep.into_bytes(), Some("application/json")).await;
    assert!(a.status.is_client_error(), "{}", a.text);
    // Queries that have panicked or hung tantivy's own parser (tantivy #3031, #3032):
    // our grammar is total, so each is a plain search (200) or a 400, and never a hang
    // (a generous bound: a hang is minutes, an answer milliseconds).
    for q in ["-%20*", "a:(%5E", "((((", "%5C", "***", "-", "%22%22", "a%3A%28%5E%20-%20*"] {
        let started = std::time::Instant::now();
        let a = s.get(&format!("/search?q={q}")).await;
        assert!(a.status.as_u16() == 200 || a.status.as_u16() == 400, "q={q}: {}", a.text);
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "q={q} took {:?}", started.elapsed());
    }

    // Nothing changed.
    let a = s.post("/products/OK-1/stock/receipts", json!({"quantity": 1})).await.expect(200);
    assert_eq!(a.body["version"], 2, "no rejected write changed the product");
    let after = s.get("/products/OK-1").await.expect(200).body;
    assert_eq!(after["name"], before["name"]);
    s.get("/products/X-1").await.expect_problem(404, "not-found");
    s.stop().await;
}

/// Sends the requests all at once (each on its own task) and returns each answer's
/// status and body, in request order.
async fn post_all(s: &Server, requests: Vec<(String, Value)>) -> Vec<(u16, Value)> {
    let mut tasks = Vec::new();
    for (path, body) in requests {
        let http = s.http.clone();
        let url = s.url(&path);
        tasks.push(tokio::spawn(async move {
            let r = http.post(url).json(&body).send().await.expect("request sent");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("request task"));
    }
    answers
}

fn count(answers: &[(u16, Value)], status: u16) -> usize {
    answers.iter().filter(|(s, _)| *s == status).count()
}

/// Uniqueness under concurrency: one GTIN, one SKU, and stock that never goes negative.
async fn concurrent_writes_keep_skus_gtins_and_stock_right(backend: Backend) {
    let dir = data_dir();
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    const N: usize = 12;
    let gtin = "4006381333931";

    // Different SKUs, one GTIN: exactly one wins, the rest are told who has it.
    let answers = post_all(
        &s,
        (0..N)
            .map(|i| {
                let mut p = product(&format!("G-{i}"), "Gadget", "Acme", "tools", 100);
                p["gtin"] = json!(gtin);
                ("/products".to_owned(), p)
            })
            .collect(),
    )
    .await;
    assert_eq!(count(&answers, 201), 1, "{answers:?}");
    assert_eq!(count(&answers, 409), N - 1, "{answers:?}");
    assert!(
        answers.iter().filter(|(s, _)| *s == 409).all(|(_, b)| b["type"].as_str().unwrap().ends_with("/gtin-taken"))
    );

    // One SKU, many registrations (with distinct GTINs, so the claims all succeed
    // first): exactly one product, and the losers' claims are given back.
    let gtins = [
        "00000000000017",
        "00000000000024",
        "00000000000031",
        "00000000000048",
        "00000000000055",
        "00000000000062",
        "00000000000079",
        "00000000000086",
    ];
    let answers = post_all(
        &s,
        gtins
            .iter()
            .map(|g| {
                let mut p = product("ONE-1", "Only One", "Acme", "tools", 100);
                p["gtin"] = json!(g);
                ("/products".to_owned(), p)
            })
            .collect(),
    )
    .await;
    assert_eq!(count(&answers, 201), 1, "{answers:?}");
    assert!(
        answers.iter().filter(|(s, _)| *s == 409).all(|(_, b)| b["type"].as_str().unwrap().ends_with("/sku-taken"))
    );
    let winner = answers.iter().position(|(s, _)| *s == 201).unwrap();
    // Every loser's GTIN is free again: another product takes each of them.
    for (i, g) in gtins.iter().enumerate().filter(|(i, _)| *i != winner) {
        let mut p = product(&format!("FREE-{i}"), "Reuse", "Acme", "tools", 100);
        p["gtin"] = json!(g);
        s.post("/products", p).await.expect(201);
    }
    let mut p = product("FREE-X", "Reuse", "Acme", "tools", 100);
    p["gtin"] = json!(gtins[winner]);
    s.post("/products", p).await.expect_problem(409, "gtin-taken");

    // Stock 10, 30 reservations of 1 at once: exactly 10 succeed.
    let mut p = product("STK-1", "Stocked", "Acme", "tools", 100);
    p["initial_stock"] = json!(10);
    s.post("/products", p).await.expect(201);
    let answers = post_all(
        &s,
        (0..30)
            .map(|i| {
                ("/products/STK-1/reservations".to_owned(), json!({"reservation_id": format!("r-{i}"), "quantity": 1}))
            })
            .collect(),
    )
    .await;
    assert_eq!(count(&answers, 201), 10, "{answers:?}");
    assert_eq!(count(&answers, 409), 20, "{answers:?}");
    let last = answers.iter().filter_map(|(_, b)| b["position"].as_str()).max_by_key(|p| p.len()).unwrap().to_owned();
    let a = s.post("/products/STK-1/stock/receipts", json!({"quantity": 1})).await.expect(200);
    assert_eq!(a.body["version"], 12, "registration, 10 reservations, this receipt: {last}");
    assert_eq!(s.stock_after("STK-1", &a).await, json!({"on_hand": 11, "reserved": 10, "available": 1}));
    s.stop().await;
}

/// A registration that fails after its GTIN was claimed gives the GTIN back; changing
/// a GTIN frees the old one.
async fn a_failed_registration_frees_its_gtin(backend: Backend) {
    let dir = data_dir();
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    s.post("/products", product("TAKEN-1", "First", "Acme", "tools", 100)).await.expect(201);
    // The claim of this GTIN succeeds, then the SKU is taken: the claim is released.
    let mut p = product("TAKEN-1", "Second", "Acme", "tools", 100);
    p["gtin"] = json!("4006381333931");
    s.post("/products", p).await.expect_problem(409, "sku-taken");
    let mut p = product("OTHER-1", "Third", "Acme", "tools", 100);
    p["gtin"] = json!("4006381333931");
    s.post("/products", p).await.expect(201);
    // Move OTHER-1 to another GTIN: the first is free again, the second is taken.
    s.request("PATCH", "/products/OTHER-1", Some(json!({"gtin": "0000000000017"})), &[]).await.expect(200);
    let mut p = product("FOURTH-1", "Fourth", "Acme", "tools", 100);
    p["gtin"] = json!("4006381333931");
    s.post("/products", p).await.expect(201);
    let mut p = product("FIFTH-1", "Fifth", "Acme", "tools", 100);
    p["gtin"] = json!("00000000000017");
    s.post("/products", p).await.expect_problem(409, "gtin-taken");
    s.stop().await;
}

/// Orders reserve every line or none, ship together, and can be read back.
async fn orders_reserve_all_lines_or_none(backend: Backend) {
    let dir = data_dir();
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    for (sku, stock) in [("ORD-A", 5), ("ORD-B", 1)] {
        let mut p = product(sku, "Part", "Acme", "tools", 100);
        p["initial_stock"] = json!(stock);
        s.post("/products", p).await.expect(201);
    }
    let a = s.post("/orders", order("o-1", &[("ORD-A", 2), ("ORD-B", 1)])).await.expect(201);
    assert_eq!(a.body["state"], "reserved");
    assert_eq!(a.header("location"), Some("/orders/o-1"));
    let o = s.read_after("/orders/o-1", &a).await.expect(200);
    assert_eq!(o.body["state"], "reserved");
    assert_eq!(o.body["lines"][0], json!({"sku": "ORD-A", "quantity": 2, "status": "reserved"}));
    assert_eq!(s.stock_after("ORD-A", &a).await, json!({"on_hand": 5, "reserved": 2, "available": 3}));

    // B has nothing left: the order is rejected, and A's line is released again.
    let r = s.post("/orders", order("o-2", &[("ORD-A", 1), ("ORD-B", 1)])).await.expect_problem(409, "order-rejected");
    assert_eq!(r.body["line"], 1, "{}", r.text);
    assert_eq!(r.body["sku"], "ORD-B", "{}", r.text);
    // A read after the rejection sees it whole.
    let probe = s.post("/products/ORD-A/stock/receipts", json!({"quantity": 1})).await.expect(200);
    let at = probe.header("stockroom-position").unwrap().to_owned();
    let p = s.get_at("/products/ORD-A", &at).await.expect(200);
    assert_eq!(p.body["stock"], json!({"on_hand": 6, "reserved": 2, "available": 4}), "o-2 left nothing reserved");
    let o = s.get("/orders/o-2").await.expect(200);
    assert_eq!(o.body["state"], "rejected", "{}", o.text);
    assert_eq!(o.body["failure"]["sku"], "ORD-B");
    assert_eq!(o.body["failure"]["kind"], "insufficient-stock");

    // Confirm ships every line; the order cannot be cancelled after that.
    let c = s.post("/orders/o-1/confirm", json!({})).await.expect(200);
    assert_eq!(c.body["state"], "confirmed");
    let at = c.header("stockroom-position").unwrap().to_owned();
    let p = s.get_at("/products/ORD-A", &at).await.expect(200);
    let b = s.get_at("/products/ORD-B", &at).await.expect(200);
    assert_eq!(p.body["stock"], json!({"on_hand": 4, "reserved": 0, "available": 4}));
    assert_eq!(b.body["stock"], json!({"on_hand": 0, "reserved": 0, "available": 0}));
    assert_eq!(s.get_at("/orders/o-1", &at).await.expect(200).body["state"], "confirmed");
    s.post("/orders/o-1/cancel", json!({})).await.expect_problem(409, "order-state");
    s.post("/orders/o-9/confirm", json!({})).await.expect_problem(404, "not-found");
    s.get("/orders/o-9").await.expect_problem(404, "not-found");
    s.post("/orders", order("o-1", &[("ORD-A", 1)])).await.expect_problem(409, "order-exists");
    s.post("/orders", json!({"order_id": "o-3", "lines": []})).await.expect_problem(422, "validation");
    s.post("/orders", order("o-3", &[("ORD-A", 0)])).await.expect_problem(422, "validation");

    // Cancel releases every line.
    let a = s.post("/orders", order("o-4", &[("ORD-A", 3)])).await.expect(201);
    assert_eq!(s.stock_after("ORD-A", &a).await["reserved"], 3);
    let c = s.post("/orders/o-4/cancel", json!({})).await.expect(200);
    assert_eq!(s.stock_after("ORD-A", &c).await, json!({"on_hand": 4, "reserved": 0, "available": 4}));
    s.stop().await;
}

/// The second projector: low-stock alerts and each product's history, backfilled
/// from the start of the log when its store is new.
async fn stock_view_serves_alerts_and_history(backend: Backend) {
    let dir = data_dir();
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    for (sku, stock) in [("LOW-A", 2), ("LOW-B", 10), ("LOW-C", 0), ("LOW-D", 1)] {
        let mut p = product(sku, "Stocked", "Acme", "tools", 100);
        p["initial_stock"] = json!(stock);
        s.post("/products", p).await.expect(201);
    }
    s.post("/products/LOW-B/reservations", json!({"reservation_id": "r", "quantity": 8})).await.expect(201);
    let last = s.request("DELETE", "/products/LOW-D", None, &[]).await.expect(200);
    let at = last.header("stockroom-position").unwrap().to_owned();

    let low = |body: &Value| -> Vec<(String, u64)> {
        body["products"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["sku"].as_str().unwrap().to_owned(), p["stock"]["available"].as_u64().unwrap()))
            .collect()
    };
    let a = s.get_at("/alerts/low-stock?threshold=2", &at).await.expect(200);
    assert!(a.header("stockroom-position").is_some());
    // Fewest first; a discontinued product raises no alert.
    let expected = vec![("LOW-C".to_owned(), 0), ("LOW-A".to_owned(), 2), ("LOW-B".to_owned(), 2)];
    assert_eq!(low(&a.body), expected, "{}", a.text);
    assert_eq!(low(&s.get_at("/alerts/low-stock?threshold=0", &at).await.expect(200).body), expected[..1]);

    let h = s.get_at("/products/LOW-B/history", &at).await.expect(200);
    let events = h.body["events"].as_array().unwrap();
    let versions: Vec<u64> = events.iter().map(|e| e["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, vec![1, 2]);
    assert_eq!(events[0]["type"], "ProductRegistered", "{}", h.text);
    assert_eq!(events[1]["type"], "StockReserved", "{}", h.text);
    s.get_at("/products/NOPE/history", &at).await.expect_problem(404, "not-found");
    s.get("/alerts/low-stock?threshold=lots").await.expect_problem(400, "invalid-parameter");
    s.get("/alerts/low-stock?limit=0").await.expect_problem(400, "invalid-parameter");
    s.get("/alerts/low-stock?colour=red").await.expect_problem(400, "invalid-parameter");
    let before = s.get_at("/alerts/low-stock?threshold=2", &at).await.expect(200).body;
    s.stop().await;

    // A new store backfills from offset 0 and answers the same.
    std::fs::remove_dir_all(dir.path().join("stock")).unwrap();
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    assert_eq!(s.get_at("/alerts/low-stock?threshold=2", &at).await.expect(200).body, before);
    let again = s.get_at("/products/LOW-B/history", &at).await.expect(200);
    assert_eq!(again.body, h.body);
    s.stop().await;
}

async fn openapi_docs_and_health(backend: Backend) {
    let dir = data_dir();
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    s.get("/health/livez").await.expect(200);
    s.get("/health/readyz").await.expect(200);
    let spec = s.get("/openapi.json").await.expect(200).body;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/products", "/products/{sku}", "/search", "/products/{sku}/reservations", "/orders", "/orders/{id}"] {
        assert!(spec["paths"].get(path).is_some(), "{path} is documented");
    }
    // Every error is documented as a problem.
    let conflict = &spec["paths"]["/products"]["post"]["responses"]["409"]["content"];
    assert!(conflict.get("application/problem+json").is_some(), "{conflict}");
    let docs = s.get("/docs").await;
    assert!(docs.status.is_success());
    assert!(docs.text.contains("/products/{sku}/stock/receipts"));

    // Metrics count what happened: two accepted commands, one rejected, and the
    // catalog has no lag once it has applied the last write.
    s.post("/products", product("MET-1", "Meter", "Acme", "tools", 100)).await.expect(201);
    s.post("/products", product("MET-1", "Meter", "Acme", "tools", 100)).await.expect_problem(409, "sku-taken");
    let a = s.post("/products/MET-1/stock/receipts", json!({"quantity": 2})).await.expect(200);
    s.read_after("/products/MET-1", &a).await.expect(200);
    let metrics = s.get("/metrics").await.expect(200).text;
    let value = |series: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("{series} in {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("stockroom_commands_total{outcome=\"accepted\"}"), 2.0);
    assert_eq!(value("stockroom_commands_total{outcome=\"rejected\"}"), 1.0);
    assert_eq!(value("stockroom_catalog_staleness_seconds"), 0.0);
    assert_eq!(value("stockroom_dlq_records"), 0.0);
    // The web console is served by every node that serves reads.
    assert!(s.get("/").await.expect(200).text.contains("/console/console.js"));
    let lag: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("stockroom_catalog_lag{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(lag, 0.0, "{metrics}");
    assert_eq!(value("stockroom_http_requests_total{route=\"/products\",method=\"POST\",status=\"201\"}"), 1.0);
    // Every view, caught up with the writes above.
    let at = a.header("stockroom-position").unwrap().to_owned();
    s.get_at("/alerts/low-stock", &at).await.expect(200);
    let views = s.get("/admin/views").await.expect(200).body;
    let names: Vec<&str> = views["views"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["catalog", "stock"], "{views}");
    // Readiness and metrics cover the same views as /admin/views (one registry).
    let ready = s.get("/health/readyz").await.expect(200).body;
    for v in views["views"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        assert_eq!(v["state"], "serving", "{views}");
        assert_eq!(v["lag"], 0, "{views}");
        assert_eq!(v["events_applied"], 2, "{views}");
        assert_eq!(ready["checks"][name], true, "{name} in {ready}");
        assert!(metrics.contains(&format!("stockroom_{name}_lag{{")), "{name} in {metrics}");
    }
    assert!(value("stockroom_http_request_duration_seconds_count{route=\"/products/{sku}/stock/receipts\"}") >= 1.0);
    s.stop().await;
}

stockroom_tests::on_both_backends!(
    register_stock_search_and_read,
    paging_with_cursors_returns_everything_once,
    acknowledged_writes_survive_restarts_and_kill_9,
    views_and_state_are_rebuilt_from_the_log,
    bad_input_gets_problems_and_changes_nothing,
    openapi_docs_and_health,
    concurrent_writes_keep_skus_gtins_and_stock_right,
    a_failed_registration_frees_its_gtin,
    orders_reserve_all_lines_or_none,
    stock_view_serves_alerts_and_history
);
