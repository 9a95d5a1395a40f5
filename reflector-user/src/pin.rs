//! The pin directory (`--pin DIR`, on a bpffs): the kernel program's maps, programs and
//! links live on there after the daemon exits, for the next daemon to adopt, until
//! `reflector detach --pin DIR` removes them.
//!
//! Layout: one file per map (`PORTS`, `LOCAL_ADDRS`, `FLOWS`, `STATS`, `MAP_STATS`, and the
//! admission maps `ADMISSION`, `ALLOW_V4`, `ALLOW_V6`, `SOURCE_BUCKETS`, `GLOBAL_BUCKET`), `prog-xdp`,
//! `prog-tc`, `link-<interface>-<mode>` per attached interface, and the stamp
//! `layout-v<N>` (a directory: a bpffs holds no plain files), [`PIN_LAYOUT_VERSION`].
//!
//! The pinned programs keep running between daemons and are adopted as they are, so what
//! they share with the next daemon is an interface: adoption checks the stamp and every
//! map's type, key size, value size and max entries (the flow table's size excepted: it is
//! the pinned one) and refuses any difference, before anything is changed.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use aya::maps::MapType;
use aya::{
    maps::{MapData, MapError},
    programs::{ProgramError, SchedClassifier, Xdp},
};
use aya_obj::programs::XdpAttachType;
use log::{info, warn};
use reflector_common::maps::{
    ADMISSION, ALLOW_LEN, ALLOW_V4, ALLOW_V6, FLOWS, GLOBAL_BUCKET, LOCAL_ADDRS, LOCAL_ADDRS_LEN,
    MAP_STATS, MAP_STATS_LEN, PIN_LAYOUT_VERSION, PORTS, PORTS_LEN, SOURCE_BUCKETS,
    SOURCE_BUCKETS_LEN, STATS,
};
use reflector_common::{AdmissionConfig, Counter, FlowKey, FlowValue, PortEntry, STATS_LEN};
use thiserror::Error;

use crate::mode::Attach;

/// The pinned XDP program.
pub(crate) const PROG_XDP: &str = "prog-xdp";
/// The pinned TC program.
pub(crate) const PROG_TC: &str = "prog-tc";
/// The pinned maps; [`PORTS`] is pinned last and marks a complete directory.
pub(crate) const MAPS: [&str; 10] = [
    FLOWS,
    LOCAL_ADDRS,
    STATS,
    MAP_STATS,
    ADMISSION,
    ALLOW_V4,
    ALLOW_V6,
    SOURCE_BUCKETS,
    GLOBAL_BUCKET,
    PORTS,
];
const LINK_PREFIX: &str = "link-";
/// The layout stamp's name, before its version.
const LAYOUT_PREFIX: &str = "layout-v";
/// `statfs(2)` type of a bpffs.
const BPF_FS_MAGIC: u64 = 0xcafe_4a11;

