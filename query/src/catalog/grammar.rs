//! The search box grammar: deliberately small, total, and safe.
//!
//! ```text
//! query   = clause*           (separated by whitespace)
//! clause  = ["-"] (word | "\"" words "\"")
//! ```
//!
//! Every positive clause must match (AND); a `-` clause must not. Nothing else is
//! special: there are no field prefixes, ranges, wildcards, fuzzy or regex operators,
//! so no input can ask the index for unbounded work. Limits keep the work bounded:
//! [`MAX_QUERY_BYTES`] bytes and [`MAX_CLAUSES`] clauses. The only syntax error is an
//! unclosed quote.

/// The longest `q` accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 512;
/// The most clauses (words and phrases) in one `q`.
pub const MAX_CLAUSES: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause {
    /// The raw text: one word, or the words of a phrase.
    pub text: String,
    /// Written in quotes: the words must appear in this order, next to each other.
    pub phrase: bool,
    /// Written with a leading `-`: matching documents are excluded.
    pub negated: bool,
}

/// Splits `q` into clauses, or says why it cannot.
pub fn parse(q: &str) -> Result<Vec<Clause>, String> {
    if q.len() > MAX_QUERY_BYTES {
        return Err(format!("q is longer than {MAX_QUERY_BYTES} bytes"));
    }
    let mut clauses = Vec::new();
    let mut chars = q.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else { break };
        let negated = first == '-';
        if negated {
            chars.next();
        }
        let (text, phrase) = if chars.next_if_eq(&'"').is_some() {
            let mut text = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => text.push(c),
                    None => return Err("q has an unclosed quote".into()),
                }
            }
            (text, true)
        } else {
            let mut text = String::new();
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                text.push(c);
            }
            (text, false)
        };
        if text.trim().is_empty() {
            continue; // a lone "-" or an empty phrase asks for nothing
        }
        clauses.push(Clause { text, phrase, negated });
        if clauses.len() > MAX_CLAUSES {
            return Err(format!("q has more than {MAX_CLAUSES} words and phrases"));
        }
    }
    Ok(clauses)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn clause(text: &str, phrase: bool, negated: bool) -> Clause {
        Clause { text: text.into(), phrase, negated }
    }

    #[test]
    fn words_phrases_and_exclusions() {
        assert_eq!(
            parse(r#"steel  "electric kettle" -plastic -"gift box" x-ray"#).unwrap(),
            vec![
                clause("steel", false, false),
                clause("electric kettle", true, false),
                clause("plastic", false, true),
                clause("gift box", true, true),
                clause("x-ray", false, false),
            ]
        );
        assert_eq!(parse("   ").unwrap(), vec![]);
        assert_eq!(parse(r#"- "" kettle"#).unwrap(), vec![clause("kettle", false, false)]);
    }

    #[test]
    fn what_is_refused() {
        assert!(parse(r#"kettle "unclosed"#).unwrap_err().contains("unclosed quote"));
        assert!(parse(&"a".repeat(MAX_QUERY_BYTES + 1)).unwrap_err().contains("longer than"));
        let many = vec!["w"; MAX_CLAUSES + 1].join(" ");
        assert!(parse(&many).unwrap_err().contains("more than"));
        assert_eq!(parse(&vec!["w"; MAX_CLAUSES].join(" ")).unwrap().len(), MAX_CLAUSES);
    }

    proptest! {
        /// Any input parses or is refused with a message; nothing panics, and no
        /// clause is empty.
        #[test]
        fn total_on_any_input(q in ".{0,600}") {
            if let Ok(clauses) = parse(&q) {
                prop_assert!(clauses.len() <= MAX_CLAUSES);
                prop_assert!(clauses.iter().all(|c| !c.text.trim().is_empty()));
            }
        }
    }
}
