//! The third way to find a product: brand and name with case, accents,
//! punctuation and spacing ignored (API.md, "Match").

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// `brand|name` reduced to lowercase letters and digits without accents, words
/// separated by one space; `None` when the name reduces to nothing.
pub fn match_key(brand: Option<&str>, name: &str) -> Option<String> {
    let name = fold(name);
    if name.is_empty() {
        return None;
    }
    Some(format!("{}|{}", brand.map(fold).unwrap_or_default(), name))
}

fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut gap = false;
    for c in text.nfkd().filter(|c| !is_combining_mark(*c)) {
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_accents_punctuation_and_spacing_are_ignored() {
        assert_eq!(match_key(Some("Crème  Co."), "Eau-de Parfum!"), match_key(Some("creme co"), "eau de   PARFUM"));
        assert_ne!(match_key(Some("a"), "x"), match_key(Some("b"), "x"));
        assert_eq!(match_key(None, "X"), match_key(Some(""), "x"));
        assert_eq!(match_key(None, " !! "), None);
    }
}
