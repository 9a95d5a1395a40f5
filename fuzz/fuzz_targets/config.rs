//! The config file (`--config FILE`, read again on SIGHUP): parsing and checking any text
//! never panics, an error names a line and column inside the text, and a file that parses
//! layers into settings or is refused with an error (never a panic).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use reflector::{config, settings::Settings};

fuzz_target!(|text: &str| {
    match config::parse(Path::new("fuzz.toml"), text) {
        Ok(overrides) => {
            let _ = Settings::layered([overrides]).map_err(|error| error.to_string());
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
