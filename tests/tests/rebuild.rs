//! Rebuilding the catalog on request, on both backends, over real HTTP:
//!
//! - under a steady write load, reads keep answering during the rebuild (no 5xx, no
//!   empty result), and after the swap every acknowledged write is there;
//! - `stockroom replay` asks and follows the rebuild to its end;
//! - the query node killed (`kill -9`) again and again during rebuilds and during
//!   projection comes back with a catalog equal to one freshly built from the log:
//!   every product once, none missing, same answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stockroom_tests::{Backend, Server, binary, data_dir};
use tokio::sync::Mutex;

/// Node flags: a loaded test broker can take seconds per write, and these tests want
/// answers, not 202s.
const PATIENT: &[&str] = &["--write-timeout", "60s", "--read-timeout", "30s"];

fn product(sku: &str, i: u64) -> Value {
    json!({"sku": sku, "name": format!("Rebuild widget {i}"), "brand": "Acme", "category": "parts",
           "price_cents": 100 + i, "initial_stock": i % 7,
           "description": "a widget registered to be rebuilt"})
}

/// Registers `n` products named `prefix-i`, `concurrency` at a time; returns the
/// last position token.
async fn register(s: &Arc<Server>, prefix: &str, n: u64, concurrency: u64) -> String {
    let last = Arc::new(Mutex::new(String::new()));
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (s, last, prefix) = (s.clone(), last.clone(), prefix.to_owned());
        tasks.push(tokio::spawn(async move {
            for i in (worker..n).step_by(concurrency as usize) {
                let a = s.post("/products", product(&format!("{prefix}-{i}"), i)).await.expect(201);
                *last.lock().await = a.header("stockroom-position").unwrap().to_owned();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    last.lock().await.clone()
}

/// The latest catalog rebuild this node reports: (request, answers, state).
async fn rebuild_of(s: &Server) -> Option<(u64, u64, String)> {
    let views = s.get("/admin/views").await.expect(200).body;
    let catalog = views["views"].as_array()?.iter().find(|v| v["name"] == "catalog")?.clone();
    let r = &catalog["rebuild"];
    Some((r["request"].as_u64()?, r["answers"].as_u64()?, r["state"].as_str()?.to_owned()))
}

async fn wait_rebuilt(s: &Server, request: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let views = s.get("/admin/views").await.expect(200).body;
        let catalog = views["views"].as_array().unwrap().iter().find(|v| v["name"] == "catalog").unwrap().clone();
        if catalog["replay_answered"].as_u64().is_some_and(|a| a > request) {
            return;
        }
        assert!(Instant::now() < deadline, "the rebuild of request {request} never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every product the node serves, by paging through a name-sorted search.
async fn all_products(s: &Server, at: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/search?sort=name&limit=100&include_discontinued=true{cursor}");
        let page = s.get_at(&path, at).await.expect(200).body;
        out.extend(page["hits"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

fn replay_cli(backend: &Backend, dir: &std::path::Path) -> std::process::Output {
    let mut cmd = std::process::Command::new(binary());
    cmd.args(["replay", "--view", "catalog", "--timeout", "2m", "--settle", "1s", "--data-dir"]).arg(dir);
    cmd.args(backend.args());
    cmd.output().expect("run stockroom replay")
}

async fn a_rebuild_under_write_load_keeps_answering_and_loses_nothing(backend: Backend, seeded: u64) {
    let dir = data_dir();
    let s = Arc::new(Server::start_on(&backend, dir.path(), PATIENT).await);
    let at = register(&s, "SEED", seeded, 8).await;
    assert_eq!(s.get_at("/search?q=widget&limit=1", &at).await.expect(200).body["total"], seeded);

    let stop = Arc::new(AtomicBool::new(false));
    // A writer that keeps registering, and keeps what was acknowledged.
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let sku = format!("LIVE-{i}");
                let a = s.post("/products", product(&sku, i)).await.expect(201);
                acknowledged.push((sku, a.header("stockroom-position").unwrap().to_owned()));
                i += 1;
            }
            acknowledged
        })
    };
    // Readers that must always get a full answer.
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for r in 0..2 {
        let (s, stop, reads) = (s.clone(), stop.clone(), reads.clone());
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let a = s.get("/search?q=widget&limit=5").await.expect(200);
                let total = a.body["total"].as_u64().unwrap();
                assert!(total >= seeded, "a search during the rebuild found {total} of {seeded}");
                assert_eq!(a.body["hits"].as_array().unwrap().len(), 5);
                s.get(&format!("/products/SEED-{}", r * 7 % seeded)).await.expect(200);
                reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cli = replay_cli(&backend, dir.path());
    let out = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "stockroom replay failed: {out}{}", String::from_utf8_lossy(&cli.stderr));
    assert!(out.contains("done"), "{out}");
    let request: u64 = out
        .split("(request ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request number in {out}"));
    wait_rebuilt(&s, request).await;
    // Writes go on for a moment after the swap, then stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let acknowledged = writer.await.unwrap();
    for r in readers {
        r.await.unwrap();
    }
    assert!(!acknowledged.is_empty() && reads.load(Ordering::Relaxed) > 0);
    let last = &acknowledged.last().unwrap().1;
    for (sku, at) in &acknowledged {
        s.get_at(&format!("/products/{sku}"), at).await.expect(200);
    }
    let total = s.get_at("/search?q=widget&limit=1", last).await.expect(200).body["total"].as_u64().unwrap();
    assert_eq!(total, seeded + acknowledged.len() as u64, "every write, once");
    let current = std::fs::read_to_string(dir.path().join("catalog.current")).unwrap();
    assert!(current.starts_with("catalog.r"), "{current}");
    assert!(!dir.path().join("catalog").exists(), "the replaced catalog is deleted");
    eprintln!(
        "rebuild under load: {seeded} seeded, {} written and {} reads during it",
        acknowledged.len(),
        reads.load(Ordering::Relaxed)
    );
    // A request for a view that cannot be rebuilt is refused, and a bad body too.
    s.post("/admin/replay", json!({"view": "nope"})).await.expect_problem(422, "validation");
    s.post("/admin/replay", json!({"viewz": 1})).await.expect_problem(422, "validation");
    s.raw("POST", "/admin/replay", b"{".to_vec(), Some("application/json")).await.expect_problem(400, "malformed-json");
    s.raw("POST", "/admin/replay", b"view=catalog".to_vec(), Some("text/plain"))
        .await
        .expect_problem(415, "unsupported-media-type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_rebuild_under_write_load() {
    a_rebuild_under_write_load_keeps_answering_and_loses_nothing(Backend::Embedded, 1_500).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_rebuild_under_write_load() {
    a_rebuild_under_write_load_keeps_answering_and_loses_nothing(Backend::kafka(), 60).await
}

/// Starts the node that projects: `serve` on the embedded log, a `query` node on Kafka.
async fn query_node(backend: &Backend, dir: &std::path::Path) -> Server {
    match backend {
        Backend::Embedded => Server::start(dir, PATIENT).await,
        Backend::Kafka { .. } => Server::node(backend, "query", dir, PATIENT).await,
    }
}

async fn killed_again_and_again_the_rebuilt_catalog_equals_a_fresh_one(backend: Backend, seeded: u64, kills: u32) {
    let writes = data_dir();
    let dir = data_dir();
    // On Kafka the writes go through a command node of their own; on the embedded
    // log one process does everything, and is the one killed.
    let command = match &backend {
        Backend::Kafka { .. } => Some(Arc::new(Server::node(&backend, "command", writes.path(), PATIENT).await)),
        Backend::Embedded => None,
    };
    let mut node = Arc::new(query_node(&backend, dir.path()).await);
    let writer = |n: &Arc<Server>| command.clone().unwrap_or_else(|| n.clone());
    register(&writer(&node), "SEED", seeded, 8).await;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut during_rebuild = 0;
    let mut last_request = 0;
    for round in 0..kills {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if round % 3 == 2 {
            // A kill during projection: writes in flight, no rebuild asked.
            register(&writer(&node), &format!("R{round}"), 20, 4).await;
        } else {
            let a = node.post("/admin/replay", json!({"view": "catalog"})).await.expect(202);
            last_request = a.body["request"].as_u64().unwrap();
            // Wait until the rebuild is running (or already done), then a little more.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match rebuild_of(&node).await {
                    Some((_, answers, state)) if answers >= last_request && state == "rebuilding" => {
                        during_rebuild += 1;
                        break;
                    }
                    Some((_, answers, state)) if answers >= last_request && state == "done" => break,
                    _ if Instant::now() > deadline => panic!("the rebuild never started"),
                    _ => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
            tokio::time::sleep(Duration::from_millis(rng % 15)).await;
        }
        Arc::try_unwrap(node).unwrap_or_else(|_| panic!("node shared")).kill();
        node = Arc::new(query_node(&backend, dir.path()).await);
    }
    // Let the last rebuild finish, then compare with a node built from the log alone.
    wait_rebuilt(&node, last_request).await;
    let at = writer(&node)
        .post("/products", product("LAST", 0))
        .await
        .expect(201)
        .header("stockroom-position")
        .unwrap()
        .to_owned();
    let rebuilt = all_products(&node, &at).await;
    let skus: std::collections::BTreeSet<&str> = rebuilt.iter().map(|p| p["sku"].as_str().unwrap()).collect();
    assert_eq!(skus.len(), rebuilt.len(), "a product is indexed twice");
    let expected = seeded + 20 * u64::from(kills / 3) + 1;
    assert_eq!(rebuilt.len() as u64, expected, "products missing or extra");
    let fresh_dir = data_dir();
    if backend_is_embedded(&backend) {
        // A copy of the log alone: the new node builds every view from it.
        Arc::try_unwrap(node).unwrap_or_else(|_| panic!("node shared")).stop().await;
        copy_dir(&dir.path().join("log"), &fresh_dir.path().join("log"));
        node = Arc::new(query_node(&backend, dir.path()).await);
    }
    let fresh = query_node(&backend, fresh_dir.path()).await;
    let replayed = all_products(&fresh, &at).await;
    assert_eq!(replayed, all_products(&node, &at).await, "the rebuilt catalog differs from a fresh replay");
    for q in ["widget", "rebuild 5", "acme"] {
        let path = format!("/search?q={q}&limit=50&sort=price_desc");
        assert_eq!(node.get_at(&path, &at).await.body, fresh.get_at(&path, &at).await.body, "search {q}");
    }
    eprintln!("{kills} kills of the query node, {during_rebuild} while it was rebuilding; {expected} products, equal");
    assert!(during_rebuild > 0, "no kill landed during a rebuild");
}

fn backend_is_embedded(backend: &Backend) -> bool {
    matches!(backend, Backend::Embedded)
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_query_node_killed_during_rebuilds() {
    killed_again_and_again_the_rebuilt_catalog_equals_a_fresh_one(Backend::Embedded, 3_000, 15).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_query_node_killed_during_rebuilds() {
    killed_again_and_again_the_rebuilt_catalog_equals_a_fresh_one(Backend::kafka(), 80, 6).await
}
