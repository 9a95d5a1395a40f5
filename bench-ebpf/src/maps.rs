//! The maps of the reference programs, declared as reflector's kernel program declares
//! them, so a lookup in one costs what it costs in the other.

use aya_ebpf::{macros::map, maps::LruHashMap};
use reflector_common::{FlowKey, FlowValue, maps::FLOWS_DEFAULT_LEN};

/// The flow table `baseline_flow_lookup` looks frames up in (reflector's `FLOWS`).
#[map(name = "FLOWS")]
pub(crate) static FLOWS: LruHashMap<FlowKey, FlowValue> =
    LruHashMap::with_max_entries(FLOWS_DEFAULT_LEN, 0);
