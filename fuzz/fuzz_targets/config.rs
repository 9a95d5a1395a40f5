//! The config file (`--config FILE`, read again on SIGHUP): parsing and checking any text
//! never panics, an error names a line and column inside the text, and a file that parses
//! layers into settings or is refused with an error (never a panic).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use reflector::settings::{
    Settings,
    file::{self as config, ConfigError},
};

fuzz_target!(|text: &str| {
    match config::parse(Path::new("fuzz.toml"), text) {
        Ok(overrides) => {
            let _ = Settings::layered([overrides]).map_err(|error| error.to_string());
        }
        Err(ConfigError::Invalid { location, message }) => {
            assert!(!message.is_empty(), "{text:?}: an error without a message");
            if let Some((line, column)) = location.line_column {
                let lines: Vec<&str> = text.split('\n').collect();
                assert!(
                    (1..=lines.len()).contains(&line),
                    "{text:?}: error on line {line} of {}",
                    lines.len()
                );
                let width = lines[line - 1].len() + 1;
                assert!(
                    (1..=width).contains(&column),
                    "{text:?}: error at column {column} of line {line}, {width} wide"
                );
            }
            let _ = format!("{location}: {message}");
        }
        Err(error @ (ConfigError::Read { .. } | ConfigError::Writable { .. })) => {
            panic!("parsing text read a file: {error}")
        }
    }
});
