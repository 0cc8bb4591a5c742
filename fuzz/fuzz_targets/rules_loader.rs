//! Any bytes given to the rules loader come back as a ruleset and a report,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = falco_learn_rules::Ruleset::load_sources(&[("fuzz.yaml", text)]);
    }
});
