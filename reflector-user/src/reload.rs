//! SIGHUP, or a changed config file: read the settings again and apply only what
//! changed, or nothing at all.

use std::fmt;

use log::{error, info, warn};

use crate::{
    dataplane::Dataplane,
    error_text,
    portmap::{self, PortMap},
    settings::{Settings, Sources},
};

/// What asked for a reload; it starts each line the reload logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
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

/// Reloads from `sources` and applies the difference to `dataplane`, which holds the port
/// maps and the admission settings in force (the control socket changes them too). Port maps
/// change at once, in the userspace listeners and the kernel program alike; flows of maps
/// that stay are not touched. A file that fails to parse or check, or maps that cannot be
/// applied (a listen port another program holds), leave everything as it was, and say why.
/// What only a restart changes is compared with `started`, the settings the daemon runs with.
pub(crate) fn reload(
    trigger: Trigger,
    sources: &Sources,
    started: &Settings,
    dataplane: &mut Dataplane,
) {
    let Some(path) = &sources.config else {
        info!("{trigger}: no --config file to read again; nothing changed");
        return;
    };
    let new = match sources.load() {
        Ok(new) => new,
        Err(error) => {
            error!(
                "{trigger}: {}; kept the running settings (config file {})",
                error_text::render(&error),
                path.display()
            );
            return;
        }
    };
    let old_maps = dataplane.maps().to_vec();
    let old_admission = dataplane.admission().clone();
    let maps_changed = !same_maps(&new.maps, &old_maps);
    let admission_changed = new.admission != old_admission;
    let restart = [
        (new.interfaces != started.interfaces, "interfaces"),
        (new.mode != started.mode, "mode"),
        (
            new.flow_table_size != started.flow_table_size,
            "flow-table-size",
        ),
        (
            new.splice != started.splice,
            "the userspace limits and timeouts",
        ),
        (new.metrics != started.metrics, "metrics"),
        (
            new.control_socket != started.control_socket,
            "control-socket",
        ),
        (new.pin != started.pin, "pin"),
    ];
    if !maps_changed && !admission_changed && restart.iter().all(|(changed, _)| !changed) {
        info!("{trigger}: {} unchanged", path.display());
        return;
    }
    // Admission first: its kernel writes are undone inside on failure, and a failure of the
    // maps after it puts it back, so the reload is all or nothing.
    if admission_changed && let Err(error) = dataplane.set_admission(new.admission.clone()) {
        error!(
            "{trigger}: {}; kept the running settings",
            error_text::render(&error)
        );
        return;
    }
    if !maps_changed {
        info!("{trigger}: port maps unchanged");
    } else if let Err(error) = dataplane.set_maps(new.maps.clone()) {
        if admission_changed && let Err(undo) = dataplane.set_admission(old_admission) {
            error!(
                "{trigger}: putting the allow-list and limits back failed too: {}",
                error_text::render(&undo)
            );
        }
        error!(
            "{trigger}: {}; kept the running settings",
            error_text::render(&error)
        );
        return;
    } else {
        info!(
            "{trigger}: port maps now {} (added: {}; removed: {})",
            portmap::list(&new.maps),
            portmap::list(&difference(&new.maps, &old_maps)),
            portmap::list(&difference(&old_maps, &new.maps)),
        );
    }
    if admission_changed {
        info!(
            "{trigger}: reflecting for {}; new flows: {}",
            new.admission.allow_list(),
            new.admission.limits()
        );
    }
    for (changed, what) in restart {
        if changed {
            warn!(
                "{trigger}: {what} changed in {}; that takes a restart, the running value stays",
                path.display()
            );
        }
    }
}

fn same_maps(a: &[PortMap], b: &[PortMap]) -> bool {
    difference(a, b).is_empty() && difference(b, a).is_empty()
}

fn difference(a: &[PortMap], b: &[PortMap]) -> Vec<PortMap> {
    a.iter().filter(|map| !b.contains(map)).cloned().collect()
}