/// The pin directory cannot be used.
#[derive(Debug, Error)]
pub enum PinDirError {
    /// Not on a bpffs.
    #[error(
        "{} is not on a BPF filesystem (bpffs); mount one first: `mount -t bpf bpf /sys/fs/bpf`",
        path.display()
    )]
    NotBpffs {
        /// The directory.
        path: PathBuf,
    },
    /// A file system operation failed.
    #[error("{}", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A pinned map cannot be opened.
    #[error("opening the pinned map {} failed", path.display())]
    Map {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: MapError,
    },
    /// The pinned state is of another layout than this daemon's.
    #[error(
        "{} holds a pinned reflector of another layout: {difference}; this reflector cannot \
         adopt it. Run `reflector detach --pin {}` (reflection stops until the start) and \
         start again",
        path.display(),
        path.display()
    )]
    Layout {
        /// The directory.
        path: PathBuf,
        /// What differs.
        difference: String,
    },
    /// A pinned program cannot be opened.
    #[error("opening the pinned program {} failed", path.display())]
    Program {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: ProgramError,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PinDirError {
    let path = path.to_owned();
    move |source| PinDirError::Io { path, source }
}

/// A pinned link found in the directory.
#[derive(Debug)]
pub(crate) struct PinnedLinkFile {
    /// The interface it is attached to.
    pub interface: String,
    /// How.
    pub attach: Attach,
    /// The pin.
    pub path: PathBuf,
}

/// What a complete pin directory holds.
pub(crate) struct PinnedState {
    /// The port table.
    pub ports: MapData,
    /// The local addresses.
    pub local_addrs: MapData,
    /// The flow table.
    pub flows: MapData,
    /// The counters.
    pub stats: MapData,
    /// The per-map counters.
    pub map_stats: MapData,
    /// The admission configuration entry.
    pub admission: MapData,
    /// The IPv4 allow-list.
    pub allow_v4: MapData,
    /// The IPv6 allow-list.
    pub allow_v6: MapData,
    /// The per-prefix new-flow buckets.
    pub source_buckets: MapData,
    /// The global new-flow bucket.
    pub global_bucket: MapData,
    /// The XDP program.
    pub xdp: Xdp,
    /// The TC program.
    pub tc: SchedClassifier,
    /// The links.
    pub links: Vec<PinnedLinkFile>,
}

/// The file name of the link of `interface` attached as `attach`.
#[must_use]
pub(crate) fn link_file_name(interface: &str, attach: Attach) -> String {
    format!("{LINK_PREFIX}{interface}-{attach}")
}

fn parse_link_file_name(name: &str) -> Option<(String, Attach)> {
    let rest = name.strip_prefix(LINK_PREFIX)?;
    [Attach::XdpGeneric, Attach::XdpNative, Attach::Tc]
        .into_iter()
        .find_map(|attach| {
            let interface = rest.strip_suffix(&format!("-{attach}"))?;
            (!interface.is_empty()).then(|| (interface.to_owned(), attach))
        })
}

/// Checks that `dir` is (or would be) on a bpffs, and creates it.
///
/// # Errors
/// [`PinDirError::NotBpffs`], or [`PinDirError::Io`] when it cannot be created.
pub(crate) fn prepare_dir(dir: &Path) -> Result<(), PinDirError> {
    let existing = dir
        .ancestors()
        .find(|path| path.exists())
        .unwrap_or_else(|| Path::new("/"));
    if !is_bpffs(existing)? {
        return Err(PinDirError::NotBpffs {
            path: dir.to_owned(),
        });
    }
    fs::create_dir_all(dir).map_err(io_error(dir))
}

/// Whether `path` is on a bpffs.
///
/// # Errors
/// [`PinDirError::Io`] when `statfs(2)` fails (e.g. `path` does not exist).
pub(crate) fn is_bpffs(path: &Path) -> Result<bool, PinDirError> {
    let stat = rustix::fs::statfs(path).map_err(|errno| PinDirError::Io {
        path: path.to_owned(),
        source: errno.into(),
    })?;
    Ok(u64::try_from(stat.f_type).unwrap_or_default() == BPF_FS_MAGIC)
}

/// Mounts a bpffs on `dir` (created when missing) unless `dir` is one already; returns
/// whether it mounted. Needs `CAP_SYS_ADMIN`.
///
/// # Errors
/// [`PinDirError::Io`] when `dir` cannot be created or the mount fails.
pub(crate) fn mount_bpffs(dir: &Path) -> Result<bool, PinDirError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    if is_bpffs(dir)? {
        return Ok(false);
    }
    rustix::mount::mount(
        "bpf",
        dir,
        "bpf",
        rustix::mount::MountFlags::empty(),
        c"mode=0700",
    )
    .map_err(|errno| PinDirError::Io {
        path: dir.to_owned(),
        source: errno.into(),
    })?;
    Ok(true)
}

/// The pinned links in `dir`.
///
/// # Errors
/// [`PinDirError::Io`] when `dir` cannot be listed.
pub(crate) fn links(dir: &Path) -> Result<Vec<PinnedLinkFile>, PinDirError> {
    let mut links = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        if let Some((interface, attach)) = name.to_str().and_then(parse_link_file_name) {
            links.push(PinnedLinkFile {
                interface,
                attach,
                path: entry.path(),
            });
        }
    }
    links.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(links)
}

