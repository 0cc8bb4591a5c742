//! Time, in one place: RFC 3339 as alerts write it ([`rfc3339`]) and as
//! runtimes report it ([`parse_rfc3339_ns`]), on the `time` crate; durations
//! in configuration files as humantime strings (`200ms`, `2s`, `1m 30s`), for
//! `#[serde(with = "falco_learn_event::time::duration")]`.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `ts` (ns since the epoch) as RFC 3339 in UTC with nine fraction digits
/// and `Z`, like Falco's alert `time`: `2023-11-14T22:13:20.123456789Z`.
pub fn rfc3339(ts: u64) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    // a u64 of nanoseconds is always within the range `time` represents
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts))
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000000000Z".to_string())
}

/// RFC 3339 (`Z` or `±hh:mm`, up to 9 fraction digits) → ns since the epoch;
/// 0 for anything unparsable or before 1970 (Go's zero time
/// `0001-01-01T00:00:00Z`, which runtimes report for "never").
pub fn parse_rfc3339_ns(s: &str) -> u64 {
    OffsetDateTime::parse(s.trim(), &Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp_nanos()).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_both_ways() {
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(u64::MAX), "2554-07-21T23:34:33.709551615Z");
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:01Z"), 1_000_000_000);
        assert_eq!(
            parse_rfc3339_ns("2026-11-22T01:44:13.477448342Z"),
            1_795_311_853_477_448_342
        );
        assert_eq!(
            parse_rfc3339_ns("2026-11-22T02:44:13.5+01:00"),
            1_795_311_853_500_000_000
        );
        assert_eq!(
            parse_rfc3339_ns("2026-11-21T20:44:13-05:00"),
            1_795_311_853_000_000_000
        );
        assert_eq!(
            parse_rfc3339_ns(" 2023-11-14T22:13:20.123456789Z\n"),
            1_700_000_000_123_456_789
        );
        assert_eq!(
            parse_rfc3339_ns(&rfc3339(1_795_311_853_477_448_342)),
            1_795_311_853_477_448_342
        );
        assert_eq!(parse_rfc3339_ns("0001-01-01T00:00:00Z"), 0);
        assert_eq!(parse_rfc3339_ns(""), 0);
        assert_eq!(parse_rfc3339_ns("yesterday"), 0);
    }
}

/// Serde of a [`std::time::Duration`] as a humantime string. A bare number is
/// refused (its unit would be a guess).
pub mod duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// `"2s"` → 2 s; `2` → an error asking for a unit.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(serde_json::Number),
        }
        match Raw::deserialize(d)? {
            Raw::Text(s) => humantime::parse_duration(s.trim()).map_err(|e| {
                serde::de::Error::custom(format!(
                    "{s:?} is not a duration ({e}); write e.g. 200ms, 2s or 1m"
                ))
            }),
            Raw::Number(n) => Err(serde::de::Error::custom(format!(
                "{n} has no unit; write a duration such as {n}ms or {n}s"
            ))),
        }
    }

    /// 2 s → `"2s"`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    #[cfg(test)]
    mod tests {
        use std::time::Duration;

        #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
        struct T {
            #[serde(with = "super")]
            d: Duration,
        }

        #[test]
        fn humantime_strings_round_trip_and_bare_numbers_are_refused() {
            for (text, d) in [
                ("200ms", Duration::from_millis(200)),
                ("2s", Duration::from_secs(2)),
                ("1m 30s", Duration::from_secs(90)),
                ("0s", Duration::ZERO),
            ] {
                let t: T = serde_json::from_str(&format!("{{\"d\":{text:?}}}")).expect(text);
                assert_eq!(t.d, d);
                let back: T =
                    serde_json::from_str(&serde_json::to_string(&t).expect("ser")).expect("de");
                assert_eq!(back, t);
            }
            let e = serde_json::from_str::<T>("{\"d\":200}")
                .expect_err("bare number")
                .to_string();
            assert!(
                e.starts_with("200 has no unit; write a duration such as 200ms or 200s"),
                "{e}"
            );
            let e = serde_json::from_str::<T>("{\"d\":\"soon\"}")
                .expect_err("text")
                .to_string();
            assert!(e.starts_with("\"soon\" is not a duration"), "{e}");
        }
    }
}
