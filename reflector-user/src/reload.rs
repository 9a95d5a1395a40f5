//! SIGHUP, or a changed config file: read the settings again and apply only what
//! changed, or nothing at all.

use std::fmt;

use log::{error, info, warn};

use crate::{
    kernel::KernelPath,
    portmap::PortMap,
    settings::{Settings, Sources},
    splice::Userspace,
};

/// What asked for a reload; it starts each line the reload logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP (`systemctl reload`, `kill -HUP`).
    Hangup,
    /// The config file changed on disk (an edit, a Kubernetes ConfigMap update).
    FileChanged,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hangup => "SIGHUP",
            Self::FileChanged => "config file changed",
        })
    }
}

/// Reloads from `sources` and applies the difference to `current`. Port maps change at once,
/// in the userspace listeners and the kernel program alike; flows of maps that stay are not
/// touched. A file that fails to parse or check, or maps that cannot be applied (a listen
/// port another program holds), leave everything as it was, and say why.
pub fn reload(
    trigger: Trigger,
    sources: &Sources,
    current: &mut Settings,
    kernel: Option<&mut KernelPath>,
    userspace: &mut Userspace,
) {
    let Some(path) = &sources.config else {
        info!("{trigger}: no --config file to read again; nothing changed");
        return;
    };
    let new = match sources.load() {
        Ok(new) => new,
        Err(error) => {
            error!(
                "{trigger}: {error}; kept the running settings (config file {})",
                path.display()
            );
            return;
        }
    };
    if new == *current {
        info!("{trigger}: {} unchanged", path.display());
        return;
    }
    if same_maps(&new.maps, &current.maps) {
        info!("{trigger}: port maps unchanged");
    } else if let Err(why) = apply_maps(&current.maps, &new.maps, kernel, userspace) {
        error!("{trigger}: {why}; kept the running settings");
        return;
    } else {
        info!(
            "{trigger}: port maps now {} (added: {}; removed: {})",
            list(&new.maps),
            list(&difference(&new.maps, &current.maps)),
            list(&difference(&current.maps, &new.maps)),
        );
        current.maps.clone_from(&new.maps);
    }
    let restart = [
        (new.interfaces != current.interfaces, "interfaces"),
        (new.mode != current.mode, "mode"),
        (
            new.flow_table_size != current.flow_table_size,
            "flow-table-size",
        ),
        (
            new.splice != current.splice,
            "the userspace limits and timeouts",
        ),
        (new.metrics != current.metrics, "metrics"),
        (
            new.control_socket != current.control_socket,
            "control-socket",
        ),
        (new.pin != current.pin, "pin"),
    ];
    for (changed, what) in restart {
        if changed {
            warn!(
                "{trigger}: {what} changed in {}; that takes a restart, the running value stays",
                path.display()
            );
        }
    }
}

/// Moves both paths from `old` to `new`: userspace first (it fails as a whole when a port
/// is taken), then the kernel; a kernel failure puts userspace back.
pub(crate) fn apply_maps(
    old: &[PortMap],
    new: &[PortMap],
    kernel: Option<&mut KernelPath>,
    userspace: &mut Userspace,
) -> Result<(), String> {
    userspace.apply(new).map_err(|error| error.to_string())?;
    if let Some(kernel) = kernel
        && let Err(error) = kernel.set_port_maps(old, new)
    {
        let why = format!("{:#}", anyhow::Error::from(error));
        // The sockets of `old` are still open, as `new` did not remove them... unless it
        // did: reopening can only fail if another program took a port meanwhile.
        if let Err(undo) = userspace.apply(old) {
            error!("putting the userspace listeners back failed too: {undo}");
        }
        if let Err(undo) = kernel.set_port_maps(new, old) {
            error!("putting the kernel port table back failed too: {undo}");
        }
        return Err(why);
    }
    Ok(())
}

fn same_maps(a: &[PortMap], b: &[PortMap]) -> bool {
    difference(a, b).is_empty() && difference(b, a).is_empty()
}

fn difference(a: &[PortMap], b: &[PortMap]) -> Vec<PortMap> {
    a.iter().filter(|map| !b.contains(map)).cloned().collect()
}

pub(crate) fn list(maps: &[PortMap]) -> String {
    if maps.is_empty() {
        return "none".to_owned();
    }
    let names: Vec<String> = maps.iter().map(ToString::to_string).collect();
    names.join(" ")
}