/// Opens what `dir` holds, or `None` when it holds no complete pinned reflector (then any
/// partial leftovers are removed, so pinning anew can start clean).
///
/// # Errors
/// [`PinDirError`] when a pin is there but cannot be opened.
pub(crate) fn open(dir: &Path) -> Result<Option<PinnedState>, PinDirError> {
    if !dir.join(PORTS).exists() {
        if remove_pins(dir)? > 0 {
            warn!("{}: removed an incomplete earlier pin", dir.display());
        }
        return Ok(None);
    }
    let map = |name: &str| {
        let path = dir.join(name);
        MapData::from_pin(&path).map_err(|source| PinDirError::Map { path, source })
    };
    let program_error = |name: &str| {
        let path = dir.join(name);
        move |source| PinDirError::Program { path, source }
    };
    let (ports, local_addrs, flows, stats, map_stats) = (
        map(PORTS)?,
        map(LOCAL_ADDRS)?,
        map(FLOWS)?,
        map(STATS)?,
        map(MAP_STATS)?,
    );
    let (admission, allow_v4, allow_v6, source_buckets, global_bucket) = (
        map(ADMISSION)?,
        map(ALLOW_V4)?,
        map(ALLOW_V6)?,
        map(SOURCE_BUCKETS)?,
        map(GLOBAL_BUCKET)?,
    );
    let maps = [
        (PORTS, &ports),
        (LOCAL_ADDRS, &local_addrs),
        (FLOWS, &flows),
        (STATS, &stats),
        (MAP_STATS, &map_stats),
        (ADMISSION, &admission),
        (ALLOW_V4, &allow_v4),
        (ALLOW_V6, &allow_v6),
        (SOURCE_BUCKETS, &source_buckets),
        (GLOBAL_BUCKET, &global_bucket),
    ];
    let difference =
        layout_difference(&layout_stamps(dir)?, &maps).map_err(|source| PinDirError::Map {
            path: dir.to_owned(),
            source,
        })?;
    if let Some(difference) = difference {
        return Err(PinDirError::Layout {
            path: dir.to_owned(),
            difference,
        });
    }
    Ok(Some(PinnedState {
        ports,
        local_addrs,
        flows,
        stats,
        map_stats,
        admission,
        allow_v4,
        allow_v6,
        source_buckets,
        global_bucket,
        xdp: Xdp::from_pin(dir.join(PROG_XDP), XdpAttachType::Interface)
            .map_err(program_error(PROG_XDP))?,
        tc: SchedClassifier::from_pin(dir.join(PROG_TC)).map_err(program_error(PROG_TC))?,
        links: links(dir)?,
    }))
}

/// What this daemon needs of a pinned map.
struct MapLayout {
    name: &'static str,
    map_type: MapType,
    key_size: usize,
    value_size: usize,
    /// `None`: any (the flow table keeps the size it was pinned with).
    max_entries: Option<u32>,
}

/// The maps of [`PIN_LAYOUT_VERSION`].
const LAYOUT: [MapLayout; 10] = [
    MapLayout {
        name: PORTS,
        map_type: MapType::Array,
        key_size: size_of::<u32>(),
        value_size: size_of::<PortEntry>(),
        max_entries: Some(PORTS_LEN),
    },
    MapLayout {
        name: LOCAL_ADDRS,
        map_type: MapType::Hash,
        key_size: size_of::<[u8; 16]>(),
        value_size: size_of::<u32>(),
        max_entries: Some(LOCAL_ADDRS_LEN),
    },
    MapLayout {
        name: FLOWS,
        map_type: MapType::LruHash,
        key_size: size_of::<FlowKey>(),
        value_size: size_of::<FlowValue>(),
        max_entries: None,
    },
    MapLayout {
        name: STATS,
        map_type: MapType::PerCpuArray,
        key_size: size_of::<u32>(),
        value_size: size_of::<Counter>(),
        max_entries: Some(STATS_LEN),
    },
    MapLayout {
        name: MAP_STATS,
        map_type: MapType::PerCpuArray,
        key_size: size_of::<u32>(),
        value_size: size_of::<Counter>(),
        max_entries: Some(MAP_STATS_LEN),
    },
    MapLayout {
        name: ADMISSION,
        map_type: MapType::Array,
        key_size: size_of::<u32>(),
        value_size: size_of::<AdmissionConfig>(),
        max_entries: Some(1),
    },
    // An LPM trie's key is the prefix length (u32) and the address.
    MapLayout {
        name: ALLOW_V4,
        map_type: MapType::LpmTrie,
        key_size: size_of::<u32>() + 4,
        value_size: size_of::<u32>(),
        max_entries: Some(ALLOW_LEN),
    },
    MapLayout {
        name: ALLOW_V6,
        map_type: MapType::LpmTrie,
        key_size: size_of::<u32>() + 16,
        value_size: size_of::<u32>(),
        max_entries: Some(ALLOW_LEN),
    },
    MapLayout {
        name: SOURCE_BUCKETS,
        map_type: MapType::LruHash,
        key_size: 16,
        value_size: size_of::<u64>(),
        max_entries: Some(SOURCE_BUCKETS_LEN),
    },
    MapLayout {
        name: GLOBAL_BUCKET,
        map_type: MapType::Array,
        key_size: size_of::<u32>(),
        value_size: size_of::<u64>(),
        max_entries: Some(1),
    },
];

/// Stamps `dir` with this daemon's layout version. Done before the port table is pinned,
/// which marks the directory complete.
///
/// # Errors
/// [`PinDirError::Io`] when the stamp cannot be made.
pub(crate) fn stamp_layout(dir: &Path) -> Result<(), PinDirError> {
    let path = dir.join(format!("{LAYOUT_PREFIX}{PIN_LAYOUT_VERSION}"));
    match fs::create_dir(&path) {
        Err(error) if error.kind() != io::ErrorKind::AlreadyExists => Err(PinDirError::Io {
            path,
            source: error,
        }),
        _ => Ok(()),
    }
}

