//! The PostgreSQL outbox connector over real connections (API.md, "Databases"): a
//! PostgreSQL of the tests' own (`scripts/postgres.sh`, `wal_level=logical`), the
//! real binary with `--outbox`, and the outcomes read back over HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stockroom_tests::postgres::Postgres;
use stockroom_tests::{Server, data_dir};

/// The tests' PostgreSQL (not the benchmark's 5544).
const PG_PORT: u16 = 5561;
/// A server of its own for the test that kills it, so that the others do not see it die.
const PG_PORT_KILLED: u16 = 5562;
/// The same for the polling connector's kill test.
const PG_PORT_KILLED_POLL: u16 = 5564;
/// A server without logical decoding (`wal_level=replica`), for the polling mode.
const PG_PORT_PLAIN: u16 = 5565;
const PATIENT: &[&str] = &["--write-timeout", "20s", "--read-timeout", "20s"];

async fn start(dir: &std::path::Path, dsn: &str) -> Server {
    start_in(dir, dsn, "replication").await
}

async fn start_in(dir: &std::path::Path, dsn: &str, mode: &str) -> Server {
    let mut args: Vec<&str> = PATIENT.to_vec();
    args.extend(["--outbox", dsn, "--outbox-mode", mode]);
    let s = Server::start(dir, &args).await;
    s.wait_ready().await;
    s
}

