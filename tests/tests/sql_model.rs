//! The SQL read model over a real PostgreSQL (API.md, "Databases"): after a run of
//! writes (and a `kill -9` of the node in the middle) its tables equal the catalog,
//! and a rebuild (`replay --view sql`) gives the same rows.

use std::time::{Duration, Instant};

use serde_json::json;
use stockroom_tests::postgres::{Postgres, sql_model_caught_up, sql_model_rows};
use stockroom_tests::{Server, data_dir};

const PG_PORT: u16 = 5561;

async fn start(dir: &std::path::Path, dsn: &str) -> Server {
    let s = Server::start(dir, &["--write-timeout", "20s", "--read-timeout", "20s", "--sql-model", dsn]).await;
    s.wait_ready().await;
    s
}

/// Every row of the model, in a stable order, as text.
async fn dump(pg: &Postgres, db: &str) -> Vec<String> {
    let c = pg.connect(db).await;
    let mut rows = Vec::new();
    for (table, order) in [("products", "sku"), ("stock", "sku"), ("stock_movements", "sku, version")] {
        for row in
            c.query(&format!("SELECT to_jsonb(t)::text FROM stockroom.{table} t ORDER BY {order}"), &[]).await.unwrap()
        {
            rows.push(format!("{table} {}", row.get::<_, String>(0)));
        }
    }
    rows
}

/// Waits until the model's positions cover the node's catalog position.
async fn caught_up(s: &Server) {
    if let Err(views) = sql_model_caught_up(s, Duration::from_secs(60)).await {
        panic!("the sql model never caught up: {views}");
    }
}

async fn writes(s: &Server, round: u32) {
    for i in 0..10 {
        let sku = format!("SKU-{i}");
        if round == 0 {
            s.post(
                "/products",
                json!({"sku": sku, "name": format!("Item {i}"), "price_cents": 100 + i, "initial_stock": 5}),
            )
            .await
            .expect(201);
        }
        s.post(&format!("/products/{sku}/stock/receipts"), json!({"quantity": 3 + i})).await.expect(200);
        let r = format!("r-{round}-{i}");
        s.post(&format!("/products/{sku}/reservations"), json!({"reservation_id": r, "quantity": 2})).await.expect(201);
        if i % 2 == 0 {
            s.post(&format!("/products/{sku}/reservations/{r}/confirm"), json!({})).await.expect(200);
        }
        s.request("PATCH", &format!("/products/{sku}"), Some(json!({"price_cents": 200 + i + round as i64})), &[])
            .await
            .expect(200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sql_model_equals_the_catalog_after_writes_and_a_crash_and_a_rebuild_gives_the_same_rows() {
    let pg = Postgres::start(PG_PORT);
    let db = pg.database("sql_model").await;
    let dsn = pg.dsn(&db);
    let dir = data_dir();
    let s = start(dir.path(), &dsn).await;
    writes(&s, 0).await;
    s.kill();
    let s = start(dir.path(), &dsn).await;
    writes(&s, 1).await;
    caught_up(&s).await;

    // Equal to the catalog, product by product.
    let c = pg.connect(&db).await;
    let rows = sql_model_rows(&c).await.unwrap();
    assert_eq!(rows.len(), 10, "{rows:?}");
    for i in 0..10 {
        let sku = format!("SKU-{i}");
        let p = s.get(&format!("/products/{sku}")).await.expect(200).body;
        let row = &rows[&sku];
        for field in ["name", "price_cents", "version", "status"] {
            assert_eq!(p[field], row[field], "{sku} {field}");
        }
        for field in ["on_hand", "reserved", "available"] {
            assert_eq!(p["stock"][field], row["stock"][field], "{sku} stock.{field}");
        }
        // Every stock-moving event once: the movements sum to on hand and reserved.
        assert_eq!(p["stock"]["on_hand"], row["movements"]["on_hand"], "{sku}");
        assert_eq!(p["stock"]["reserved"], row["movements"]["reserved"], "{sku}");
    }
    let positions: i64 = c.query_one("SELECT count(*) FROM stockroom.positions", &[]).await.unwrap().get(0);
    assert!(positions > 0, "no positions recorded with the rows");

    // A rebuild into new tables, swapped in: the same rows.
    let before = dump(&pg, &db).await;
    assert!(before.len() > 30, "{before:?}");
    s.post("/admin/replay", json!({"view": "sql"})).await.expect(202);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let views = s.get("/admin/views").await.body;
        let sql = views["views"].as_array().unwrap().iter().find(|v| v["name"] == "sql").cloned().unwrap();
        if sql["rebuild"]["state"] == "done" {
            break;
        }
        assert!(Instant::now() < deadline, "the rebuild never finished: {views}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    caught_up(&s).await;
    assert_eq!(dump(&pg, &db).await, before, "the rebuilt model differs");
    s.stop().await;
    pg.drop_database(&db).await;
}
