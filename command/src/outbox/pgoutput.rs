//! A decoder for the messages of PostgreSQL's `pgoutput` logical decoding plugin,
//! protocol version 1 (PostgreSQL's docs, "Logical Replication Message Formats"):
//! only what the outbox needs — `Begin`, `Relation`, `Insert` and `Commit` — is read
//! in full; every other message is recognised by its tag and passed over.
//!
//! Input is bytes from the database: the decoder is total. Truncated or unknown
//! input is an error value, never a panic (a proptest feeds it arbitrary bytes).

use std::collections::HashMap;

/// A log sequence number: a byte position in PostgreSQL's write-ahead log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lsn(pub u64);

impl Lsn {
    /// PostgreSQL's text form, `16/B374D848`.
    pub fn parse(text: &str) -> Option<Lsn> {
        let (hi, lo) = text.split_once('/')?;
        Some(Lsn((u64::from(u32::from_str_radix(hi, 16).ok()?) << 32) | u64::from(u32::from_str_radix(lo, 16).ok()?)))
    }
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// A table as a `Relation` message describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    pub namespace: String,
    pub name: String,
    pub columns: Vec<String>,
}

/// One column's value in a tuple (text format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    /// An unchanged TOASTed value (only in updates).
    Unchanged,
    Text(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Begin {
        final_lsn: Lsn,
        commit_ts_us: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: Lsn,
        end_lsn: Lsn,
    },
    Relation(Relation),
    Insert {
        relation: u32,
        values: Vec<Value>,
    },
    /// Update, Delete, Truncate, Type, Origin, Message...: not the outbox's business.
    Other(u8),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message truncated")]
    Truncated,
    #[error("empty message")]
    Empty,
    #[error("unknown message tag {0:#04x}")]
    UnknownTag(u8),
    #[error("unknown tuple column kind {0:#04x}")]
    UnknownColumnKind(u8),
    #[error("text is not UTF-8")]
    NotUtf8,
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let hi = self.u32()?;
        let lo = self.u32()?;
        Ok((u64::from(hi) << 32) | u64::from(lo))
    }
    /// A NUL-terminated string.
    fn cstr(&mut self) -> Result<String, DecodeError> {
        let end = self.bytes.iter().position(|&b| b == 0).ok_or(DecodeError::Truncated)?;
        let s = std::str::from_utf8(&self.bytes[..end]).map_err(|_| DecodeError::NotUtf8)?.to_owned();
        self.bytes = &self.bytes[end + 1..];
        Ok(s)
    }
}

/// Decodes one message (one row of `pg_logical_slot_peek_binary_changes`).
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader { bytes };
    let tag = r.u8().map_err(|_| DecodeError::Empty)?;
    match tag {
        b'B' => {
            let final_lsn = Lsn(r.u64()?);
            let commit_ts_us = r.u64()? as i64;
            let xid = r.u32()?;
            Ok(Message::Begin { final_lsn, commit_ts_us, xid })
        }
        b'C' => {
            let _flags = r.u8()?;
            let commit_lsn = Lsn(r.u64()?);
            let end_lsn = Lsn(r.u64()?);
            let _commit_ts = r.u64()?;
            Ok(Message::Commit { commit_lsn, end_lsn })
        }
        b'R' => {
            let id = r.u32()?;
            let namespace = r.cstr()?;
            let name = r.cstr()?;
            let _replica_identity = r.u8()?;
            let n = r.u16()?;
            let mut columns = Vec::with_capacity(usize::from(n).min(1600));
            for _ in 0..n {
                let _flags = r.u8()?;
                columns.push(r.cstr()?);
                let _type_oid = r.u32()?;
                let _type_modifier = r.u32()?;
            }
            Ok(Message::Relation(Relation { id, namespace, name, columns }))
        }
        b'I' => {
            let relation = r.u32()?;
            match r.u8()? {
                b'N' => Ok(Message::Insert { relation, values: tuple(&mut r)? }),
                other => Err(DecodeError::UnknownColumnKind(other)),
            }
        }
        b'U' | b'D' | b'T' | b'Y' | b'O' | b'M' => Ok(Message::Other(tag)),
        other => Err(DecodeError::UnknownTag(other)),
    }
}

