//! Reading a feed body into mapped rows: a JSON array (or an object whose
//! `products` is one), JSON lines, or CSV with a header row. Each row's fields are
//! taken by the source's mapping (dot paths into JSON, CSV column names) as text.

use std::collections::BTreeMap;

use serde_json::Value;
use stockroom_domain::ingest::FeedRow;

use super::sources::SourceDef;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
    Csv,
}

impl Format {
    /// The format of a `Content-Type`, or `None` (415).
    pub fn of_content_type(ct: &str) -> Option<Format> {
        let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(Format::Json),
            "application/x-ndjson" | "application/jsonl" | "application/json-lines" => Some(Format::Ndjson),
            "text/csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// A feed that cannot be read: 400 with this reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// One row as read: its mapped fields, or why it cannot be mapped (a rejection).
pub type Mapped = Result<FeedRow, String>;

/// Every row of `body`, mapped by `def`.
pub fn read(body: &[u8], format: Format, def: &SourceDef) -> Result<Vec<Mapped>, Unreadable> {
    match format {
        Format::Json => {
            let value: Value =
                serde_json::from_slice(body).map_err(|e| Unreadable(format!("the JSON feed is unreadable: {e}")))?;
            let rows = match value {
                Value::Array(rows) => rows,
                Value::Object(mut o) => match o.remove("products") {
                    Some(Value::Array(rows)) => rows,
                    _ => {
                        return Err(Unreadable("a JSON feed is an array, or an object whose `products` is one".into()));
                    }
                },
                _ => return Err(Unreadable("a JSON feed is an array, or an object whose `products` is one".into())),
            };
            Ok(rows.iter().map(|r| map_json(r, def)).collect())
        }
        Format::Ndjson => {
            let text = std::str::from_utf8(body).map_err(|_| Unreadable("the feed is not UTF-8".into()))?;
            Ok(text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| match serde_json::from_str::<Value>(l) {
                    Ok(v) => map_json(&v, def),
                    Err(e) => Err(format!("row: not a JSON object: {e}")),
                })
                .collect())
        }
        Format::Csv => {
            let text = std::str::from_utf8(body).map_err(|_| Unreadable("the CSV feed is not UTF-8".into()))?;
            let mut records = csv_records(text)?.into_iter();
            let header = records.next().ok_or_else(|| Unreadable("the CSV feed has no header row".into()))?;
            let header: Vec<String> = header.iter().map(|h| h.trim().to_owned()).collect();
            let required = [def.fields.get("source_id"), def.fields.get("name"), def.fields.get("price")];
            for column in required.into_iter().flatten() {
                if !header.contains(column) {
                    return Err(Unreadable(format!("the CSV header has no column {column:?}")));
                }
            }
            Ok(records
                .filter(|r| !(r.len() == 1 && r[0].trim().is_empty()))
                .map(|r| {
                    if r.len() != header.len() {
                        return Err(format!("row: has {} cells, the header has {}", r.len(), header.len()));
                    }
                    let cells: BTreeMap<&str, &str> =
                        header.iter().map(String::as_str).zip(r.iter().map(String::as_str)).collect();
                    map_with(def, |path| cells.get(path).map(|v| v.to_string()))
                })
                .collect())
        }
    }
}

fn map_json(row: &Value, def: &SourceDef) -> Mapped {
    if !row.is_object() {
        return Err("row: not a JSON object".into());
    }
    map_with(def, |path| {
        let mut v = row;
        for part in path.split('.') {
            v = v.get(part)?;
        }
        match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => Some(other.to_string()),
        }
    })
}

fn map_with(def: &SourceDef, get: impl Fn(&str) -> Option<String>) -> Mapped {
    let mut fields = BTreeMap::new();
    for (field, path) in &def.fields {
        if let Some(v) = get(path) {
            fields.insert(field.clone(), v);
        }
    }
    let source_id = fields.remove("source_id").map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let Some(source_id) = source_id else { return Err("source_id: is missing".into()) };
    let attributes = def.attributes.iter().filter_map(|(name, path)| get(path).map(|v| (name.clone(), v))).collect();
    Ok(FeedRow { source_id, fields, attributes })
}

/// RFC 4180 records: quoted cells may hold commas, quotes (`""`) and newlines.
fn csv_records(text: &str) -> Result<Vec<Vec<String>>, Unreadable> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut cell = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut line = 1;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    cell.push(c)
                }
                _ => cell.push(c),
            }
            continue;
        }
        match c {
            '"' if cell.is_empty() => quoted = true,
            '"' => return Err(Unreadable(format!("the CSV feed is unreadable: a stray quote on line {line}"))),
            ',' => record.push(std::mem::take(&mut cell)),
            '\r' => {}
            '\n' => {
                line += 1;
                record.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut record));
            }
            _ => cell.push(c),
        }
    }
    if quoted {
        return Err(Unreadable("the CSV feed is unreadable: a quoted cell is never closed".into()));
    }
    if !cell.is_empty() || !record.is_empty() {
        record.push(cell);
        records.push(record);
    }
    Ok(records)
}
