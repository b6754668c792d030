//! A PostgreSQL server of the tests' own (never the benchmark's): Debian's packages,
//! installed and started by `scripts/postgres.sh` on its own port and data directory,
//! with `wal_level=logical` for the outbox connector's slots. Each test makes a
//! database of its own, so tests share the server but nothing in it.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::{Client, NoTls};

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
