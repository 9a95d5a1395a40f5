//! The data paths as one: the kernel path where it is attached, the userspace listeners for
//! whatever it does not reflect, and the port maps both serve. Start, SIGHUP, a changed
//! config file and the control socket all change the maps here, all or nothing.

mod start;

use log::{error, info};
use thiserror::Error;

pub(crate) use self::start::StartError;
use crate::{
    admission::AdmissionSettings,
    control::Reply,
    error_text,
    flow_table::FlowTable,
    interfaces::Interface,
    kernel::{KernelError, KernelPath},
    local_addrs::LocalAddrMap,
    portmap::PortMap,
    privileges,
    settings::Settings,
    splice::{ListenError, Userspace},
    telemetry::{InterfaceMode, Telemetry},
};

/// New port maps could not be applied; the old ones are still in place.
#[derive(Debug, Error)]
pub(crate) enum MapsError {
    /// A listen port cannot be listened on (another program holds it).
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The kernel program's port table cannot be written.
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// Both data paths and the port maps they serve.
pub(crate) struct Dataplane {
    kernel: Option<KernelPath>,
    userspace: Userspace,
    maps: Vec<PortMap>,
    admission: AdmissionSettings,
}

impl Dataplane {
    /// The port maps both paths serve now.
    #[must_use]
    pub(crate) fn maps(&self) -> &[PortMap] {
        &self.maps
    }

    /// The reply to a map request: the maps now, with their reply paths when the kernel
    /// path is loaded.
    #[must_use]
    pub(crate) fn maps_reply(&self) -> Reply {
        if self.kernel.is_some() {
            Reply::maps_with_paths(&self.maps, self.admission.flow_table == FlowTable::Always)
        } else {
            Reply::maps(&self.maps)
        }
    }

    /// Moves both paths to `new`: userspace first (it fails as a whole when a port is
    /// taken), then the kernel; a kernel failure puts userspace back. Flows of maps that
    /// stay are not touched.
    ///
    /// # Errors
    /// [`MapsError`]; then nothing changed.
    pub(crate) fn set_maps(&mut self, new: Vec<PortMap>) -> Result<(), MapsError> {
        self.userspace.apply(&new)?;
        if let Some(kernel) = self.kernel.as_mut()
            && let Err(failure) = kernel.set_port_maps(&self.maps, &new)
        {
            // The sockets of the old maps are still open, as `new` did not remove them...
            // unless it did: reopening can only fail if another program took a port since.
            if let Err(undo) = self.userspace.apply(&self.maps) {
                error!(
                    "putting the userspace listeners back failed too: {}",
                    error_text::render(&undo)
                );
            }
            if let Err(undo) = kernel.set_port_maps(&new, &self.maps) {
                error!(
                    "putting the kernel port table back failed too: {}",
                    error_text::render(&undo)
                );
            }
            return Err(failure.into());
        }
        self.maps = new;
        Ok(())
    }

    /// Who may open a new flow and how often, now.
    #[must_use]
    pub(crate) fn admission(&self) -> &AdmissionSettings {
        &self.admission
    }

    /// Moves both paths to `new` admission: the kernel first (all or nothing inside), then
    /// the userspace path, which cannot fail.
    ///
    /// # Errors
    /// [`KernelError`] when the kernel's maps cannot be written; then nothing changed.
    pub(crate) fn set_admission(&mut self, new: AdmissionSettings) -> Result<(), KernelError> {
        if let Some(kernel) = self.kernel.as_mut() {
            kernel.set_admission(&self.admission, &new)?;
        }
        self.userspace.set_admission(new.admission());
        self.admission = new;
        Ok(())
    }

    /// The local-address table, for the task that keeps it current; `None` without a
    /// kernel path (or once taken).
    ///
    /// # Errors
    /// [`KernelError`] when the program has no such map.
    pub(crate) fn take_local_addrs(&mut self) -> Result<Option<LocalAddrMap>, KernelError> {
        self.kernel
            .as_mut()
            .map(KernelPath::take_local_addrs)
            .transpose()
    }

    /// Gives up the capabilities nothing the data paths still do needs ([`privileges`]),
    /// in the calling thread: the one that loaded and attached.
    ///
    /// # Errors
    /// When the kernel refuses to lower them.
    pub(crate) fn drop_privileges(&self) -> std::io::Result<()> {
        privileges::drop_after_start(
            self.kernel.is_some(),
            self.kernel
                .as_ref()
                .is_some_and(KernelPath::detaches_through_netlink),
        )
    }

    /// How each of `interfaces` is reflected: the kernel mode attached to it, else splice.
    #[must_use]
    pub(crate) fn interface_modes(&self, interfaces: &[Interface]) -> Vec<InterfaceMode> {
        interfaces
            .iter()
            .map(|interface| {
                let attach = self.kernel.as_ref().and_then(|kernel| {
                    kernel
                        .attached()
                        .find(|(attached, _)| attached.index == interface.index)
                        .map(|(_, attach)| attach.to_string())
                });
                InterfaceMode {
                    interface: interface.name.clone(),
                    mode: attach.unwrap_or_else(|| "splice".to_owned()),
                }
            })
            .collect()
    }

    /// What reports on the daemon read: the userspace counters, and the kernel program's
    /// counters and flow table when it is loaded.
    ///
    /// # Errors
    /// [`KernelError`] when the kernel maps cannot be opened for reading.
    pub(crate) fn telemetry(
        &self,
        interfaces: Vec<InterfaceMode>,
    ) -> Result<Telemetry, KernelError> {
        let readers = self.kernel.as_ref().map(KernelPath::readers).transpose()?;
        Ok(Telemetry::new(
            self.userspace.shared_counters(),
            readers,
            interfaces,
        ))
    }

    /// Stops both paths. The kernel path is detached, unless it is pinned: then it stays
    /// attached for the next start.
    pub(crate) fn stop(self) {
        if let Some(mut kernel) = self.kernel {
            if let Some(dir) = kernel.pin_dir().map(std::path::Path::to_owned) {
                drop(kernel);
                info!(
                    "left the kernel program attached, pinned at {0}; the next start with \
                     --pin {0} adopts it, `reflector detach --pin {0}` removes it",
                    dir.display()
                );
            } else {
                kernel.detach_all();
                info!("detached from every interface");
            }
        }
        info!("splice: {}", self.userspace.counters());
    }
}

/// The settings the data paths are built from, checked before anything is attached: in
/// splice mode there is nothing to pin, and `--pin` is dropped with a warning.
///
/// # Errors
/// [`crate::pin::PinDirError`] when the pin directory cannot be used.
pub(crate) fn check_pin(settings: &mut Settings) -> Result<(), crate::pin::PinDirError> {
    if let Some(dir) = &settings.pin {
        if settings.mode == crate::mode::Mode::Splice {
            log::warn!(
                "--pin {} is ignored in splice mode: only the kernel modes pin",
                dir.display()
            );
            settings.pin = None;
        } else {
            crate::pin::prepare_dir(dir)?;
        }
    }
    Ok(())
}
