//! The shared harness of Stockroom's end-to-end tests: it starts the real
//! `stockroom` binary on `127.0.0.1:0` with a temporary data directory, learns its
//! address from the log line, and talks HTTP to it.
//!
//! The binary is `$STOCKROOM_BIN` if set, else `target/<profile>/stockroom`, built
//! once per test process with `cargo build` if it is missing or older than the tests.

pub mod history;
pub mod postgres;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// Path of the binary under test.
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(path) = std::env::var("STOCKROOM_BIN") {
            return PathBuf::from(path);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_owned();
        let release = std::env::var("STOCKROOM_TEST_RELEASE").is_ok();
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(&root).args(["build", "-q", "-p", "stockroom", "--bin", "stockroom"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building the stockroom binary failed");
        let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
        target.join(if release { "release" } else { "debug" }).join("stockroom")
    })
    .clone()
}

/// A running `stockroom` process.
pub struct Server {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub http: reqwest::Client,
    child: Option<Child>,
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The problem `type`'s last segment (`sku-taken`), for problem answers.
    pub fn problem_kind(&self) -> Option<&str> {
        self.body.get("type").and_then(Value::as_str).and_then(|t| t.rsplit('/').next())
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Answer {
        assert_eq!(self.status.as_u16(), status, "unexpected answer: {} {}", self.status, self.text);
        self
    }

    /// Asserts a problem+json answer of this status and kind.
    #[track_caller]
    pub fn expect_problem(self, status: u16, kind: &str) -> Answer {
        assert_eq!(self.status.as_u16(), status, "unexpected answer: {}", self.text);
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{}", self.text);
        assert_eq!(self.problem_kind(), Some(kind), "{}", self.text);
        self
    }
}

/// Which event log a test runs on. The same tests run on both.
#[derive(Clone, Debug)]
pub enum Backend {
    /// The embedded sled log under the data directory.
    Embedded,
    /// A Kafka-API broker, with topics of their own for this test (`prefix`).
    Kafka { bootstrap: String, prefix: String },
}

impl Backend {
    /// Fresh topics (4 partitions) on the test broker, created with `stockroom topics create`.
    pub fn kafka() -> Backend {
        Self::kafka_with(4)
    }

    pub fn kafka_with(partitions: u32) -> Backend {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let bootstrap = kafka_bootstrap();
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let prefix = format!("e2e-{}-{n}-{nanos:x}", std::process::id());
        history::kafka_backend(&bootstrap, &prefix, partitions, &[])
    }

    /// The node flags that select this backend.
    pub fn args(&self) -> Vec<String> {
        match self {
            Backend::Embedded => Vec::new(),
            Backend::Kafka { bootstrap, prefix } => {
                vec!["--kafka".into(), bootstrap.clone(), "--topic-prefix".into(), prefix.clone()]
            }
        }
    }
}

/// The test broker: `$STOCKROOM_KAFKA`, else the local one that scripts/kafka.sh
/// starts (and installs, the first time) on 127.0.0.1:9092.
pub fn kafka_bootstrap() -> String {
    static BOOTSTRAP: OnceLock<String> = OnceLock::new();
    BOOTSTRAP
        .get_or_init(|| {
            if let Ok(b) = std::env::var("STOCKROOM_KAFKA") {
                return b;
            }
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka.sh");
            let status = Command::new(script).arg("start").status().expect("run scripts/kafka.sh");
            assert!(status.success(), "scripts/kafka.sh start failed");
            format!("127.0.0.1:{}", std::env::var("STOCKROOM_KAFKA_PORT").unwrap_or_else(|_| "9092".into()))
        })
        .clone()
}

impl Server {
    /// Starts `stockroom serve` on a free loopback port with `data_dir`.
    pub async fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_command(data_dir, "serve", extra).await
    }

    /// Starts `stockroom serve` on `backend`.
    pub async fn start_on(backend: &Backend, data_dir: &Path, extra: &[&str]) -> Server {
        Self::node(backend, "serve", data_dir, extra).await
    }

    /// Starts a node (`serve`, `command` or `query`) on `backend`.
    pub async fn node(backend: &Backend, subcommand: &str, data_dir: &Path, extra: &[&str]) -> Server {
        let mut args = backend.args();
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::start_command(data_dir, subcommand, &args).await
    }

