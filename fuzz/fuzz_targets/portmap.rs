//! A port map as written on the command line, in `REFLECTOR_MAP` or in the config file
//! (`10022:22`, `10053:53/udp`): parsing never panics, and a map that parses prints as a
//! string that parses back to the same map.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reflector::portmap::PortMap;

fuzz_target!(|input: &str| {
    match input.parse::<PortMap>() {
        Ok(map) => {
            let shown = map.to_string();
            let again: PortMap = shown.parse().unwrap_or_else(|e| {
                panic!("{input:?} parsed, but its display {shown:?} does not: {e}")
            });
            assert_eq!(again, map, "{input:?} -> {shown:?} parses to another map");
            assert!(
                map.listen != 0 && map.target != 0,
                "{input:?}: port 0 accepted"
            );
        }
        Err(error) => {
            // The message is what the user sees: building it must not panic either.
            let _ = error.to_string();
        }
    }
});