fn tuple(r: &mut Reader<'_>) -> Result<Vec<Value>, DecodeError> {
    let n = r.u16()?;
    let mut values = Vec::with_capacity(usize::from(n).min(1600));
    for _ in 0..n {
        values.push(match r.u8()? {
            b'n' => Value::Null,
            b'u' => Value::Unchanged,
            b't' => {
                let len = r.u32()? as usize;
                let text = std::str::from_utf8(r.take(len)?).map_err(|_| DecodeError::NotUtf8)?;
                Value::Text(text.to_owned())
            }
            other => return Err(DecodeError::UnknownColumnKind(other)),
        });
    }
    Ok(values)
}

/// An inserted row, by column name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub columns: HashMap<String, Value>,
}

impl Row {
    pub fn text(&self, column: &str) -> Option<&str> {
        match self.columns.get(column) {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        }
    }
}

/// Pairs an insert's values with its relation's column names.
pub fn row(relation: &Relation, values: Vec<Value>) -> Row {
    Row { columns: relation.columns.iter().cloned().zip(values).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn relation_bytes() -> Vec<u8> {
        let mut b = vec![b'R'];
        b.extend(16385u32.to_be_bytes());
        b.extend(b"public\0outbox\0");
        b.push(b'd');
        b.extend(2u16.to_be_bytes());
        for (name, oid) in [("id", 20u32), ("payload", 3802)] {
            b.push(1);
            b.extend(name.as_bytes());
            b.push(0);
            b.extend(oid.to_be_bytes());
            b.extend((-1i32).to_be_bytes());
        }
        b
    }

    fn insert_bytes() -> Vec<u8> {
        let mut b = vec![b'I'];
        b.extend(16385u32.to_be_bytes());
        b.push(b'N');
        b.extend(2u16.to_be_bytes());
        b.push(b't');
        b.extend(2u32.to_be_bytes());
        b.extend(b"42");
        b.push(b'n');
        b
    }

    #[test]
    fn decodes_relation_insert_begin_and_commit() {
        let Message::Relation(rel) = decode(&relation_bytes()).unwrap() else { panic!("not a relation") };
        assert_eq!(rel.name, "outbox");
        assert_eq!(rel.namespace, "public");
        assert_eq!(rel.columns, vec!["id".to_owned(), "payload".to_owned()]);
        let Message::Insert { relation, values } = decode(&insert_bytes()).unwrap() else { panic!("not an insert") };
        assert_eq!(relation, 16385);
        let row = row(&rel, values);
        assert_eq!(row.text("id"), Some("42"));
        assert_eq!(row.columns.get("payload"), Some(&Value::Null));

        let mut begin = vec![b'B'];
        begin.extend(0x1_0000_0010u64.to_be_bytes());
        begin.extend(7u64.to_be_bytes());
        begin.extend(99u32.to_be_bytes());
        assert_eq!(decode(&begin).unwrap(), Message::Begin { final_lsn: Lsn(0x1_0000_0010), commit_ts_us: 7, xid: 99 });
        let mut commit = vec![b'C', 0];
        commit.extend(5u64.to_be_bytes());
        commit.extend(9u64.to_be_bytes());
        commit.extend(1u64.to_be_bytes());
        assert_eq!(decode(&commit).unwrap(), Message::Commit { commit_lsn: Lsn(5), end_lsn: Lsn(9) });
    }

    #[test]
    fn truncated_and_unknown_input_are_errors() {
        let insert = insert_bytes();
        for n in 0..insert.len() {
            assert!(decode(&insert[..n]).is_err(), "a prefix of {n} bytes decoded");
        }
        assert_eq!(decode(b"Z"), Err(DecodeError::UnknownTag(b'Z')));
        assert_eq!(decode(b""), Err(DecodeError::Empty));
    }

    #[test]
    fn lsn_text_round_trips() {
        let lsn = Lsn::parse("16/B374D848").unwrap();
        assert_eq!(lsn, Lsn(0x16_B374_D848));
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!(Lsn::parse("nonsense"), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn arbitrary_tails_of_known_tags_never_panic(tag in prop::sample::select(vec![b'B', b'C', b'R', b'I']),
                                                     tail in proptest::collection::vec(any::<u8>(), 0..128)) {
            let mut bytes = vec![tag];
            bytes.extend(tail);
            let _ = decode(&bytes);
        }
    }
}