/// Waits until the connector has made its slot and reads it.
async fn following(s: &Server) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let views = s.get("/admin/views").await.body;
        if views["outbox"]["state"] == "following" {
            return views["outbox"].clone();
        }
        assert!(Instant::now() < deadline, "the connector never followed its slot: {views}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> Option<Value>) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stock(s: &Server, sku: &str) -> Value {
    s.get(&format!("/products/{sku}")).await.expect(200).body
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_rows_become_commands_rolled_back_ones_never_and_malformed_ones_go_to_the_dlq() {
    let pg = Postgres::start(PG_PORT);
    let db = pg.database("outbox_flow").await;
    let dir = data_dir();
    let s = start(dir.path(), &pg.dsn(&db)).await;
    following(&s).await;
    s.post("/products", json!({"sku": "KET-1", "name": "Kettle", "price_cents": 2999, "initial_stock": 10}))
        .await
        .expect(201);

    let app = pg.connect(&db).await;
    app.batch_execute("CREATE TABLE orders (id text PRIMARY KEY, total_cents bigint)").await.unwrap();
    let outbox = |kind: &str, payload: Value| {
        format!("INSERT INTO outbox (aggregate, type, payload) VALUES ('x', '{kind}', '{payload}'::jsonb);")
    };
    // An order and its outbox row, committed together.
    app.batch_execute(&format!(
        "BEGIN; INSERT INTO orders VALUES ('o-1', 8997); {} COMMIT;",
        outbox("order.placed", json!({"order_id": "o-1", "lines": [{"sku": "KET-1", "quantity": 3}]}))
    ))
    .await
    .unwrap();
    // The same, rolled back: neither the order nor its event exists.
    app.batch_execute(&format!(
        "BEGIN; INSERT INTO orders VALUES ('o-2', 1); {} ROLLBACK;",
        outbox("order.placed", json!({"order_id": "o-2", "lines": [{"sku": "KET-1", "quantity": 4}]}))
    ))
    .await
    .unwrap();
    // Rows that do not fit: an unknown type, a payload the API calls invalid.
    app.batch_execute(&outbox("order.shipped", json!({"order_id": "o-1"}))).await.unwrap();
    app.batch_execute(&outbox("stock.received", json!({"sku": "KET-1", "quantity": 0}))).await.unwrap();
    // The stream flows on after them; and a transaction of two rows.
    app.batch_execute(&format!(
        "BEGIN; {} {} COMMIT;",
        outbox("stock.received", json!({"sku": "KET-1", "quantity": 5, "reference": "PO-1"})),
        outbox("product.updated", json!({"sku": "KET-1", "price_cents": 2799}))
    ))
    .await
    .unwrap();
    app.batch_execute(&outbox("order.confirmed", json!({"order_id": "o-1"}))).await.unwrap();

    let report = until("every row's outcome", Duration::from_secs(60), async || {
        let o = s.get("/admin/views").await.body["outbox"].clone();
        (o["rows_applied"] == 4 && o["dead_letters"] == 2).then_some(o)
    })
    .await;
    assert_eq!(report["rows_rejected"], 0, "{report}");

    // o-1 was reserved, then confirmed (shipped): 10 + 5 - 3 on hand, nothing reserved.
    // (The views follow the log a little behind the outcomes.)
    until("o-1 confirmed", Duration::from_secs(20), async || {
        let order = s.get("/orders/o-1").await.body;
        (order["state"] == "confirmed").then_some(order)
    })
    .await;
    s.get("/orders/o-2").await.expect(404);
    let product = until("the catalog to show the rows", Duration::from_secs(20), async || {
        let p = stock(&s, "KET-1").await;
        (p["stock"]["on_hand"] == 12).then_some(p)
    })
    .await;
    assert_eq!(product["stock"]["reserved"], 0, "{product}");
    assert_eq!(product["price_cents"], 2799, "{product}");

    let metrics = s.get("/metrics").await.text;
    assert!(metrics.contains("stockroom_outbox_rows_total{outcome=\"dead_letter\"} 2"), "{metrics}");
    assert!(metrics.contains("stockroom_outbox_rows_total{outcome=\"applied\"} 4"), "{metrics}");
    assert!(metrics.contains("stockroom_outbox_lag_bytes"), "{metrics}");

    // The reasons are in the DLQ (read from the stopped node's log).
    s.stop().await;
    let dump = std::process::Command::new(stockroom_tests::binary())
        .args(["log", "dump", "--topic", "dlq", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("log dump");
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("unknown outbox type"), "{dump}");
    assert!(dump.contains("quantity"), "{dump}");
    pg.drop_database(&db).await;
}

/// `kill -9` of the node running the connector (twice) and of PostgreSQL (once),
/// while an application commits receipts: every row is applied exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_connector_and_of_postgres_mid_stream_applies_every_row_exactly_once() {
    kill_9_mid_stream(Postgres::start(PG_PORT_KILLED), "replication").await
}

/// The same with the polling connector, on a server without logical decoding.
#[tokio::test(flavor = "multi_thread")]
async fn polling_kill_9_of_the_connector_and_of_postgres_mid_stream_applies_every_row_exactly_once() {
    kill_9_mid_stream(Postgres::start_without_logical_decoding(PG_PORT_KILLED_POLL), "poll").await
}

async fn kill_9_mid_stream(pg: Postgres, mode: &str) {
    const ROWS: i64 = 600;
    let pg = Arc::new(pg);
    let db = pg.database("outbox_crash").await;
    let dir = data_dir();
    let mut s = start_in(dir.path(), &pg.dsn(&db), mode).await;
    following(&s).await;
    s.post("/products", json!({"sku": "BOLT-1", "name": "Bolt", "price_cents": 10})).await.expect(201);

    // The application: one receipt of 1 per transaction, ids chosen by it, so that a
    // commit whose answer was lost to the server's death is retried safely (the
    // retry of a committed row is a primary-key conflict).
    let committed = Arc::new(AtomicI64::new(0));
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (pg, db, committed, writing) = (pg.clone(), db.clone(), committed.clone(), writing.clone());
        tokio::spawn(async move {
            let mut app = pg.connect(&db).await;
            let mut id = 1;
            while id <= ROWS {
                let sql = format!(
                    "INSERT INTO outbox (id, aggregate, type, payload) VALUES ({id}, 'BOLT-1', 'stock.received', \
                     '{{\"sku\": \"BOLT-1\", \"quantity\": 1}}')"
                );
                match app.batch_execute(&sql).await {
                    Ok(()) => {
                        committed.store(id, Ordering::Relaxed);
                        id += 1;
                    }
                    Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => id += 1,
                    Err(_) => app = pg.connect_retrying(&db).await,
                }
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
            writing.store(false, Ordering::Relaxed);
        })
    };

    let mut kills = 0;
    let mut pg_killed = false;
    while writing.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let done = committed.load(Ordering::Relaxed);
        if kills < 2 && done > ROWS / 4 * (kills + 1) {
            s.kill();
            kills += 1;
            s = start_in(dir.path(), &pg.dsn(&db), mode).await;
        } else if !pg_killed && done > ROWS * 3 / 4 {
            let pg = pg.clone();
            tokio::task::spawn_blocking(move || pg.kill_and_restart()).await.unwrap();
            pg_killed = true;
        }
    }
    writer.await.unwrap();
    assert_eq!(kills, 2, "the node was not killed twice mid-stream");
    assert!(pg_killed, "postgres was not killed mid-stream");

    // Every row once: on hand is the number of rows, and each receipt is one version.
    let product = until("every receipt", Duration::from_secs(120), async || {
        let p = stock(&s, "BOLT-1").await;
        (p["stock"]["on_hand"].as_i64() >= Some(ROWS)).then_some(p)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let product_later = stock(&s, "BOLT-1").await;
    assert_eq!(product["stock"]["on_hand"], ROWS, "{product}");
    assert_eq!(product_later["stock"]["on_hand"], ROWS, "applied twice after all: {product_later}");
    assert_eq!(product_later["version"], ROWS + 1, "{product_later}");
    let history = s.get("/products/BOLT-1/history").await.expect(200).body;
    assert_eq!(history["events"].as_array().map(Vec::len), Some(ROWS as usize + 1));

    let report = following(&s).await;
    if mode == "replication" {
        // The slot has confirmed everything.
        let admin = pg.connect("postgres").await;
        let lag: i64 = admin
            .query_one(
                "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE database = $1",
                &[&db],
            )
            .await
            .unwrap()
            .get(0);
        eprintln!("after {kills} kills of the node and one of postgres: {report}; slot lag {lag} bytes");
    } else {
        // The stored position is past every row.
        let app = pg.connect(&db).await;
        let behind: i64 = app
            .query_one(
                "SELECT count(*) FROM outbox o, stockroom_outbox_position p WHERE p.outbox = 'outbox' \
                 AND (o.stockroom_xid::text::bigint, o.id) > (p.xid, p.id)",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        eprintln!("after {kills} kills of the node and one of postgres: {report}; rows after the position: {behind}");
        assert_eq!(behind, 0, "the position did not reach the last row: {report}");
        assert_eq!(report["mode"], "poll", "{report}");
    }
    assert_eq!(report["dead_letters"], 0, "{report}");
    s.stop().await;
    pg.drop_database(&db).await;
}

/// The Kafka shape: `stockroom connect postgres-outbox` as a node of its own, its
/// commands going through `commands` to a command node, killed with `kill -9` and
/// started again mid-stream: every row once.
#[tokio::test(flavor = "multi_thread")]
async fn the_connector_node_on_kafka_applies_every_row_once_across_a_kill() {
    const ROWS: i64 = 120;
    let pg = Postgres::start(PG_PORT);
    let db = pg.database("outbox_kafka").await;
    let backend = stockroom_tests::Backend::kafka();
    let dir = data_dir();
    let s = Server::start_on(&backend, dir.path(), PATIENT).await;
    s.wait_ready().await;
    s.post("/products", json!({"sku": "NUT-1", "name": "Nut", "price_cents": 5})).await.expect(201);

    let connector = || {
        std::process::Command::new(stockroom_tests::binary())
            .args(["connect", "postgres-outbox", "--dsn", &pg.dsn(&db)])
            .args(backend.args())
            .env("STOCKROOM_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start the connector")
    };
    let mut node = connector();
    // The slot exists once the connector has prepared it; rows before it are not read.
    let admin = pg.connect("postgres").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while admin.query_opt("SELECT 1 FROM pg_replication_slots WHERE database = $1", &[&db]).await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "the connector made no slot");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let app = pg.connect(&db).await;
    for id in 1..=ROWS {
        app.batch_execute(
            "INSERT INTO outbox (type, payload) VALUES ('stock.received', '{\"sku\": \"NUT-1\", \"quantity\": 1}')",
        )
        .await
        .unwrap();
        if id == ROWS / 2 {
            node.kill().unwrap();
            node.wait().unwrap();
            node = connector();
        }
    }
    let product = until("every receipt", Duration::from_secs(120), async || {
        let p = stock(&s, "NUT-1").await;
        (p["stock"]["on_hand"].as_i64() >= Some(ROWS)).then_some(p)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = stock(&s, "NUT-1").await;
    assert_eq!(product["stock"]["on_hand"], ROWS, "{product}");
    assert_eq!(later["version"], ROWS + 1, "applied twice: {later}");
    let _ = node.kill();
    let _ = node.wait();
    s.stop().await;
    pg.drop_database(&db).await;
}

/// On a server without logical decoding: the default mode says why it cannot run and
/// what to use instead; `--outbox-mode poll` then reads the table: a committed order
/// reserves stock, a rolled-back one never exists, and rows whose transactions commit
/// out of id order are all read, once.
#[tokio::test(flavor = "multi_thread")]
async fn polling_without_logical_decoding_reads_committed_rows_once_whatever_order_their_ids_commit_in() {
    let pg = Postgres::start_without_logical_decoding(PG_PORT_PLAIN);
    let db = pg.database("outbox_poll").await;
    let dsn = pg.dsn(&db);
    let dir = data_dir();

    // Replication mode: a clear error that names the cause and the way out.
    let s = start_in(dir.path(), &dsn, "replication").await;
    let report = until("the connector's error", Duration::from_secs(30), async || {
        let o = s.get("/admin/views").await.body["outbox"].clone();
        o["error"].as_str().is_some_and(|e| e.contains("--outbox-mode poll")).then_some(o)
    })
    .await;
    assert!(report["error"].as_str().unwrap().contains("wal_level=replica"), "{report}");
    assert_eq!(report["state"], "disconnected", "{report}");
    s.stop().await;

    let s = start_in(dir.path(), &dsn, "poll").await;
    let report = following(&s).await;
    assert_eq!(report["mode"], "poll", "{report}");
    s.post("/products", json!({"sku": "KET-1", "name": "Kettle", "price_cents": 2999, "initial_stock": 10}))
        .await
        .expect(201);
    let app = pg.connect(&db).await;
    let row = |id: Option<i64>, kind: &str, payload: Value| match id {
        Some(id) => format!("INSERT INTO outbox (id, type, payload) VALUES ({id}, '{kind}', '{payload}'::jsonb);"),
        None => format!("INSERT INTO outbox (type, payload) VALUES ('{kind}', '{payload}'::jsonb);"),
    };
    let order = |id: &str, qty: u32| json!({"order_id": id, "lines": [{"sku": "KET-1", "quantity": qty}]});
    app.batch_execute(&format!("BEGIN; {} COMMIT;", row(None, "order.placed", order("o-1", 3)))).await.unwrap();
    app.batch_execute(&format!("BEGIN; {} ROLLBACK;", row(None, "order.placed", order("o-2", 4)))).await.unwrap();
    until("o-1 reserved", Duration::from_secs(30), async || {
        let o = s.get("/orders/o-1").await.body;
        (o["state"] == "reserved").then_some(o)
    })
    .await;
    s.get("/orders/o-2").await.expect(404);
    let before = until("the catalog to show o-1", Duration::from_secs(20), async || {
        let p = stock(&s, "KET-1").await;
        (p["stock"]["reserved"] == 3).then_some(p)
    })
    .await;
    let on_hand = before["stock"]["on_hand"].as_i64().unwrap();

    // 1. The lower id's transaction is open first, holds its id, and commits last.
    let late = pg.connect(&db).await;
    late.batch_execute(&format!(
        "BEGIN; {}",
        row(Some(1000), "stock.received", json!({"sku": "KET-1", "quantity": 1}))
    ))
    .await
    .unwrap();
    app.batch_execute(&row(Some(1001), "stock.received", json!({"sku": "KET-1", "quantity": 2}))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    late.batch_execute("COMMIT").await.unwrap();

    // 2. A transaction that will write id 2000 (the application hands out its ids) is
    //    open, but has written nothing yet, when id 2001 commits and is read and
    //    applied; then it writes its row and commits. A reader that kept "the highest
    //    id read" would never read 2000.
    let early = pg.connect(&db).await;
    early.batch_execute("BEGIN; SELECT count(*) FROM outbox;").await.unwrap();
    app.batch_execute(&row(Some(2001), "stock.received", json!({"sku": "KET-1", "quantity": 4}))).await.unwrap();
    until("the higher id applied", Duration::from_secs(30), async || {
        let p = stock(&s, "KET-1").await;
        (p["stock"]["on_hand"].as_i64() == Some(on_hand + 7)).then_some(p)
    })
    .await;
    early
        .batch_execute(&format!(
            "{} COMMIT;",
            row(Some(2000), "stock.received", json!({"sku": "KET-1", "quantity": 8}))
        ))
        .await
        .unwrap();

    let product = until("every row", Duration::from_secs(30), async || {
        let p = stock(&s, "KET-1").await;
        (p["stock"]["on_hand"].as_i64() >= Some(on_hand + 15)).then_some(p)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = stock(&s, "KET-1").await;
    assert_eq!(product["stock"]["on_hand"], on_hand + 15, "{product}");
    assert_eq!(later["version"], before["version"].as_i64().unwrap() + 4, "a row applied twice or missed: {later}");
    let report = s.get("/admin/views").await.body["outbox"].clone();
    assert_eq!(report["rows_applied"], 5, "{report}");
    assert_eq!(report["dead_letters"], 0, "{report}");
    s.stop().await;
    pg.drop_database(&db).await;
}

/// The crash window of a dead letter: written to the DLQ, then the node dies before
/// the position moves, so the rows are read again. Simulated exactly by moving the
/// stored position (polling) back over them while the node is down: the rows come
/// again, the good one is answered from its stored outcome, and the dead letters are
/// not written a second time.
#[tokio::test(flavor = "multi_thread")]
async fn a_row_read_again_after_a_crash_does_not_write_its_dead_letter_twice() {
    let pg = Postgres::start_without_logical_decoding(PG_PORT_PLAIN);
    let db = pg.database("outbox_dlq_once").await;
    let dsn = pg.dsn(&db);
    let dir = data_dir();
    let s = start_in(dir.path(), &dsn, "poll").await;
    following(&s).await;
    s.post("/products", json!({"sku": "PEG-1", "name": "Peg", "price_cents": 5})).await.expect(201);
    let app = pg.connect(&db).await;
    let start: (i64, i64) = {
        let r = app.query_one("SELECT xid, id FROM stockroom_outbox_position", &[]).await.unwrap();
        (r.get(0), r.get(1))
    };
    for (kind, payload) in [
        ("order.shipped", json!({"order_id": "o-1"})),
        ("stock.received", json!({"sku": "PEG-1", "quantity": 0})),
        ("stock.received", json!({"sku": "PEG-1", "quantity": 2})),
    ] {
        app.batch_execute(&format!("INSERT INTO outbox (type, payload) VALUES ('{kind}', '{payload}'::jsonb)"))
            .await
            .unwrap();
    }
    let report = until("the rows' outcomes", Duration::from_secs(30), async || {
        let o = s.get("/admin/views").await.body["outbox"].clone();
        (o["rows_applied"] == 1 && o["dead_letters"] == 2).then_some(o)
    })
    .await;
    let version = until("the receipt in the catalog", Duration::from_secs(20), async || {
        let p = stock(&s, "PEG-1").await;
        (p["stock"]["on_hand"] == 2).then(|| p["version"].clone())
    })
    .await;
    s.stop().await;

    // As if the node had died before storing the position past these rows.
    let moved =
        app.execute("UPDATE stockroom_outbox_position SET xid = $1, id = $2", &[&start.0, &start.1]).await.unwrap();
    assert_eq!(moved, 1, "{report}");
    let s = start_in(dir.path(), &dsn, "poll").await;
    let again = until("the rows read again", Duration::from_secs(30), async || {
        let o = s.get("/admin/views").await.body["outbox"].clone();
        (o["rows_applied"] == 1 && o["state"] == "following").then_some(o)
    })
    .await;
    assert_eq!(again["dead_letters"], 0, "a dead letter written again: {again}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let product = stock(&s, "PEG-1").await;
    assert_eq!(product["version"], version, "the receipt applied twice: {product}");
    assert_eq!(product["stock"]["on_hand"], 2, "{product}");
    s.stop().await;

    let dump = std::process::Command::new(stockroom_tests::binary())
        .args(["log", "dump", "--topic", "dlq", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("log dump");
    let dump = String::from_utf8_lossy(&dump.stdout);
    let letters: Vec<&str> = dump.lines().filter(|l| l.contains("outbox-")).collect();
    assert_eq!(letters.len(), 2, "{dump}");
    pg.drop_database(&db).await;
}