    /// Starts a node on `backend` like [`Server::node`], but a node that exits at
    /// start (e.g. a broker restarting under it) is started again, as a supervisor
    /// would, up to `attempts` times.
    pub async fn node_supervised(
        backend: &Backend,
        subcommand: &str,
        data_dir: &Path,
        extra: &[&str],
        attempts: u32,
    ) -> Server {
        let mut args = backend.args();
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        for attempt in 1..attempts {
            match Self::try_start_command(data_dir, subcommand, &args).await {
                Ok(server) => return server,
                Err(e) => {
                    eprintln!("{e}; starting it again ({attempt} of {attempts})");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
        Self::start_command(data_dir, subcommand, &args).await
    }

    pub async fn start_command(data_dir: &Path, subcommand: &str, extra: &[&str]) -> Server {
        Self::try_start_command(data_dir, subcommand, extra).await.unwrap_or_else(|e| panic!("{e}"))
    }

    async fn try_start_command(data_dir: &Path, subcommand: &str, extra: &[&str]) -> Result<Server, String> {
        let mut cmd = Command::new(binary());
        cmd.arg(subcommand)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("STOCKROOM_LOG_FORMAT", "text")
            .env("STOCKROOM_LOG", std::env::var("STOCKROOM_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start stockroom");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(Some(tx));
        // The start of its log, to tell why a node that never listened went away.
        let early = std::sync::Arc::new(Mutex::new(Vec::<String>::new()));
        let early_lines = early.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                {
                    let mut early = early_lines.lock().unwrap_or_else(|e| e.into_inner());
                    if early.len() < 50 {
                        early.push(line.clone());
                    }
                }
                if let Some(addr) = listening_addr(&line)
                    && let Some(tx) = tx.lock().unwrap_or_else(|e| e.into_inner()).take()
                {
                    let _ = tx.send(addr);
                }
                if std::env::var("STOCKROOM_TEST_ECHO").is_ok() || line.contains("ERROR") || line.contains("panicked") {
                    eprintln!("[stockroom] {line}");
                }
            }
        });
        let addr = match tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_secs(60))) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                std::thread::sleep(Duration::from_millis(100));
                let log = early.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
                return Err(format!(
                    "stockroom did not report a listening address (exit status {status:?}); its log:\n{log}"
                ));
            }
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client");
        let server = Server { addr, data_dir: data_dir.to_owned(), http, child: Some(child) };
        server.wait_ready().await;
        Ok(server)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Waits until `/health/readyz` answers 200.
    pub async fn wait_ready(&self) {
        for _ in 0..600 {
            if let Ok(r) = self.http.get(self.url("/health/readyz")).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("stockroom at {} never became ready", self.addr);
    }

    pub async fn request(&self, method: &str, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.expect("http request")).await
    }

    pub async fn raw(&self, method: &str, path: &str, body: Vec<u8>, content_type: Option<&str>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        // A server that answers before reading a large body (413) closes the
        // connection, and a client still sending, or reusing that connection at
        // once, may lose the answer (an HTTP/1.1 race, not a server error): send
        // again, a few times, to read the answer.
        let mut attempts = 0;
        loop {
            let mut req = self.http.request(method.clone(), self.url(path)).body(body.clone());
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            match req.send().await {
                Ok(response) => return read(response).await,
                Err(e) if attempts < 5 && e.is_request() => {
                    attempts += 1;
                    eprintln!("retrying a large request after {e}");
                }
                Err(e) => panic!("http request: {e:?}"),
            }
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.request("GET", path, None, &[]).await
    }

    /// A read that waits for the given position token.
    pub async fn get_at(&self, path: &str, position: &str) -> Answer {
        self.request("GET", path, None, &[("stockroom-min-position", position)]).await
    }

    /// Reads `path` once the view has applied the write `answer` acknowledged
    /// (read-your-writes with its `Stockroom-Position`).
    pub async fn read_after(&self, path: &str, answer: &Answer) -> Answer {
        let position = answer.header("stockroom-position").expect("a write's answer has a Stockroom-Position");
        self.get_at(path, position).await
    }

    /// The product's `stock` once the view has applied the write `answer` acknowledged.
    pub async fn stock_after(&self, sku: &str, answer: &Answer) -> Value {
        self.read_after(&format!("/products/{sku}"), answer).await.expect(200).body["stock"].take()
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.request("POST", path, Some(body), &[]).await
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running child");
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        tokio::task::spawn_blocking(move || child.wait().expect("wait for stockroom")).await.expect("join")
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn read(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, headers, body, text }
}

/// `... listening addr=127.0.0.1:12345 ...` → the address.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("listening") {
        return None;
    }
    let rest = &line[line.find("addr=")? + 5..];
    rest.split_whitespace().next()?.parse().ok()
}

/// A valid GTIN-14 made of `n` (its last 13 digits) and its check digit.
pub fn gtin14(n: u64) -> String {
    let body = format!("{:013}", n % 10_000_000_000_000);
    let sum: u32 =
        body.bytes().rev().enumerate().map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 }).sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// A fresh temporary data directory.
/// A `POST /orders` body: `lines` as (SKU, quantity).
pub fn order(order_id: &str, lines: &[(&str, u64)]) -> Value {
    let lines: Vec<Value> = lines.iter().map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity})).collect();
    json!({"order_id": order_id, "lines": lines})
}

pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("stockroom-test-").tempdir().expect("temp dir")
}

/// Each test of a test file, once per backend: `embedded::name` and `kafka::name`.
/// Each name is an `async fn name(backend: Backend)` of that file.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Embedded).await
                }
            )*
        }
        mod kafka {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::kafka()).await
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_address_in_the_log_line() {
        let line = "2026-11-24T01:00:00Z  INFO stockroom::serve: listening addr=127.0.0.1:4321 data_dir=/tmp/x";
        assert_eq!(super::listening_addr(line), Some("127.0.0.1:4321".parse().unwrap()));
        assert_eq!(super::listening_addr("nothing here"), None);
    }
}
