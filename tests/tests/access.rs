//! Access control over real HTTP: every role boundary, and the refusal to serve an
//! open door on a reachable address. (The backend does not matter here: the checks
//! run before any handler; these run on the embedded log.)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use stockroom_tests::{Server, binary, data_dir};

const READER: &str = "reader-token-0123456789";
const WRITER: &str = "writer-token-0123456789";
const ADMIN: &str = "admin-token-0123456789ab";

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_boundary_holds() {
    let dir = data_dir();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("# roles\nreader {READER}\nwriter {WRITER}\nadmin {ADMIN}\n")).unwrap();
    let tokens = tokens.to_str().unwrap().to_owned();
    let s = Server::start(dir.path(), &["--tokens-file", &tokens]).await;
    let product = json!({"sku": "AUTH-1", "name": "Lock", "price_cents": 100});

    // Health, the spec and the docs stay open (probes and clients need them).
    s.get("/health/readyz").await.expect(200);
    s.get("/openapi.json").await.expect(200);
    // The console's page is open (it carries no data); what it reads is not.
    assert!(s.get("/").await.expect(200).text.contains("<title>Stockroom"));

    // No token, a wrong token, a malformed header: 401 with a Bearer challenge.
    let a = s.post("/products", product.clone()).await.expect_problem(401, "unauthorized");
    assert!(a.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")));
    s.get("/products/AUTH-1").await.expect_problem(401, "unauthorized");
    s.get("/search?q=lock").await.expect_problem(401, "unauthorized");
    s.request("GET", "/products/AUTH-1", None, &[("authorization", &bearer("not-a-known-token-at-all"))])
        .await
        .expect_problem(401, "unauthorized");
    s.request("GET", "/products/AUTH-1", None, &[("authorization", READER)]).await.expect_problem(401, "unauthorized");
    s.request("GET", "/metrics", None, &[]).await.expect_problem(401, "unauthorized");

    // A reader reads but does not write.
    s.request("POST", "/products", Some(product.clone()), &[("authorization", &bearer(READER))])
        .await
        .expect_problem(403, "forbidden");
    s.request("POST", "/orders/o-1/cancel", Some(json!({})), &[("authorization", &bearer(READER))])
        .await
        .expect_problem(403, "forbidden");
    s.request("GET", "/products/AUTH-1", None, &[("authorization", &bearer(READER))])
        .await
        .expect_problem(404, "not-found");

    // A writer writes (and reads) but is no admin.
    let a =
        s.request("POST", "/products", Some(product.clone()), &[("authorization", &bearer(WRITER))]).await.expect(201);
    let at = a.header("stockroom-position").unwrap().to_owned();
    s.request("GET", "/products/AUTH-1", None, &[("authorization", &bearer(WRITER)), ("stockroom-min-position", &at)])
        .await
        .expect(200);
    s.request("GET", "/admin/views", None, &[("authorization", &bearer(WRITER))])
        .await
        .expect_problem(403, "forbidden");
    s.request("POST", "/admin/replay", Some(json!({})), &[("authorization", &bearer(READER))])
        .await
        .expect_problem(403, "forbidden");

    // An admin passes every door (an /admin route that does not exist is a 404, not a 403).
    let a = s.request("GET", "/admin/views", None, &[("authorization", &bearer(ADMIN))]).await.expect(200);
    assert!(a.body["views"].as_array().is_some_and(|v| !v.is_empty()), "{}", a.text);
    s.request("POST", "/admin/replay", Some(json!({"view": "catalog"})), &[("authorization", &bearer(ADMIN))])
        .await
        .expect(202);
    s.request("POST", "/admin/nothing-here", Some(json!({})), &[("authorization", &bearer(ADMIN))])
        .await
        .expect_problem(404, "not-found");
    s.request("PATCH", "/products/AUTH-1", Some(json!({"name": "Padlock"})), &[("authorization", &bearer(ADMIN))])
        .await
        .expect(200);
    s.stop().await;
}

#[test]
fn an_open_door_on_a_reachable_address_is_refused() {
    let dir = data_dir();
    let run = |extra: &[&str]| {
        let mut child = Command::new(binary())
            .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
            .arg(dir.path())
            .args(extra)
            .env_remove("STOCKROOM_TOKENS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start stockroom");
        let deadline = Instant::now() + Duration::from_secs(8);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                return Some((status, err));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None; // still serving
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let (status, err) = run(&[]).expect("refuses to start");
    assert!(!status.success());
    assert!(err.contains("refusing to listen") && err.contains("--insecure"), "{err}");
    // Told that it is intended, it serves.
    assert!(run(&["--insecure"]).is_none(), "serves with --insecure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_limits_are_shed_or_cut_short() {
    let dir = data_dir();
    let s = Server::start(
        dir.path(),
        &["--max-concurrent-requests", "1", "--request-timeout", "1s", "--read-timeout", "10s"],
    )
    .await;
    // A read waiting for a position the log will not reach for a while holds the one
    // slot; it is cut short by the request timeout.
    let far = "0:1000000";
    let http = s.http.clone();
    let url = s.url("/products/X");
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let r = http.get(url).header("stockroom-min-position", far).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap(), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Meanwhile, another request is shed at once.
    let a = s.get("/search?q=x").await.expect_problem(503, "overloaded");
    assert_eq!(a.header("retry-after"), Some("1"));
    let (status, text, took) = waiting.await.unwrap();
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("/errors/timeout"), "{text}");
    assert!(took < Duration::from_secs(5), "cut at the request timeout, not the read timeout: {took:?}");
    // Once it is done, the slot is free again.
    s.get("/search?q=x").await.expect(200);
    s.stop().await;
}
