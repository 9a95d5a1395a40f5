//! Loading the program: anew from the object, or adopted from a pin directory.

use std::{path::Path, sync::Arc};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Map, MapData},
    programs::{SchedClassifier, Xdp},
};
use log::{info, warn};
use reflector_common::maps::{
    ADMISSION, ALLOW_V4, ALLOW_V6, FLOWS, GLOBAL_BUCKET, LOCAL_ADDRS, MAP_STATS, PORTS,
    SOURCE_BUCKETS, STATS, programs,
};

use super::{AdmissionMaps, KernelError, KernelPath, Programs, program};
use crate::{ebpf_object::load_retrying, pin};

/// Options for loading the kernel program.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LoadOptions {
    /// Room in the flow table.
    pub flow_table_size: u32,
    /// Whether the program sends its debug events (one per new flow) to the daemon's log.
    pub debug_events: bool,
}

impl KernelPath {
    /// Loads `object` into the kernel (verifying both programs) without attaching it.
    ///
    /// # Errors
    /// [`KernelError::Load`] or [`KernelError::Program`] when the kernel refuses.
    pub(crate) fn load(object: &[u8], options: LoadOptions) -> Result<Self, KernelError> {
        // aya-log checks this level in the program before it writes an event; 0 silences
        // the program entirely, so no per-flow work is done unless debug logging is on.
        let level: u8 = if options.debug_events { 0xff } else { 0 };
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(FLOWS, options.flow_table_size)
            .override_global("AYA_LOG_LEVEL", &level, false)
            .load(object)
            .map_err(KernelError::Load)?;
        if options.debug_events {
            spawn_event_logger(&mut ebpf);
        }
        let xdp: &mut Xdp = program(&mut ebpf, programs::XDP)?;
        load_retrying(|| xdp.load()).map_err(|source| KernelError::Program {
            name: programs::XDP,
            source,
        })?;
        let tc: &mut SchedClassifier = program(&mut ebpf, programs::TC)?;
        load_retrying(|| tc.load()).map_err(|source| KernelError::Program {
            name: programs::TC,
            source,
        })?;
        let mut take = |name: &'static str| ebpf.take_map(name).ok_or(KernelError::Missing(name));
        let ports = take(PORTS)?;
        let flows = take(FLOWS)?;
        let local_addrs = take(LOCAL_ADDRS)?;
        let stats = take(STATS)?;
        let map_stats = take(MAP_STATS)?;
        let admission = AdmissionMaps {
            config: take(ADMISSION)?,
            allow_v4: take(ALLOW_V4)?,
            allow_v6: take(ALLOW_V6)?,
            source_buckets: take(SOURCE_BUCKETS)?,
            global_bucket: take(GLOBAL_BUCKET)?,
        };
        Ok(Self {
            programs: Programs::Loaded(ebpf),
            ports,
            flows,
            local_addrs: Some(local_addrs),
            stats,
            map_stats,
            admission,
            slots: Arc::default(),
            links: Vec::new(),
            added_clsact: Vec::new(),
            pin: None,
            adopted: false,
        })
    }

