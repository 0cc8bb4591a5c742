//! Falco's glob, for rules and for what emits them.
//!
//! Matching is `fnmatch(3)` without flags, as libsinsp's `glob` operator calls it: the
//! workspace's one implementation is [`falco_learn_event::glob`] (field extraction needs it
//! too, and this crate depends on that one), re-exported here. Writing a glob that matches
//! a value exactly ([`escape`]) is this crate's: brackets, never backslashes (libsinsp's
//! lexer mis-reads a quoted string ending in an escaped backslash).

pub use falco_learn_event::glob::{glob_chars, glob_chars_str, glob_match};

/// Append `c` to a glob so that it matches exactly `c`: `[*]`, `[?]`, `[[]`, `[\\]`
/// (the last as a Falco string spells it: one backslash once unescaped).
pub fn escape_char(c: char, out: &mut String) {
    match c {
        '*' => out.push_str("[*]"),
        '?' => out.push_str("[?]"),
        '[' => out.push_str("[[]"),
        '\\' => out.push_str("[\\\\]"),
        c => out.push(c),
    }
}

/// A glob matching exactly `s` (once read back from a Falco quoted string).
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        escape_char(c, &mut o);
    }
    o
}
