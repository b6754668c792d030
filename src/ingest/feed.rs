//! Reading a feed body into mapped rows: a JSON array (or an object whose
//! `products` is one), JSON lines, or CSV with a header row. Each row's fields are
//! taken by the source's mapping (dot paths into JSON, CSV column names) as text.

use std::collections::BTreeMap;
use std::fmt;
use std::iter::Peekable;
use std::str::Chars;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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
            let mut de = serde_json::Deserializer::from_slice(body);
            let rows = JsonFeed { def, top: true }
                .deserialize(&mut de)
                .and_then(|rows| de.end().map(|()| rows))
                .map_err(|e| Unreadable(format!("the JSON feed is unreadable: {e}")))?;
            rows.ok_or_else(|| Unreadable("a JSON feed is an array, or an object whose `products` is one".into()))
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
            let mut records = CsvRecords::new(text);
            let header = records.next().ok_or_else(|| Unreadable("the CSV feed has no header row".into()))??;
            let header: Vec<String> = header.iter().map(|h| h.trim().to_owned()).collect();
            let required = [def.fields.get("source_id"), def.fields.get("name"), def.fields.get("price")];
            if let Some(column) = required.into_iter().flatten().find(|c| !header.contains(c)) {
                // A broken quote anywhere is still the reason given first, as when every
                // record was read before the header was looked at.
                if let Some(Err(broken)) = records.find(Result::is_err) {
                    return Err(broken);
                }
                return Err(Unreadable(format!("the CSV header has no column {column:?}")));
            }
            let mut rows = Vec::new();
            for r in records {
                let r = r?;
                if r.len() == 1 && r[0].trim().is_empty() {
                    continue;
                }
                if r.len() != header.len() {
                    rows.push(Err(format!("row: has {} cells, the header has {}", r.len(), header.len())));
                    continue;
                }
                let cells: BTreeMap<&str, &str> =
                    header.iter().map(String::as_str).zip(r.iter().map(String::as_str)).collect();
                rows.push(map_with(def, |path| cells.get(path).map(|v| v.to_string())));
            }
            Ok(rows)
        }
    }
}

/// A JSON feed visited as it is parsed: the rows of its array (top level, or the
/// last `products` of a top-level object) are each built as one small tree, mapped
/// and dropped, so the whole document is never held as a tree next to its body.
/// `None` when the document is not of a feed's shape.
struct JsonFeed<'a> {
    def: &'a SourceDef,
    /// At the top level an object is looked into for `products`; inside it, not.
    top: bool,
}