    /// Like [`KernelPath::load`], but keeping everything in the bpffs directory `dir`, so
    /// that it outlives this process: when `dir` holds a pinned reflector already, its
    /// maps (ports, local addresses, flows, counters, admission), programs and links are adopted as they
    /// are; otherwise `object` is loaded and its maps and programs pinned there.
    ///
    /// # Errors
    /// [`KernelError::Pin`] when `dir` is not on a bpffs or its pins cannot be opened,
    /// otherwise as [`KernelPath::load`].
    pub(crate) fn pinned(
        object: &[u8],
        options: LoadOptions,
        dir: &Path,
    ) -> Result<Self, KernelError> {
        pin::prepare_dir(dir)?;
        if let Some(state) = pin::open(dir)? {
            let map = |name: &'static str, data: MapData| {
                Map::from_map_data(data).map_err(|source| KernelError::Map { name, source })
            };
            let flows = state.flows.info().map_or(0, |info| info.max_entries());
            if flows != options.flow_table_size {
                warn!(
                    "the pinned flow table holds {flows} flows; flow-table-size {} takes \
                     `reflector detach --pin {}` and a restart",
                    options.flow_table_size,
                    dir.display()
                );
            }
            info!(
                "adopted the pinned state at {} (port table, local addresses, flows, counters; \
                 programs and links stay attached)",
                dir.display()
            );
            return Ok(Self {
                programs: Programs::Pinned {
                    xdp: Box::new(state.xdp),
                    tc: Box::new(state.tc),
                },
                ports: map(PORTS, state.ports)?,
                flows: map(FLOWS, state.flows)?,
                local_addrs: Some(map(LOCAL_ADDRS, state.local_addrs)?),
                stats: map(STATS, state.stats)?,
                map_stats: map(MAP_STATS, state.map_stats)?,
                admission: AdmissionMaps {
                    config: map(ADMISSION, state.admission)?,
                    allow_v4: map(ALLOW_V4, state.allow_v4)?,
                    allow_v6: map(ALLOW_V6, state.allow_v6)?,
                    source_buckets: map(SOURCE_BUCKETS, state.source_buckets)?,
                    global_bucket: map(GLOBAL_BUCKET, state.global_bucket)?,
                },
                slots: Arc::default(),
                links: Vec::new(),
                added_clsact: Vec::new(),
                pin: Some((dir.to_owned(), state.links)),
                adopted: true,
            });
        }
        let mut kernel = Self::load(object, options)?;
        let pin_error = |what: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| KernelError::PinObject {
                what: what.to_owned(),
                path,
                source,
            }
        };
        let path = dir.join(pin::PROG_XDP);
        kernel
            .programs
            .xdp()?
            .pin(&path)
            .map_err(pin_error("program", &path))?;
        let path = dir.join(pin::PROG_TC);
        kernel
            .programs
            .tc()?
            .pin(&path)
            .map_err(pin_error("program", &path))?;
        let mut maps = vec![(FLOWS, &kernel.flows)];
        maps.extend(kernel.local_addrs.as_ref().map(|map| (LOCAL_ADDRS, map)));
        maps.push((STATS, &kernel.stats));
        maps.push((MAP_STATS, &kernel.map_stats));
        let admission = &kernel.admission;
        maps.extend([
            (ADMISSION, &admission.config),
            (ALLOW_V4, &admission.allow_v4),
            (ALLOW_V6, &admission.allow_v6),
            (SOURCE_BUCKETS, &admission.source_buckets),
            (GLOBAL_BUCKET, &admission.global_bucket),
        ]);
        // The port table last, after the layout stamp: its pin marks the directory as
        // complete.
        pin::stamp_layout(dir)?;
        maps.push((PORTS, &kernel.ports));
        for (name, map) in maps {
            let path = dir.join(name);
            map.pin(&path).map_err(pin_error("map", &path))?;
        }
        info!(
            "pinned the kernel program and its maps at {}",
            dir.display()
        );
        kernel.pin = Some((dir.to_owned(), Vec::new()));
        Ok(kernel)
    }
}

/// Forwards the program's aya-log events to this process's logger.
fn spawn_event_logger(ebpf: &mut Ebpf) {
    let logger = match aya_log::EbpfLogger::init(ebpf) {
        Ok(logger) => logger,
        Err(error) => {
            warn!("kernel program events will not be logged: {error}");
            return;
        }
    };
    // SAFETY: the logger owns its ring buffer's fd and keeps it open, unchanged, for as
    // long as it lives, which is as long as the `AsyncFd` that owns the logger.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
    };
    let Ok(mut logger) = registered else {
        warn!("kernel program events will not be logged: cannot poll the event ring");
        return;
    };
    tokio::spawn(async move {
        loop {
            let Ok(mut guard) = logger.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}
