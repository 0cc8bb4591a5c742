//! Durations in configuration files: humantime strings (`200ms`, `2s`,
//! `1m 30s`), for `#[serde(with = "falco_learn_event::time::duration")]`.

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
