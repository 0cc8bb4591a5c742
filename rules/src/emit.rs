//! Writing rules files: the one place that decides how a value is spelled in a Falco
//! condition ([`falco_quote`]) and as a YAML scalar ([`yaml_scalar`],
//! [`yaml_double_quoted`]). Generated rules (the profiler) and exported profiles use these,
//! so every emitted file reads back, in our loader and in stock Falco, as what was meant.

use std::fmt::Write;

/// A value as a quoted string in a Falco condition: `"` + the value with
/// `\\ \" \n \t \r \b \f` escapes + `"`; every other character as it is (libsinsp's
/// `unescape_str` and our parser read exactly these escapes back).
pub fn falco_quote(v: &str) -> String {
    let mut o = String::with_capacity(v.len() + 2);
    o.push('"');
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            '\u{8}' => o.push_str("\\b"),
            '\u{c}' => o.push_str("\\f"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A YAML scalar holding exactly `s`, fit for block and flow context alike: plain when
/// it is made of `[A-Za-z0-9/_.+@:*-]`, starts with none of `- : * @ .`, does not end
/// with `:` (a key in a flow mapping) and reads back as the same string; double-quoted
/// ([`yaml_double_quoted`]) otherwise.
pub fn yaml_scalar(s: &str) -> String {
    let plain_chars = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.' | '-' | '+' | '@' | ':' | '*')
        })
        && !s.starts_with(['-', ':', '*', '@', '.'])
        && !s.ends_with(':');
    let reads_back = plain_chars
        && matches!(serde_yaml::from_str::<serde_yaml::Value>(s),
                    Ok(serde_yaml::Value::String(ref r)) if r == s);
    if reads_back {
        s.to_string()
    } else {
        yaml_double_quoted(s)
    }
}

/// A YAML double-quoted scalar holding exactly `s`: `\"` and `\\` escaped, every
/// character YAML does not allow as it is (C0/C1 controls, DEL, U+FEFF, U+FFFE/U+FFFF;
/// and, for readability, line breaks, tabs, U+2028/U+2029) as an escape. Read back
/// exactly by serde_yaml, yaml-cpp (Falco) and yaml-rust2.
pub fn yaml_double_quoted(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x20
                || (0x7f..=0x9f).contains(&(c as u32))
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ruleset;

    /// Awkward values: spaces, both quote kinds, backslashes, glob characters, non-ASCII,
    /// IPv6, newline/tab, a trailing `:`, YAML indicators.
    const AWKWARD: &[&str] = &[
        "/usr/bin/with space",
        "/usr/bin/q'uote",
        "/usr/bin/d\"quote",
        "/usr/bin/back\\slash",
        "/srv/[a]/x*?",
        "/opt/ünï/日本",
        "2001:db8::1",
        "/tmp/a\nb\tc",
        "memfd:",
        "memfd:x",
        "- dash",
        "#hash",
        "a: b",
        "[x]",
        "{y}",
        "yes",
        "",
    ];

    #[test]
    fn yaml_scalars_read_back_as_themselves_in_block_and_flow_context() {
        for v in AWKWARD {
            let s = yaml_scalar(v);
            for doc in [format!("k: {s}\n"), format!("k: [{s}, z]\n")] {
                let back: serde_yaml::Value = serde_yaml::from_str(&doc).expect(&doc);
                let got = match &back["k"] {
                    serde_yaml::Value::Sequence(x) => x[0].clone(),
                    x => x.clone(),
                };
                assert_eq!(got, serde_yaml::Value::String(v.to_string()), "{doc}");
            }
        }
        // the trailing ':' that a flow mapping would read as a key is quoted
        assert_eq!(yaml_scalar("memfd:"), "\"memfd:\"");
        assert_eq!(yaml_scalar("/usr/sbin/nginx"), "/usr/sbin/nginx");
    }

    /// What the loader reads back from a quoted string is the value (libsinsp's escape
    /// set: `unescape_str`), and `escape` makes a glob that matches only it.
    #[test]
    fn quoted_values_and_escaped_globs_mean_exactly_the_value() {
        for v in AWKWARD {
            let cond = |c: String| yaml_scalar(&format!("evt.type = execve and {c}"));
            let rules = format!(
                "- rule: Eq\n  desc: d\n  condition: {}\n  output: o\n  priority: INFO\n\
                 - rule: Glob\n  desc: d\n  condition: {}\n  output: o\n  priority: INFO\n",
                cond(format!("proc.exepath = {}", falco_quote(v))),
                cond(format!(
                    "proc.exepath glob {}",
                    falco_quote(&crate::glob::escape(v))
                )),
            );
            let (rs, rep) = Ruleset::load_sources(&[("r.yaml", rules.as_str())]);
            assert!(!rep.has_errors(), "{v:?}: {rep}");
            let mut e = falco_learn_event::Event {
                typ: falco_learn_event::EventTypeField(falco_learn_event::EventType::Execve),
                ..Default::default()
            };
            std::sync::Arc::make_mut(&mut e.process).exepath = v.to_string();
            let names: Vec<&str> = rs.matching(&e).iter().map(|r| r.name.as_str()).collect();
            assert_eq!(names, ["Eq", "Glob"], "{v:?}");
            std::sync::Arc::make_mut(&mut e.process).exepath = format!("{v}x");
            assert!(rs.matching(&e).is_empty(), "{v:?}");
        }
    }
}
