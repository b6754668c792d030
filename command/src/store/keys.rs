//! Key layout of a partition tree (see the table in `store/mod.rs`).

use stockroom_domain::{CommandId, OrderId, Sku, Timestamp};

pub const META: &[u8] = b"m";
pub const PRODUCT: u8 = b'p';
pub const COMMAND: u8 = b'c';
pub const COMMAND_BY_TIME: u8 = b't';
pub const EXPIRY: u8 = b'x';
pub const GTIN: u8 = b'g';
pub const PRODUCT_CLAIM: u8 = b'G';
pub const PENDING_CLAIM: u8 = b'q';
pub const ORDER: u8 = b'o';
pub const ACTIVE_ORDER: u8 = b'a';
pub const OWED_RELEASE: u8 = b'r';

/// A timestamp as 8 bytes that sort like the number (sign bit flipped).
pub fn time_bytes(at: Timestamp) -> [u8; 8] {
    ((at.millis() as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn product(sku: &Sku) -> Vec<u8> {
    prefixed(PRODUCT, sku.as_str().as_bytes())
}

pub fn gtin(canonical: &str) -> Vec<u8> {
    prefixed(GTIN, canonical.as_bytes())
}

pub fn product_claim(sku: &Sku) -> Vec<u8> {
    prefixed(PRODUCT_CLAIM, sku.as_str().as_bytes())
}

pub fn pending_claim(canonical: &str) -> Vec<u8> {
    prefixed(PENDING_CLAIM, canonical.as_bytes())
}

pub fn order(id: &OrderId) -> Vec<u8> {
    prefixed(ORDER, id.as_str().as_bytes())
}

pub fn active_order(id: &OrderId) -> Vec<u8> {
    prefixed(ACTIVE_ORDER, id.as_str().as_bytes())
}

pub fn owed_release(claim: &CommandId) -> Vec<u8> {
    prefixed(OWED_RELEASE, claim.as_str().as_bytes())
}

pub fn command(id: &CommandId) -> Vec<u8> {
    prefixed(COMMAND, id.as_str().as_bytes())
}

pub fn command_by_time(at: Timestamp, id: &CommandId) -> Vec<u8> {
    let mut k = prefixed(COMMAND_BY_TIME, &time_bytes(at));
    k.extend_from_slice(id.as_str().as_bytes());
    k
}

pub fn expiry(at: Timestamp, sku: &Sku) -> Vec<u8> {
    let mut k = prefixed(EXPIRY, &time_bytes(at));
    k.extend_from_slice(sku.as_str().as_bytes());
    k
}

/// The end (exclusive) of the `x` keys due at or before `now`.
pub fn expiry_upto(now: Timestamp) -> Vec<u8> {
    prefixed(EXPIRY, &time_bytes(Timestamp(now.millis().saturating_add(1))))
}

/// The SKU of an `x` key.
pub fn expiry_sku(key: &[u8]) -> Option<&str> {
    key.get(9..).and_then(|b| std::str::from_utf8(b).ok())
}

fn prefixed(tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(tag);
    k.extend_from_slice(rest);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bytes_sort_like_numbers() {
        let ts = [i64::MIN, -5, 0, 1, 1_700_000_000_000, i64::MAX];
        for pair in ts.windows(2) {
            assert!(time_bytes(Timestamp(pair[0])) < time_bytes(Timestamp(pair[1])));
        }
    }

    #[test]
    fn expiry_key_round_trips_its_sku() {
        let sku = Sku::parse("A-1").unwrap();
        assert_eq!(expiry_sku(&expiry(Timestamp(5), &sku)), Some("A-1"));
        assert!(expiry(Timestamp(5), &sku) < expiry_upto(Timestamp(5)));
        assert!(expiry(Timestamp(6), &sku) > expiry_upto(Timestamp(5)));
    }
}
