//! RFC 3339 timestamps for CloudEvents `time`, on the `time` crate.

use time::format_description::FormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// Always milliseconds and `Z`, as every record this code writes has said.
const MILLIS_UTC: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Milliseconds since the epoch, now. For the edges only: the domain never reads a clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `2026-11-24T10:15:30.123Z`. Instants beyond the years ±9999 (which no clock
/// gives) are written as the nearest end of that range.
pub fn rfc3339_millis(ms: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(if ms < 0 {
        PrimitiveDateTime::MIN.assume_utc()
    } else {
        PrimitiveDateTime::MAX.assume_utc()
    });
    // A UTC instant in the crate's range always formats with this description.
    at.format(MILLIS_UTC).unwrap_or_default()
}

/// Parses RFC 3339 (`T` between date and time, `Z` or `±hh:mm`, optional fraction,
/// cut to milliseconds) to milliseconds; `None` for anything else. Never panics.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    // RFC 3339 lets an application take another separator; we write and read `T`.
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    let at = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(parse_rfc3339("2026-11-18T11:06:40.123Z"), Some(1_795_000_000_123));
        assert_eq!(parse_rfc3339("2026-11-18T12:06:40.1+01:00"), Some(1_795_000_000_100));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-1000));
        for bad in
            ["", "2026-11-18", "2026-13-18T08:26:40Z", "2026-11-18T08:26:40", "2026-11-18T08:26:40.Z", "２０２６"]
        {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(ms in -62_135_596_800_000i64..253_402_300_799_999) {
            prop_assert_eq!(parse_rfc3339(&rfc3339_millis(ms)), Some(ms));
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = parse_rfc3339(&s);
        }
    }
}
