//! Cleaning one feed row (API.md, "Clean"): whitespace trimmed and collapsed, text
//! in Unicode NFC, GTINs checked and kept in their canonical 14-digit form (an
//! invalid one is dropped with a warning), categories mapped or slugged, prices read
//! in every common notation. A row without a usable name or price is rejected with
//! a reason naming the field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::ids::{Gtin, Sku};
use crate::product::{Money, ProductDetails};
use crate::validation::{Currency, DESCRIPTION_MAX_CHARS, LABEL_MAX_CHARS, NAME_MAX_CHARS};

/// A feed row after field mapping, before cleaning: every value as the feed's text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedRow {
    pub source_id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// How a source writes prices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceUnit {
    /// A decimal amount: `12.99`, `"1,299.00"`, `"$12.99"`, `"12,99 €"`.
    #[default]
    Major,
    /// An integer number of cents.
    Minor,
}

/// A usable row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanRow {
    pub source_id: String,
    /// The row's own SKU, when mapped and valid.
    pub sku: Option<Sku>,
    pub details: ProductDetails,
    /// Initial stock of a product the row creates.
    pub stock: u64,
}

/// Why a row cannot be used: the field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// A cleaned row and how many of its values were dropped or repaired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cleaned {
    pub row: CleanRow,
    pub warnings: u32,
}

/// What a source definition says about cleaning.
pub struct CleanRules<'a> {
    pub price_unit: PriceUnit,
    pub currency: &'a Currency,
    pub category_map: &'a BTreeMap<String, String>,
}

/// Cleans `row` by `rules`.
pub fn clean_row(row: &FeedRow, rules: &CleanRules<'_>) -> Result<Cleaned, Rejected> {
    let mut warnings = 0;
    let get = |f: &str| row.fields.get(f).map(|v| text(v)).filter(|v| !v.is_empty());
    let name = get("name").ok_or_else(|| reject("name", "is missing"))?;
    let name = truncate(&name, NAME_MAX_CHARS, &mut warnings);
    let price_text = get("price").ok_or_else(|| reject("price", "is missing"))?;
    let (cents, row_currency) = parse_price(&price_text, rules.price_unit)?;
    let currency = match row_currency.or_else(|| get("currency")).map(Currency::parse).transpose() {
        Ok(c) => c.unwrap_or_else(|| rules.currency.clone()),
        Err(_) => return Err(reject("currency", "is not a 3-letter currency code")),
    };
    let gtin = get("gtin").and_then(|g| match canonical_gtin(&g) {
        Some(g) => Some(g),
        None => {
            warnings += 1;
            None
        }
    });
    let category = get("category").map(|c| match rules.category_map.get(&c) {
        Some(mapped) => mapped.clone(),
        None => slug(&c),
    });
    let category = category.filter(|c| !c.is_empty());
    let brand = get("brand").map(|b| truncate(&b, LABEL_MAX_CHARS, &mut warnings));
    let description = get("description").map(|d| truncate(&d, DESCRIPTION_MAX_CHARS, &mut warnings));
    let sku = get("sku").and_then(|s| Sku::parse(s).ok());
    let stock = match get("stock") {
        None => 0,
        Some(s) => {
            s.parse::<f64>().ok().filter(|n| *n >= 0.0 && n.fract() == 0.0).map(|n| n as u64).unwrap_or_else(|| {
                warnings += 1;
                0
            })
        }
    };
    let attributes = row
        .attributes
        .iter()
        .map(|(k, v)| (text(k), text(v)))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .collect();
    let details =
        ProductDetails { name, description, brand, category, gtin, price: Money { cents, currency }, attributes };
    Ok(Cleaned { row: CleanRow { source_id: text(&row.source_id), sku, details, stock }, warnings })
}

fn reject(field: &str, reason: &str) -> Rejected {
    Rejected { field: field.to_owned(), reason: reason.to_owned() }
}

fn truncate(value: &str, max: usize, warnings: &mut u32) -> String {
    if value.chars().count() <= max {
        value.to_owned()
    } else {
        *warnings += 1;
        value.chars().take(max).collect()
    }
}