/// The layout stamps in `dir`.
fn layout_stamps(dir: &Path) -> Result<Vec<String>, PinDirError> {
    let mut stamps = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let name = entry.map_err(io_error(dir))?.file_name();
        if let Some(name) = name.to_str().filter(|name| name.starts_with(LAYOUT_PREFIX)) {
            stamps.push(name.to_owned());
        }
    }
    stamps.sort();
    Ok(stamps)
}

/// What differs between the state pinned in `dir` (its stamps and `maps`) and this daemon's
/// layout, if anything.
fn layout_difference(
    stamps: &[String],
    maps: &[(&'static str, &MapData)],
) -> Result<Option<String>, MapError> {
    let ours = format!("{LAYOUT_PREFIX}{PIN_LAYOUT_VERSION}");
    match stamps {
        [] => {
            return Ok(Some(format!(
                "it has no layout stamp (pinned by a reflector older than layout versions), \
                 this reflector uses layout {PIN_LAYOUT_VERSION}"
            )));
        }
        [stamp] if *stamp == ours => {}
        stamps => {
            return Ok(Some(format!(
                "it is stamped {}, this reflector uses layout {PIN_LAYOUT_VERSION}",
                stamps.join(", ")
            )));
        }
    }
    for expected in &LAYOUT {
        let Some((_, map)) = maps.iter().find(|(name, _)| *name == expected.name) else {
            continue;
        };
        let info = map.info()?;
        let found = (
            info.map_type().ok(),
            info.key_size() as usize,
            info.value_size() as usize,
            info.max_entries(),
        );
        let wanted = (
            Some(expected.map_type),
            expected.key_size,
            expected.value_size,
            expected.max_entries.unwrap_or(found.3),
        );
        if found != wanted {
            return Ok(Some(format!(
                "map {}: {} with key size {}, value size {}, max entries {}; this reflector \
                 needs {:?} with key size {}, value size {}, max entries {}",
                expected.name,
                found
                    .0
                    .map_or_else(|| "unknown type".to_owned(), |t| format!("{t:?}")),
                found.1,
                found.2,
                found.3,
                expected.map_type,
                wanted.1,
                wanted.2,
                expected
                    .max_entries
                    .map_or_else(|| "any".to_owned(), |n| n.to_string()),
            )));
        }
    }
    Ok(None)
}

/// Unpins `link`, which detaches it.
pub(crate) fn remove_link(link: &PinnedLinkFile) {
    match fs::remove_file(&link.path) {
        Ok(()) => info!(
            "{}: detached the pinned {} link",
            link.interface, link.attach
        ),
        Err(error) => warn!("{}: {error}", link.path.display()),
    }
}

/// Removes every reflector pin in `dir` (links first, which detaches them), then `dir`
/// itself when that leaves it empty. Returns how many pins were removed.
///
/// # Errors
/// [`PinDirError::Io`] when a pin cannot be removed.
pub(crate) fn remove_all(dir: &Path) -> Result<usize, PinDirError> {
    if !dir.exists() {
        return Ok(0);
    }
    let removed = remove_pins(dir)?;
    // Only when empty: anything else in the directory is not ours.
    let _ = fs::remove_dir(dir);
    Ok(removed)
}

/// Removes every reflector pin in `dir`, links first. Returns how many were removed.
fn remove_pins(dir: &Path) -> Result<usize, PinDirError> {
    let mut removed = 0;
    for link in links(dir)? {
        fs::remove_file(&link.path).map_err(io_error(&link.path))?;
        removed += 1;
    }
    for name in MAPS.iter().chain(&[PROG_XDP, PROG_TC]) {
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(PinDirError::Io { path, source }),
        }
    }
    for stamp in layout_stamps(dir)? {
        let path = dir.join(stamp);
        fs::remove_dir(&path).map_err(io_error(&path))?;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::{link_file_name, parse_link_file_name};
    use crate::mode::Attach;

    #[test]
    fn link_file_names_round_trip() {
        for interface in ["eth0", "veth-a", "x-xdp", "br-tc"] {
            for attach in [Attach::XdpNative, Attach::XdpGeneric, Attach::Tc] {
                let name = link_file_name(interface, attach);
                assert_eq!(
                    parse_link_file_name(&name),
                    Some((interface.to_owned(), attach)),
                    "{name}"
                );
            }
        }
        assert_eq!(parse_link_file_name("PORTS"), None);
        assert_eq!(parse_link_file_name("link--tc"), None);
    }
}
