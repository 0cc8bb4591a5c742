//! Any text given to the condition parser (and compiled as a rule condition)
//! returns a result or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = falco_learn_rules::parser::parse_condition(text);
        let yaml = format!(
            "- rule: r\n  desc: d\n  condition: {text:?}\n  output: o %proc.name\n  priority: INFO\n"
        );
        let _ = falco_learn_rules::Ruleset::load_sources(&[("fuzz.yaml", yaml)]);
    }
});