/// Whitespace trimmed and collapsed to single spaces, in Unicode NFC.
pub fn text(value: &str) -> String {
    let nfc: String = value.nfc().collect();
    nfc.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A lowercase slug: `"Home Decoration"` → `home-decoration`.
pub fn slug(value: &str) -> String {
    let mut out = String::new();
    for c in value.nfkd().filter(|c| !unicode_normalization::char::is_combining_mark(*c)) {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// The GTIN in `value` (digits only, other characters ignored) in its canonical
/// 14-digit form, when it has 8, 12, 13 or 14 digits and a valid check digit.
pub fn canonical_gtin(value: &str) -> Option<Gtin> {
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    let gtin = Gtin::parse(digits).ok()?;
    Gtin::parse(gtin.canonical()).ok()
}

/// Reads a price in cents, and the currency its notation names (`$`, `€`, `£`, or
/// an ISO code), if any.
pub fn parse_price(value: &str, unit: PriceUnit) -> Result<(i64, Option<String>), Rejected> {
    let bad = || reject("price", &format!("cannot read {value:?} as a price"));
    let mut currency = None;
    let mut number = String::new();
    let mut letters = String::new();
    for c in value.chars() {
        match c {
            '$' => currency = Some("USD".to_owned()),
            '€' => currency = Some("EUR".to_owned()),
            '£' => currency = Some("GBP".to_owned()),
            '0'..='9' | '.' | ',' | '-' => number.push(c),
            c if c.is_ascii_alphabetic() => letters.push(c.to_ascii_uppercase()),
            c if c.is_whitespace() || c == '\'' || c == '\u{a0}' => {}
            _ => return Err(bad()),
        }
    }
    if !letters.is_empty() {
        if letters.len() != 3 {
            return Err(bad());
        }
        currency = Some(letters);
    }
    let negative = number.starts_with('-');
    let number = number.trim_start_matches('-');
    if number.contains('-') || number.is_empty() {
        return Err(bad());
    }
    if negative && number.chars().any(|c| c.is_ascii_digit() && c != '0') {
        return Err(reject("price", "must be 0 or more"));
    }
    let cents = match unit {
        PriceUnit::Minor => number.parse::<i64>().map_err(|_| bad())?,
        PriceUnit::Major => major_to_cents(number).ok_or_else(bad)?,
    };
    Ok((cents, currency))
}

/// `1,299.00`, `1.299,00`, `12,99`, `12.5`, `1299` → cents. The last separator is
/// the decimal one when one or two digits follow it; otherwise separators group
/// thousands.
fn major_to_cents(number: &str) -> Option<i64> {
    let last = number.rfind(['.', ',']);
    let (int, frac) = match last {
        Some(i) => {
            let frac = &number[i + 1..];
            let before = &number[..i];
            let other = if &number[i..=i] == "." { ',' } else { '.' };
            let int_digits = before.trim_start_matches('0');
            let decimal = frac.len() != 3 || before.contains(other) || int_digits.is_empty();
            if decimal { (&number[..i], frac) } else { (number, "") }
        }
        None => (number, ""),
    };
    let int: String = int.chars().filter(char::is_ascii_digit).collect();
    if frac.contains(['.', ',']) || int.len() > 15 {
        return None;
    }
    let whole: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut frac_digits = frac.chars();
    let tens = frac_digits.next().map_or(Some(0), |c| c.to_digit(10))?;
    let ones = frac_digits.next().map_or(Some(0), |c| c.to_digit(10))?;
    let round_up = frac_digits.next().and_then(|c| c.to_digit(10)).is_some_and(|d| d >= 5);
    whole.checked_mul(100)?.checked_add(i64::from(tens * 10 + ones) + i64::from(round_up))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_in_every_common_notation() {
        let major = |v| parse_price(v, PriceUnit::Major);
        assert_eq!(major("12.99"), Ok((1299, None)));
        assert_eq!(major("1,299.00"), Ok((129_900, None)));
        assert_eq!(major("$12.99"), Ok((1299, Some("USD".into()))));
        assert_eq!(major("12,99 €"), Ok((1299, Some("EUR".into()))));
        assert_eq!(major("1.299,50"), Ok((129_950, None)));
        assert_eq!(major("1,299"), Ok((129_900, None)));
        assert_eq!(major("9.995"), Ok((999_500, None)));
        assert_eq!(major("7"), Ok((700, None)));
        assert_eq!(major("12.5 EUR"), Ok((1250, Some("EUR".into()))));
        assert_eq!(major("0.999"), Ok((100, None)));
        assert!(major("-3.00").is_err());
        assert!(major("abc").is_err());
        assert!(major("").is_err());
        assert_eq!(parse_price("1299", PriceUnit::Minor), Ok((1299, None)));
        assert!(parse_price("12.99", PriceUnit::Minor).is_err());
    }

    #[test]
    fn gtins_are_checked_and_canonical() {
        assert_eq!(canonical_gtin("4006381333931").map(|g| g.to_string()), Some("04006381333931".into()));
        assert_eq!(canonical_gtin("400-638 133 393 1").map(|g| g.to_string()), Some("04006381333931".into()));
        assert_eq!(canonical_gtin("4006381333932"), None);
        assert_eq!(canonical_gtin("12345"), None);
    }

    #[test]
    fn text_and_slugs() {
        assert_eq!(text("  Cafe\u{301}   au\tlait "), "Caf\u{e9} au lait");
        assert_eq!(slug("Home Decoration"), "home-decoration");
        assert_eq!(slug(" Women's  Shoes! "), "women-s-shoes");
    }

    #[test]
    fn a_row_without_name_or_price_is_rejected_naming_the_field() {
        let usd = Currency::parse("USD").unwrap();
        let map = BTreeMap::new();
        let rules = CleanRules { price_unit: PriceUnit::Major, currency: &usd, category_map: &map };
        let row = |pairs: &[(&str, &str)]| FeedRow {
            source_id: "1".into(),
            fields: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            attributes: BTreeMap::new(),
        };
        assert_eq!(clean_row(&row(&[("price", "1")]), &rules).unwrap_err().field, "name");
        assert_eq!(clean_row(&row(&[("name", "x")]), &rules).unwrap_err().field, "price");
        assert_eq!(clean_row(&row(&[("name", "x"), ("price", "-1")]), &rules).unwrap_err().field, "price");
        let ok = clean_row(
            &row(&[("name", " A  b "), ("price", "2"), ("gtin", "123"), ("category", "Home Decoration")]),
            &rules,
        )
        .unwrap();
        assert_eq!(ok.warnings, 1);
        assert_eq!(ok.row.details.name, "A b");
        assert_eq!(ok.row.details.category.as_deref(), Some("home-decoration"));
        assert_eq!(ok.row.details.price.cents, 200);
    }
}
