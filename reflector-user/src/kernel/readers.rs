//! Second handles on the maps telemetry reads: the counters, the per-map counters with the
//! slot table that labels them, and the flow table.

use std::{
    os::fd::AsFd as _,
    sync::{Arc, Mutex},
};

use aya::maps::{HashMap, Map, MapData, MapError, PerCpuArray};
use reflector_common::{
    Counter, FlowKey, FlowValue,
    maps::{FLOWS, MAP_STATS, STATS},
};

use super::{KernelError, KernelPath, slots::MapSlots};

/// The flow table, as telemetry reads it.
pub(crate) type FlowTable = HashMap<MapData, FlowKey, FlowValue>;

/// What telemetry reads of the kernel path, on handles of its own so the daemon keeps the
/// maps it writes: the counters, the per-map counters with the slot table that labels them,
/// and the flow table.
pub struct Readers {
    /// The counters of every packet the program sees (`STATS`).
    pub stats: PerCpuArray<MapData, Counter>,
    /// The per-map counters (`MAP_STATS`).
    pub map_counters: PerCpuArray<MapData, Counter>,
    /// Which port map holds which per-map counter slot; shared with the port table's
    /// writer, so a change shows at once.
    pub slots: Arc<Mutex<MapSlots>>,
    /// The flow table, for counting its entries.
    pub flows: FlowTable,
}

impl KernelPath {
    /// Handles for telemetry on the counters, the per-map counters and the flow table.
    ///
    /// # Errors
    /// [`KernelError::Map`] when a map cannot be opened a second time,
    /// [`KernelError::Missing`] when the object lacks one.
    pub(crate) fn readers(&self) -> Result<Readers, KernelError> {
        Ok(Readers {
            stats: PerCpuArray::try_from(Map::PerCpuArray(second_handle(&self.stats, STATS)?))
                .map_err(map_error(STATS))?,
            map_counters: PerCpuArray::try_from(Map::PerCpuArray(second_handle(
                &self.map_stats,
                MAP_STATS,
            )?))
            .map_err(map_error(MAP_STATS))?,
            slots: Arc::clone(&self.slots),
            flows: HashMap::try_from(Map::LruHashMap(second_handle(&self.flows, FLOWS)?))
                .map_err(map_error(FLOWS))?,
        })
    }
}

fn map_error(name: &'static str) -> impl Fn(MapError) -> KernelError {
    move |source| KernelError::Map { name, source }
}

/// A second handle on the map `name` this process holds, from a duplicate of its fd. Opening
/// the map again by id would need `BPF_MAP_GET_FD_BY_ID`, which the kernel allows only with
/// `CAP_SYS_ADMIN`; duplicating an fd needs no capability at all.
fn second_handle(map: &Map, name: &'static str) -> Result<MapData, KernelError> {
    let (Map::PerCpuArray(data) | Map::LruHashMap(data)) = map else {
        return Err(KernelError::Missing(name));
    };
    let fd = data
        .fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|error| map_error(name)(MapError::IoError(error)))?;
    MapData::from_fd(fd).map_err(map_error(name))
}
