//! The pin directory (`--pin DIR`, on a bpffs): the kernel program's maps, programs and
//! links live on there after the daemon exits, for the next daemon to adopt, until
//! `reflector detach --pin DIR` removes them.
//!
//! Layout: one file per map (`PORTS`, `LOCAL_ADDRS`, `FLOWS`, `STATS`, `MAP_STATS`), `prog-xdp`,
//! `prog-tc`, and `link-<interface>-<mode>` per attached interface.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use aya::{
    maps::{MapData, MapError},
    programs::{ProgramError, SchedClassifier, Xdp},
};
use aya_obj::programs::XdpAttachType;
use log::{info, warn};
use reflector_common::maps::{FLOWS, LOCAL_ADDRS, MAP_STATS, PORTS, STATS};
use thiserror::Error;

use crate::mode::Attach;

/// The pinned XDP program.
pub const PROG_XDP: &str = "prog-xdp";
/// The pinned TC program.
pub const PROG_TC: &str = "prog-tc";
/// The pinned maps; [`PORTS`] is pinned last and marks a complete directory.
pub const MAPS: [&str; 5] = [FLOWS, LOCAL_ADDRS, STATS, MAP_STATS, PORTS];
const LINK_PREFIX: &str = "link-";
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
    #[error("{}: {source}", path.display())]
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
pub struct PinnedLinkFile {
    /// The interface it is attached to.
    pub interface: String,
    /// How.
    pub attach: Attach,
    /// The pin.
    pub path: PathBuf,
}

/// What a complete pin directory holds.
pub struct PinnedState {
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
    /// The XDP program.
    pub xdp: Xdp,
    /// The TC program.
    pub tc: SchedClassifier,
    /// The links.
    pub links: Vec<PinnedLinkFile>,
}

/// The file name of the link of `interface` attached as `attach`.
#[must_use]
pub fn link_file_name(interface: &str, attach: Attach) -> String {
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
pub fn prepare_dir(dir: &Path) -> Result<(), PinDirError> {
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
pub fn is_bpffs(path: &Path) -> Result<bool, PinDirError> {
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
pub fn mount_bpffs(dir: &Path) -> Result<bool, PinDirError> {
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
pub fn links(dir: &Path) -> Result<Vec<PinnedLinkFile>, PinDirError> {
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
pub fn open(dir: &Path) -> Result<Option<PinnedState>, PinDirError> {
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
    Ok(Some(PinnedState {
        ports: map(PORTS)?,
        local_addrs: map(LOCAL_ADDRS)?,
        flows: map(FLOWS)?,
        stats: map(STATS)?,
        map_stats: map(MAP_STATS)?,
        xdp: Xdp::from_pin(dir.join(PROG_XDP), XdpAttachType::Interface)
            .map_err(program_error(PROG_XDP))?,
        tc: SchedClassifier::from_pin(dir.join(PROG_TC)).map_err(program_error(PROG_TC))?,
        links: links(dir)?,
    }))
}

/// Unpins `link`, which detaches it.
pub fn remove_link(link: &PinnedLinkFile) {
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
pub fn remove_all(dir: &Path) -> Result<usize, PinDirError> {
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
