//! The JSON config parser on arbitrary bytes: it must return a value or a
//! `ConfigError`, never panic, and a config it accepts must survive a round
//! trip through its own JSON form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lkl::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse_str(text) {
        // Every error message must be printable.
        let json = config.to_json().to_string();
        let again = Config::parse_str(&json);
        assert!(again.is_ok(), "round trip refused: {json}: {again:?}");
    } else if let Err(e) = Config::parse_str(text) {
        let _ = e.to_string();
    }
});
