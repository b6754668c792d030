//! How the embedded log stores a record in sled: a small length-prefixed binary
//! form. Decoding checks every length, so garbage is an error, never a panic.

use crate::record::{Headers, Record};

const FORMAT: u8 = 1;

pub fn encode(record: &Record) -> Vec<u8> {
    let headers_len: usize = record.headers.iter().map(|(n, v)| 6 + n.len() + v.len()).sum();
    let key_len = record.key.as_ref().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(16 + key_len + headers_len + record.payload.len());
    out.push(FORMAT);
    out.extend_from_slice(&record.timestamp_ms.to_be_bytes());
    match &record.key {
        None => out.push(0),
        Some(k) => {
            out.push(1);
            out.extend_from_slice(&(k.len() as u32).to_be_bytes());
            out.extend_from_slice(k);
        }
    }
    out.extend_from_slice(&(record.headers.len() as u16).to_be_bytes());
    for (name, value) in record.headers.iter() {
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }
    out.extend_from_slice(&record.payload);
    out
}

struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err(format!("truncated: wanted {n} bytes, {} left", self.bytes.len()));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

pub fn decode(bytes: &[u8]) -> Result<Record, String> {
    let mut c = Cursor { bytes };
    let [format] = c.array::<1>()?;
    if format != FORMAT {
        return Err(format!("unknown record format {format}"));
    }
    let timestamp_ms = i64::from_be_bytes(c.array()?);
    let key = match c.array::<1>()? {
        [0] => None,
        [1] => {
            let n = u32::from_be_bytes(c.array()?) as usize;
            Some(c.take(n)?.to_vec())
        }
        [other] => return Err(format!("bad key flag {other}")),
    };
    let count = u16::from_be_bytes(c.array()?);
    let mut headers = Headers::new();
    for _ in 0..count {
        let n = u16::from_be_bytes(c.array()?) as usize;
        let name = std::str::from_utf8(c.take(n)?).map_err(|_| "header name is not UTF-8".to_owned())?.to_owned();
        let n = u32::from_be_bytes(c.array()?) as usize;
        headers.push(name, c.take(n)?.to_vec());
    }
    Ok(Record { key, headers, payload: c.bytes.to_vec(), timestamp_ms })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn record() -> impl Strategy<Value = Record> {
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::collection::vec(("[a-z_-]{0,12}", proptest::collection::vec(any::<u8>(), 0..20)), 0..6),
            proptest::collection::vec(any::<u8>(), 0..200),
            any::<i64>(),
        )
            .prop_map(|(key, headers, payload, timestamp_ms)| Record {
                key,
                headers: headers.into_iter().collect(),
                payload,
                timestamp_ms,
            })
    }

    proptest! {
        #[test]
        fn round_trips(r in record()) {
            prop_assert_eq!(decode(&encode(&r)).unwrap(), r);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn truncation_is_an_error_or_a_shorter_payload(r in record(), cut in 0usize..300) {
            let bytes = encode(&r);
            let cut = cut.min(bytes.len());
            if let Ok(d) = decode(&bytes[..cut]) {
                // Only the payload (the tail) can be cut without breaking a length.
                prop_assert_eq!(d.headers, r.headers);
            }
        }
    }
}