impl<'de> DeserializeSeed<'de> for JsonFeed<'_> {
    type Value = Option<Vec<Mapped>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonFeed<'_> {
    type Value = Option<Vec<Mapped>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON feed")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(row) = seq.next_element::<Value>()? {
            rows.push(map_json(&row, self.def));
        }
        Ok(Some(rows))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // A repeated `products` replaces the earlier one, as it would in a parsed object.
        let mut products = None;
        while let Some(key) = map.next_key::<String>()? {
            if self.top && key == "products" {
                products = Some(map.next_value_seed(JsonFeed { def: self.def, top: false })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(products.flatten())
    }

    // Any other value is not a feed: the caller says so in its own words.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
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

/// RFC 4180 records, one at a time: quoted cells may hold commas, quotes (`""`) and
/// newlines. Read as the rows are mapped, so a feed's records are never all held at once.
struct CsvRecords<'a> {
    chars: Peekable<Chars<'a>>,
    line: usize,
    /// After an error nothing more is read.
    done: bool,
}

impl<'a> CsvRecords<'a> {
    fn new(text: &'a str) -> Self {
        CsvRecords { chars: text.chars().peekable(), line: 1, done: false }
    }

    fn record(&mut self) -> Option<Result<Vec<String>, Unreadable>> {
        let mut record = Vec::new();
        let mut cell = String::new();
        let mut quoted = false;
        while let Some(c) = self.chars.next() {
            if quoted {
                match c {
                    '"' if self.chars.peek() == Some(&'"') => {
                        self.chars.next();
                        cell.push('"');
                    }
                    '"' => quoted = false,
                    '\n' => {
                        self.line += 1;
                        cell.push(c)
                    }
                    _ => cell.push(c),
                }
                continue;
            }
            match c {
                '"' if cell.is_empty() => quoted = true,
                '"' => {
                    let line = self.line;
                    return Some(Err(Unreadable(format!("the CSV feed is unreadable: a stray quote on line {line}"))));
                }
                ',' => record.push(std::mem::take(&mut cell)),
                '\r' => {}
                '\n' => {
                    self.line += 1;
                    record.push(cell);
                    return Some(Ok(record));
                }
                _ => cell.push(c),
            }
        }
        if quoted {
            return Some(Err(Unreadable("the CSV feed is unreadable: a quoted cell is never closed".into())));
        }
        if !cell.is_empty() || !record.is_empty() {
            record.push(cell);
            return Some(Ok(record));
        }
        None
    }
}

impl Iterator for CsvRecords<'_> {
    type Item = Result<Vec<String>, Unreadable>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let record = self.record();
        self.done = !matches!(record, Some(Ok(_)));
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `source_id`, `name` and `price` from `id`, `title` and `price`, a brand two levels
    /// down, and a `color` attribute.
    fn def() -> SourceDef {
        let fields = [("source_id", "id"), ("name", "title"), ("price", "price"), ("brand", "meta.brand")];
        SourceDef {
            priority: 0,
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            attributes: [("color".to_owned(), "color".to_owned())].into(),
            price_unit: Default::default(),
            currency: Default::default(),
            category_map: BTreeMap::new(),
        }
    }

    fn row(source_id: &str, fields: &[(&str, &str)], attributes: &[(&str, &str)]) -> Mapped {
        let text = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Ok(FeedRow { source_id: source_id.into(), fields: text(fields), attributes: text(attributes) })
    }

    fn read_ok(body: &str, format: Format) -> Vec<Mapped> {
        read(body.as_bytes(), format, &def()).expect("a readable feed")
    }

    fn unreadable(body: &str, format: Format) -> String {
        read(body.as_bytes(), format, &def()).expect_err("an unreadable feed").0
    }

    const SHAPE: &str = "a JSON feed is an array, or an object whose `products` is one";

    #[test]
    fn a_json_array_maps_each_row() {
        let rows = read_ok(
            r#"[{"id": 1, "title": "A", "price": 9.5, "meta": {"brand": "X"}, "color": "red"},
                {"id": " b ", "title": "B", "price": "3", "meta": null, "extra": [1, 2]}]"#,
            Format::Json,
        );
        assert_eq!(
            rows,
            vec![
                row("1", &[("name", "A"), ("price", "9.5"), ("brand", "X")], &[("color", "red")]),
                row("b", &[("name", "B"), ("price", "3")], &[]),
            ]
        );
    }

    #[test]
    fn a_json_object_is_read_for_its_products_alone() {
        let rows = read_ok(
            r#"{"total": 2, "meta": {"products": [{"id": "nested"}]}, "skip": [1, {"a": []}],
                "products": [{"id": "a", "title": "A", "price": 1}, {"id": "b", "title": "B", "price": 2}],
                "limit": 30, "more": {"products": "no"}}"#,
            Format::Json,
        );
        assert_eq!(
            rows,
            vec![row("a", &[("name", "A"), ("price", "1")], &[]), row("b", &[("name", "B"), ("price", "2")], &[])]
        );
        // As with a parsed object, the last `products` is the one read.
        let rows = read_ok(r#"{"products": [{"id": "a"}], "products": [{"id": "b"}]}"#, Format::Json);
        assert_eq!(rows, vec![row("b", &[], &[])]);
        assert_eq!(unreadable(r#"{"products": [{"id": "a"}], "products": 1}"#, Format::Json), SHAPE);
    }

    #[test]
    fn json_elements_that_are_not_objects_are_rejected_rows() {
        let rows = read_ok(r#"[1, "x", null, [], true, {"id": "a"}, {"title": "no id"}, {"id": "  "}]"#, Format::Json);
        let not_object = || Err("row: not a JSON object".to_owned());
        let missing = || Err("source_id: is missing".to_owned());
        assert_eq!(
            rows,
            vec![
                not_object(),
                not_object(),
                not_object(),
                not_object(),
                not_object(),
                row("a", &[], &[]),
                missing(),
                missing()
            ]
        );
    }

    #[test]
    fn a_json_feed_of_another_shape_or_broken_is_unreadable() {
        for body in ["5", "-1.5", r#""x""#, "null", "true", "{}", r#"{"total": 1}"#, r#"{"products": {"id": 1}}"#] {
            assert_eq!(unreadable(body, Format::Json), SHAPE, "{body}");
        }
        assert_eq!(
            unreadable(r#"[{"id": 1},"#, Format::Json),
            "the JSON feed is unreadable: EOF while parsing a value at line 1 column 11"
        );
        assert_eq!(
            unreadable(r#"{"products": [], "x": tru}"#, Format::Json),
            "the JSON feed is unreadable: expected ident at line 1 column 26"
        );
        assert_eq!(
            unreadable("[] x", Format::Json),
            "the JSON feed is unreadable: trailing characters at line 1 column 4"
        );
        assert_eq!(
            unreadable("5 x", Format::Json),
            "the JSON feed is unreadable: trailing characters at line 1 column 3"
        );
    }

    #[test]
    fn an_empty_body() {
        assert_eq!(
            unreadable("", Format::Json),
            "the JSON feed is unreadable: EOF while parsing a value at line 1 column 0"
        );
        assert_eq!(unreadable("", Format::Csv), "the CSV feed has no header row");
        assert_eq!(read_ok("", Format::Ndjson), vec![]);
        assert_eq!(read_ok("[]", Format::Json), vec![]);
        assert_eq!(read_ok(r#"{"products": []}"#, Format::Json), vec![]);
        assert_eq!(read_ok("id,title,price\n", Format::Csv), vec![]);
    }

    #[test]
    fn json_lines_are_read_one_by_one() {
        let rows = read_ok("{\"id\": \"a\", \"title\": \"A\"}\n\n  \n[1]\n{\"id\": 2}\n{oops\n", Format::Ndjson);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0], row("a", &[("name", "A")], &[]));
        assert_eq!(rows[1], Err("row: not a JSON object".to_owned()));
        assert_eq!(rows[2], row("2", &[], &[]));
        assert!(matches!(&rows[3], Err(e) if e.starts_with("row: not a JSON object: ")), "{:?}", rows[3]);
    }

    #[test]
    fn csv_quoted_cells_hold_commas_quotes_and_newlines() {
        let rows = read_ok(
            "id, title ,price,meta.brand,color\r\n\
             1,\"Widget, large\",9.99,\"the \"\"best\"\"\",\"dark\nred\"\r\n\
             \n\
             2,Plain,1,,\n\
             \"3\",\"\",2,B,x",
            Format::Csv,
        );
        assert_eq!(
            rows,
            vec![
                row(
                    "1",
                    &[("name", "Widget, large"), ("price", "9.99"), ("brand", "the \"best\"")],
                    &[("color", "dark\nred")]
                ),
                row("2", &[("name", "Plain"), ("price", "1"), ("brand", "")], &[("color", "")]),
                row("3", &[("name", ""), ("price", "2"), ("brand", "B")], &[("color", "x")]),
            ]
        );
    }

    #[test]
    fn a_ragged_csv_row_is_rejected_alone() {
        let rows = read_ok("id,title,price\na,A,1\nb,B\nc,C,3,extra\nd,D,4\n", Format::Csv);
        assert_eq!(
            rows,
            vec![
                row("a", &[("name", "A"), ("price", "1")], &[]),
                Err("row: has 2 cells, the header has 3".to_owned()),
                Err("row: has 4 cells, the header has 3".to_owned()),
                row("d", &[("name", "D"), ("price", "4")], &[]),
            ]
        );
    }

    #[test]
    fn a_broken_csv_is_unreadable() {
        assert_eq!(
            unreadable("id,title,price\na,A,1\n\"b\nb\",B,2\nc,C\"x,3\nd,D,4\n", Format::Csv),
            "the CSV feed is unreadable: a stray quote on line 5"
        );
        assert_eq!(
            unreadable("id,title,price\na,\"A,1\nb,B,2\n", Format::Csv),
            "the CSV feed is unreadable: a quoted cell is never closed"
        );
        assert_eq!(unreadable("id,title\na,A\n", Format::Csv), "the CSV header has no column \"price\"");
        // A broken quote anywhere in the feed is its reason, even when the header is short a column too.
        assert_eq!(
            unreadable("id,title\na,A\nb,B\"\n", Format::Csv),
            "the CSV feed is unreadable: a stray quote on line 3"
        );
        assert_eq!(
            unreadable("id,title\na,\"A\n", Format::Csv),
            "the CSV feed is unreadable: a quoted cell is never closed"
        );
        assert_eq!(
            read(b"id,title,price\n\xff,A,1\n", Format::Csv, &def()).expect_err("not UTF-8").0,
            "the CSV feed is not UTF-8"
        );
    }

    /// A large feed is read whole, row by row (the streaming itself is not observable
    /// here; its outcome is).
    #[test]
    fn a_large_feed_is_read_to_its_last_row() {
        const N: usize = 200_000;
        let mut json = String::from("{\"total\": 200000, \"products\": [");
        let mut csv = String::from("id,title,price\n");
        for i in 0..N {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&format!("{{\"id\": {i}, \"title\": \"P{i}\", \"price\": {i}.5}}"));
            csv.push_str(&format!("{i},P{i},{i}.5\n"));
        }
        json.push_str("], \"limit\": 0}");
        for rows in [read_ok(&json, Format::Json), read_ok(&csv, Format::Csv)] {
            assert_eq!(rows.len(), N);
            assert!(rows.iter().all(Result::is_ok));
            assert_eq!(rows[N - 1], row("199999", &[("name", "P199999"), ("price", "199999.5")], &[]));
        }
    }
}
