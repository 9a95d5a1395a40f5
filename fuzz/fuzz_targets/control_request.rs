//! A request line on the control socket (`{"command":"map-add","map":"10080:80"}`), as the
//! daemon handles it: parsed, its map or listen-port argument parsed, and the change
//! applied to a set of maps. None of it panics on any line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reflector::{
    control::{MapChange, MapKey, Request, changed, parse_request},
    portmap::PortMap,
};

fuzz_target!(|line: &str| {
    let change = match parse_request(line) {
        Ok(Request::Stats) | Err(_) => return,
        Ok(Request::MapList) => MapChange::List,
        Ok(Request::MapAdd { map }) => match map.parse::<PortMap>() {
            Ok(map) => MapChange::Add(map),
            Err(error) => {
                let _ = error.to_string();
                return;
            }
        },
        Ok(Request::MapDel { map }) => match map.parse::<MapKey>() {
            Ok(key) => {
                assert_eq!(key.to_string().parse::<MapKey>().as_ref(), Ok(&key));
                MapChange::Del(key)
            }
            Err(error) => {
                let _ = error.to_string();
                return;
            }
        },
    };
    let current: Vec<PortMap> = ["10022:22", "10053:53/udp", "10080:80/tcp,udp"]
        .iter()
        .map(|map| map.parse().expect("a valid map"))
        .collect();
    if let Ok(maps) = changed(&current, &change) {
        assert!(!maps.is_empty(), "{line:?} left no map");
    }
});
