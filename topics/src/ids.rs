//! Partitions, offsets and positions: the coordinates of the log.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// HTTP header carrying the position a write produced or a view has applied.
pub const POSITION_HEADER: &str = "stockroom-position";
/// HTTP header of a read that wants a view to have applied at least this position.
pub const MIN_POSITION_HEADER: &str = "stockroom-min-position";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Partition(pub u32);

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Offset(pub u64);

impl Offset {
    /// The offset after this one.
    pub fn next(self) -> Offset {
        Offset(self.0 + 1)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A position in a partitioned topic: for each partition the *next* offset, Kafka's
/// committed-offset convention ("everything below this offset is applied"). A write
/// returns the position just after its last event; a view reports the position it
/// has applied; the view covers the write when every partition of the write's
/// position is at or below the view's.
///
/// It serializes as its token string (`"0:15,3:7"`), which every serde format and
/// every nesting (internally tagged enums included) carries as a plain string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Position(BTreeMap<Partition, Offset>);

impl From<Position> for String {
    fn from(p: Position) -> String {
        p.to_string()
    }
}

impl TryFrom<String> for Position {
    type Error = PositionParseError;
    fn try_from(s: String) -> Result<Position, PositionParseError> {
        s.parse()
    }
}

impl Position {
    pub fn new() -> Position {
        Position::default()
    }

    /// The next offset of `partition` (0 when the position says nothing of it).
    pub fn get(&self, partition: Partition) -> Offset {
        self.0.get(&partition).copied().unwrap_or_default()
    }

    pub fn set(&mut self, partition: Partition, offset: Offset) {
        self.0.insert(partition, offset);
    }

    /// Moves `partition` forward to `offset` (never back).
    pub fn advance(&mut self, partition: Partition, offset: Offset) {
        let e = self.0.entry(partition).or_default();
        *e = (*e).max(offset);
    }

    /// The furthest of both, per partition.
    pub fn merge(&mut self, other: &Position) {
        for (p, o) in other.iter() {
            self.advance(p, o);
        }
    }

    /// True when this position is at or past `other` on every partition `other` names.
    pub fn covers(&self, other: &Position) -> bool {
        other.iter().all(|(p, o)| self.get(p) >= o)
    }

    pub fn iter(&self) -> impl Iterator<Item = (Partition, Offset)> + '_ {
        self.0.iter().map(|(p, o)| (*p, *o))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sum of the offsets: how many records the position has passed.
    pub fn total(&self) -> u64 {
        self.0.values().map(|o| o.0).sum()
    }
}

/// Token form: `partition:offset` pairs joined by commas, e.g. `0:15,3:7`.
impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (p, o)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{}", p.0, o.0)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a position token (expected `partition:offset` pairs separated by commas): {0}")]
pub struct PositionParseError(String);

impl FromStr for Position {
    type Err = PositionParseError;

    fn from_str(s: &str) -> Result<Position, PositionParseError> {
        let mut position = Position::new();
        if s.trim().is_empty() {
            return Ok(position);
        }
        if s.len() > 64 * 1024 {
            return Err(PositionParseError("token too long".into()));
        }
        for pair in s.split(',') {
            let bad = || PositionParseError(format!("{:?}", pair.chars().take(40).collect::<String>()));
            let (p, o) = pair.trim().split_once(':').ok_or_else(bad)?;
            let p: u32 = p.trim().parse().map_err(|_| bad())?;
            let o: u64 = o.trim().parse().map_err(|_| bad())?;
            position.advance(Partition(p), Offset(o));
        }
        Ok(position)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn token_form() {
        let mut p = Position::new();
        p.set(Partition(3), Offset(7));
        p.set(Partition(0), Offset(15));
        assert_eq!(p.to_string(), "0:15,3:7");
        assert_eq!(" 0:15 , 3:7 ".parse::<Position>().unwrap(), p);
        assert_eq!("".parse::<Position>().unwrap(), Position::new());
        for bad in ["x", "1", "1:", ":1", "1:2,", "-1:2", "1:-2", "1:2:3"] {
            assert!(bad.parse::<Position>().is_err(), "{bad}");
        }
    }

    #[test]
    fn covers_and_merge() {
        let a: Position = "0:5,1:3".parse().unwrap();
        let b: Position = "0:4".parse().unwrap();
        assert!(a.covers(&b));
        assert!(!b.covers(&a));
        assert!(a.covers(&Position::new()));
        let mut m = b.clone();
        m.merge(&"0:2,2:9".parse().unwrap());
        assert_eq!(m.to_string(), "0:4,2:9");
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in ".*") {
            let _ = s.parse::<Position>();
        }

        #[test]
        fn serde_round_trips_inside_tagged_enums(pairs in proptest::collection::btree_map(0u32..1000, any::<u64>(), 0..10)) {
            #[derive(Serialize, Deserialize, PartialEq, Debug)]
            #[serde(tag = "t")]
            enum Tagged { A { p: Position } }
            let mut p = Position::new();
            for (k, v) in pairs { p.set(Partition(k), Offset(v)); }
            let t = Tagged::A { p };
            let back: Tagged = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
            prop_assert_eq!(back, t);
        }

        #[test]
        fn display_parse_round_trips(pairs in proptest::collection::btree_map(0u32..1000, any::<u64>(), 0..10)) {
            let mut p = Position::new();
            for (k, v) in pairs { p.set(Partition(k), Offset(v)); }
            prop_assert_eq!(p.to_string().parse::<Position>().unwrap(), p);
        }
    }
}
