//! Identities. A value of these types is valid by construction: `Sku::parse`,
//! `Gtin::parse`, ... are the only ways in, and serde goes through them too.

use serde::{Deserialize, Serialize};

use crate::validation::{ValidationError, newtype_conversions};

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Checks the shape shared by SKUs, order ids and reservation ids:
/// 1–64 characters of `[A-Za-z0-9._-]`.
fn check_key(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() || value.len() > 64 {
        return Err(ValidationError::new(field, "must be 1 to 64 characters long"));
    }
    if !value.chars().all(is_key_char) {
        return Err(ValidationError::new(field, "may contain only letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

macro_rules! key_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                check_key($field, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        newtype_conversions!($name(String), parse, display);
    };
}

key_newtype!(
    /// The product key: 1–64 characters of `[A-Za-z0-9._-]`. Commands and events
    /// of a product are partitioned by it, which makes it unique by locality.
    Sku,
    "sku"
);
key_newtype!(
    /// An order's id, chosen by the client; same alphabet as a SKU.
    OrderId,
    "order_id"
);
key_newtype!(
    /// A reservation's id within one product, chosen by the client.
    ReservationId,
    "reservation_id"
);

/// A GTIN (barcode): 8, 12, 13 or 14 digits with a valid GS1 check digit.
///
/// The same article can be written as GTIN-12 or GTIN-13 or GTIN-14 with leading
/// zeros; uniqueness is therefore checked on [`Gtin::canonical`], the 14-digit form,
/// while the product keeps the form it was registered with.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Gtin(String);

impl Gtin {
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        if !matches!(value.len(), 8 | 12 | 13 | 14) || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValidationError::new("gtin", "must be 8, 12, 13 or 14 digits"));
        }
        if check_digit(&value.as_bytes()[..value.len() - 1]) != value.as_bytes()[value.len() - 1] {
            return Err(ValidationError::new("gtin", "has an invalid check digit"));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 14-digit form (left-padded with zeros): the key under which a GTIN is claimed.
    pub fn canonical(&self) -> String {
        format!("{:0>14}", self.0)
    }
}

/// The GS1 mod-10 check digit of `body` (all digits), as an ASCII digit.
/// Weights alternate 3, 1, 3... starting from the digit next to the check digit.
fn check_digit(body: &[u8]) -> u8 {
    let sum: u32 =
        body.iter().rev().enumerate().map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 }).sum();
    // `sum % 10` is < 10, so the cast and the addition stay within ASCII digits.
    b'0' + ((10 - sum % 10) % 10) as u8
}

newtype_conversions!(Gtin(String), parse, display);

/// Identifies one command. Events carry it (causation), so a command that was
/// applied is never applied again. 1–128 printable ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommandId(String);

impl CommandId {
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        if value.is_empty() || value.len() > 128 {
            return Err(ValidationError::new("command_id", "must be 1 to 128 characters long"));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValidationError::new(
                "command_id",
                "may contain only printable ASCII characters without spaces",
            ));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the `index`-th event caused by this command: deterministic, so a
    /// retried append of the same decision produces the same event ids.
    pub fn event_id(&self, index: usize) -> String {
        format!("{}/{index}", self.0)
    }
}

newtype_conversions!(CommandId(String), parse, display);

/// Milliseconds since the Unix epoch. The domain never reads a clock: time comes in
/// with the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn millis(self) -> i64 {
        self.0
    }

    /// `self + secs`, saturating instead of overflowing.
    pub fn plus_secs(self, secs: u64) -> Timestamp {
        let millis = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sku_accepts_its_alphabet_and_length() {
        assert!(Sku::parse("ABC-123_x.y").is_ok());
        assert!(Sku::parse("a".repeat(64)).is_ok());
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse("a".repeat(65)).is_err());
        assert!(Sku::parse("has space").is_err());
        assert!(Sku::parse("slash/").is_err());
        assert!(Sku::parse("é").is_err());
    }

    #[test]
    fn gtin_check_digits() {
        // Real barcodes: EAN-13, UPC-A (GTIN-12), EAN-8, GTIN-14.
        for ok in ["4006381333931", "036000291452", "96385074", "10614141000415", "5901234123457"] {
            assert!(Gtin::parse(ok).is_ok(), "{ok} should be valid");
        }
        for bad in ["4006381333932", "036000291453", "96385075", "123", "40063813339310", "abcdefgh", ""] {
            assert!(Gtin::parse(bad).is_err(), "{bad} should be invalid");
        }
    }

    #[test]
    fn gtin_canonical_form_pads_to_14() {
        let upc = Gtin::parse("036000291452").unwrap();
        let ean = Gtin::parse("0036000291452").unwrap();
        assert_eq!(upc.canonical(), "00036000291452");
        assert_eq!(upc.canonical(), ean.canonical());
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<Sku>("\"ok-1\"").is_ok());
        assert!(serde_json::from_str::<Sku>("\"not ok\"").is_err());
        assert!(serde_json::from_str::<Gtin>("\"4006381333932\"").is_err());
        let sku = Sku::parse("A1").unwrap();
        assert_eq!(serde_json::to_string(&sku).unwrap(), "\"A1\"");
    }

    #[test]
    fn timestamp_plus_secs_saturates() {
        assert_eq!(Timestamp(1_000).plus_secs(2), Timestamp(3_000));
        assert_eq!(Timestamp(i64::MAX - 5).plus_secs(u64::MAX), Timestamp(i64::MAX));
    }
}
