//! What an outbox row asks for (API.md, "Databases"): each `type` is one write of the
//! command API, its payload that write's body (and path). The mapping is a table;
//! a row that fits none of it is a dead letter with the reason.
//!
//! | `type`            | payload                               | write                                    |
//! |-------------------|---------------------------------------|------------------------------------------|
//! | `order.placed`    | `{order_id, lines: [{sku, quantity}]}`| `POST /orders`                           |
//! | `order.confirmed` | `{order_id}`                          | `POST /orders/{order_id}/confirm`        |
//! | `order.cancelled` | `{order_id}`                          | `POST /orders/{order_id}/cancel`         |
//! | `stock.received`  | `{sku, quantity, reference?}`         | `POST /products/{sku}/stock/receipts`    |
//! | `stock.adjusted`  | `{sku, delta, reason}`                | `POST /products/{sku}/stock/adjustments` |
//! | `product.updated` | `{sku, ...fields of the PATCH}`       | `PATCH /products/{sku}`                  |
//!
//! Path segments are checked here only for being strings; the API validates them
//! (and the bodies) exactly as it validates a client's request.

use serde_json::{Map, Value};

/// A committed outbox row, as decoded from the replication stream.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub payload: String,
}

/// The write an outbox row becomes.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    pub method: &'static str,
    pub path: String,
    pub body: Value,
    /// What orders this row among its neighbours: rows of one aggregate are sent in
    /// commit order, rows of different aggregates may go concurrently.
    pub aggregate: String,
}

impl OutboxRow {
    /// The idempotency key of the row's command (API.md).
    pub fn idempotency_key(&self) -> String {
        format!("outbox-{}", self.id)
    }

    /// The write this row asks for, or why it cannot be one.
    pub fn write(&self) -> Result<Write, String> {
        let payload: Value =
            serde_json::from_str(&self.payload).map_err(|e| format!("the payload is not JSON: {e}"))?;
        let Value::Object(mut body) = payload else {
            return Err("the payload is not a JSON object".into());
        };
        let segment = |body: &mut Map<String, Value>, field: &str| -> Result<String, String> {
            match body.remove(field) {
                Some(Value::String(s))
                    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b)) =>
                {
                    Ok(s)
                }
                Some(Value::String(s)) => Err(format!("{field} {s:?} is not 1-64 of [A-Za-z0-9._-]")),
                Some(_) => Err(format!("{field} must be a string")),
                None => Err(format!("the payload has no {field}")),
            }
        };
        let (method, path, aggregate, body) = match self.kind.as_str() {
            "order.placed" => {
                let order_id = match body.get("order_id") {
                    Some(Value::String(s)) => s.clone(),
                    _ => return Err("the payload has no order_id string".into()),
                };
                ("POST", "/orders".to_owned(), format!("order:{order_id}"), Value::Object(body))
            }
            "order.confirmed" | "order.cancelled" => {
                let order_id = segment(&mut body, "order_id")?;
                if !body.is_empty() {
                    return Err(format!("unexpected fields in the payload: {}", keys(&body)));
                }
                let step = if self.kind == "order.confirmed" { "confirm" } else { "cancel" };
                ("POST", format!("/orders/{order_id}/{step}"), format!("order:{order_id}"), Value::Object(Map::new()))
            }
            "stock.received" | "stock.adjusted" | "product.updated" => {
                let sku = segment(&mut body, "sku")?;
                let (method, path) = match self.kind.as_str() {
                    "stock.received" => ("POST", format!("/products/{sku}/stock/receipts")),
                    "stock.adjusted" => ("POST", format!("/products/{sku}/stock/adjustments")),
                    _ => ("PATCH", format!("/products/{sku}")),
                };
                (method, path, format!("product:{sku}"), Value::Object(body))
            }
            other => return Err(format!("unknown outbox type {other:?}")),
        };
        Ok(Write { method, path, body, aggregate })
    }
}

fn keys(body: &Map<String, Value>) -> String {
    body.keys().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(kind: &str, payload: &str) -> OutboxRow {
        OutboxRow { id: 7, kind: kind.into(), payload: payload.into() }
    }

    #[test]
    fn every_type_becomes_its_write() {
        let w = row("order.placed", r#"{"order_id":"o-1","lines":[{"sku":"A","quantity":2}]}"#).write().unwrap();
        assert_eq!((w.method, w.path.as_str()), ("POST", "/orders"));
        assert_eq!(w.body, json!({"order_id":"o-1","lines":[{"sku":"A","quantity":2}]}));
        let w = row("order.confirmed", r#"{"order_id":"o-1"}"#).write().unwrap();
        assert_eq!((w.method, w.path.as_str(), w.aggregate.as_str()), ("POST", "/orders/o-1/confirm", "order:o-1"));
        let w = row("order.cancelled", r#"{"order_id":"o-1"}"#).write().unwrap();
        assert_eq!(w.path, "/orders/o-1/cancel");
        let w = row("stock.received", r#"{"sku":"A-1","quantity":5,"reference":"PO"}"#).write().unwrap();
        assert_eq!(
            (w.path.as_str(), &w.body),
            ("/products/A-1/stock/receipts", &json!({"quantity":5,"reference":"PO"}))
        );
        let w = row("stock.adjusted", r#"{"sku":"A-1","delta":-2,"reason":"broken"}"#).write().unwrap();
        assert_eq!(w.path, "/products/A-1/stock/adjustments");
        let w = row("product.updated", r#"{"sku":"A-1","price_cents":10}"#).write().unwrap();
        assert_eq!((w.method, w.path.as_str(), &w.body), ("PATCH", "/products/A-1", &json!({"price_cents":10})));
        assert_eq!(row("x", "{}").idempotency_key(), "outbox-7");
    }

    #[test]
    fn rows_that_do_not_fit_say_why() {
        for (kind, payload, reason) in [
            ("order.shipped", "{}", "unknown outbox type"),
            ("stock.received", "not json", "not JSON"),
            ("stock.received", "[1]", "not a JSON object"),
            ("stock.received", r#"{"quantity":1}"#, "no sku"),
            ("stock.received", r#"{"sku":"a/b","quantity":1}"#, "is not 1-64"),
            ("stock.received", r#"{"sku":5}"#, "must be a string"),
            ("order.confirmed", r#"{"order_id":"o","x":1}"#, "unexpected fields"),
            ("order.placed", r#"{"lines":[]}"#, "no order_id"),
        ] {
            let err = row(kind, payload).write().unwrap_err();
            assert!(err.contains(reason), "{kind} {payload}: {err}");
        }
    }
}
