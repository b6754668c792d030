//! Field rules shared by commands and the HTTP edge, and the error they produce.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One field broke one rule. `field` is the JSON name the client used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field} {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

pub const NAME_MAX_CHARS: usize = 200;
pub const DESCRIPTION_MAX_CHARS: usize = 5000;
pub const LABEL_MAX_CHARS: usize = 200;
pub const REASON_MAX_CHARS: usize = 500;
pub const ATTRIBUTES_MAX: usize = 64;
pub const ATTRIBUTE_KEY_MAX_CHARS: usize = 64;
pub const ATTRIBUTE_VALUE_MAX_CHARS: usize = 1000;
/// The largest quantity one command may move; keeps every sum far from overflow.
pub const QUANTITY_MAX: u64 = 1_000_000_000;
/// The largest stock a product may hold.
pub const ON_HAND_MAX: u64 = 1_000_000_000_000;

/// Text that must be present (after trimming) and at most `max` characters.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    bounded_text(field, value, max)
}

/// Text of at most `max` characters without control characters other than
/// newlines and tabs.
pub fn bounded_text(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.chars().count() > max {
        return Err(ValidationError::new(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Err(ValidationError::new(field, "must not contain control characters"));
    }
    Ok(())
}

/// The conversions serde goes through for a validated newtype `$name($inner)`:
/// `TryFrom<$inner>` by its constructor `$check`, and `From<$name> for $inner`.
/// With `display`, `Display` writes the inner string as it is.
macro_rules! newtype_conversions {
    ($name:ident($inner:ty), $check:ident $(, $display:ident)?) => {
        impl TryFrom<$inner> for $name {
            type Error = ValidationError;
            fn try_from(value: $inner) -> Result<Self, Self::Error> {
                Self::$check(value)
            }
        }

        impl From<$name> for $inner {
            fn from(value: $name) -> $inner {
                value.0
            }
        }
        $(newtype_conversions!(@$display $name);)?
    };
    (@display $name:ident) => {
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
pub(crate) use newtype_conversions;

/// A positive quantity no larger than [`QUANTITY_MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Quantity(u64);

impl Quantity {
    pub fn new(value: u64) -> Result<Self, ValidationError> {
        Self::for_field("quantity", value)
    }

    pub fn for_field(field: &str, value: u64) -> Result<Self, ValidationError> {
        if value == 0 {
            return Err(ValidationError::new(field, "must be greater than 0"));
        }
        if value > QUANTITY_MAX {
            return Err(ValidationError::new(field, format!("must be at most {QUANTITY_MAX}")));
        }
        Ok(Self(value))
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

newtype_conversions!(Quantity(u64), new);

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An ISO 4217-shaped currency code: three uppercase ASCII letters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        if value.len() != 3 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ValidationError::new("currency", "must be three uppercase letters (ISO 4217)"));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Currency {
    fn default() -> Self {
        Self("USD".to_owned())
    }
}

newtype_conversions!(Currency(String), parse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert!(required_text("name", "  ", 10).is_err());
        assert!(required_text("name", "ok", 10).is_ok());
        assert!(bounded_text("name", &"é".repeat(10), 10).is_ok());
        assert!(bounded_text("name", &"é".repeat(11), 10).is_err());
        assert!(bounded_text("name", "a\u{0}b", 10).is_err());
        assert!(bounded_text("description", "line\nline", 100).is_ok());
    }

    #[test]
    fn quantity_bounds() {
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(1).is_ok());
        assert!(Quantity::new(QUANTITY_MAX + 1).is_err());
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert!(serde_json::from_str::<Quantity>("-1").is_err());
    }

    #[test]
    fn currency_shape() {
        assert!(Currency::parse("EUR").is_ok());
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("EURO").is_err());
    }
}
