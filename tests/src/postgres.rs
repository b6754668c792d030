//! A PostgreSQL server of the tests' own (never the benchmark's): Debian's packages,
//! installed and started by `scripts/postgres.sh` on its own port and data directory,
//! with `wal_level=logical` for the outbox connector's slots. Each test makes a
//! database of its own, so tests share the server but nothing in it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_postgres::{Client, NoTls};

use crate::Server;

pub struct Postgres {
    pub port: u16,
    dir: String,
    logical: bool,
}

static DATABASES: AtomicU32 = AtomicU32::new(0);

impl Postgres {
    /// Starts (or finds running) the tests' server on `port`.
    pub fn start(port: u16) -> Postgres {
        let pg = Postgres { port, dir: format!("/tmp/stockroom-test-pg-{port}"), logical: true };
        pg.script("start");
        pg
    }

    /// Starts (or finds running) a server on `port` with the default `wal_level`
    /// (`replica`): no logical decoding, as many production servers run.
    pub fn start_without_logical_decoding(port: u16) -> Postgres {
        let pg = Postgres { port, dir: format!("/tmp/stockroom-test-pg-plain-{port}"), logical: false };
        pg.script("start");
        pg
    }

    fn script(&self, action: &str) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_owned();
        let status = Command::new(root.join("scripts/postgres.sh"))
            .arg(action)
            .env("PGPORT", self.port.to_string())
            .env("STOCKROOM_PG_DIR", &self.dir)
            .env("STOCKROOM_PG_LOGICAL", if self.logical { "1" } else { "0" })
            .status()
            .expect("run scripts/postgres.sh");
        assert!(status.success(), "scripts/postgres.sh {action} failed");
    }

    pub fn dsn(&self, database: &str) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname={database}", self.port)
    }

    /// A new, empty database with a name no other run uses.
    pub async fn database(&self, prefix: &str) -> String {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let name = format!(
            "{prefix}_{}_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed),
            nanos % 1_000_000
        );
        let admin = self.connect("postgres").await;
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create database");
        name
    }

    pub async fn connect(&self, database: &str) -> Client {
        self.connect_retrying(database).await
    }

    /// Connects, retrying while the server (re)starts.
    pub async fn connect_retrying(&self, database: &str) -> Client {
        for _ in 0..300 {
            if let Ok((client, connection)) = tokio_postgres::connect(&self.dsn(database), NoTls).await {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                return client;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("postgres on port {} did not come back", self.port)
    }

    /// `kill -9` of the postmaster (its children end with it), then a start on the same data.
    pub fn kill_and_restart(&self) {
        let pid = std::fs::read_to_string(format!("{}/postmaster.pid", self.dir)).expect("postmaster.pid");
        let pid = pid.lines().next().expect("pid line").trim().to_owned();
        let _ = Command::new("kill").args(["-9", &pid]).status();
        // Until the old server's processes are gone, a start would find them.
        for _ in 0..100 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        self.script("start");
    }

    /// Drops the database's replication slots and the database (slots hold WAL).
    pub async fn drop_database(&self, database: &str) {
        let admin = self.connect("postgres").await;
        let _ = admin
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active",
                &[&database],
            )
            .await;
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).await;
    }
}

/// The SQL read model's row per SKU, in the catalog's shape (`name`, `price_cents`,
/// `version`, `status`, `stock.{on_hand,reserved,available}`, null where the `stock`
/// row is missing), with the sums of its stock movements (`movements.on_hand`,
/// `movements.reserved`), which equal the stock when every movement is there once.
pub async fn sql_model_rows(client: &Client) -> Result<BTreeMap<String, Value>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT p.sku, p.name, p.price_cents, p.version, p.status, s.on_hand, s.reserved, s.available,
                    (SELECT coalesce(sum(quantity) FILTER (WHERE type IN ('initial','received','adjusted','shipped')), 0)::bigint
                       FROM stockroom.stock_movements m WHERE m.sku = p.sku),
                    (SELECT coalesce(sum(quantity) FILTER (WHERE type IN ('reserved','released','shipped')), 0)::bigint
                       FROM stockroom.stock_movements m WHERE m.sku = p.sku)
             FROM stockroom.products p LEFT JOIN stockroom.stock s USING (sku)",
            &[],
        )
        .await?;
    let mut out = BTreeMap::new();
    for row in rows {
        let stock = |i: usize| row.get::<_, Option<i64>>(i);
        out.insert(
            row.get::<_, String>(0),
            json!({
                "name": row.get::<_, String>(1), "price_cents": row.get::<_, i64>(2),
                "version": row.get::<_, i64>(3), "status": row.get::<_, String>(4),
                "stock": {"on_hand": stock(5), "reserved": stock(6), "available": stock(7)},
                "movements": {"on_hand": row.get::<_, i64>(8), "reserved": row.get::<_, i64>(9)},
            }),
        );
    }
    Ok(out)
}

/// Waits until `server`'s SQL model and catalog have applied everything in the log
/// (lag 0, the model serving, not rebuilding); on timeout, `/admin/views` as last seen.
pub async fn sql_model_caught_up(server: &Server, timeout: Duration) -> Result<(), Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let views = server.get("/admin/views").await.body;
        let all = views["views"].as_array().cloned().unwrap_or_default();
        let named = |name: &str| all.iter().find(|v| v["name"] == name).cloned().unwrap_or(Value::Null);
        let (sql, catalog) = (named("sql"), named("catalog"));
        if sql["lag"] == 0 && catalog["lag"] == 0 && sql["state"] == "serving" {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(views);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
