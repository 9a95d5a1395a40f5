//! Starting the data paths: the userspace listeners first (a port another program holds
//! fails before anything is attached), then the kernel program on each interface in the
//! best way that works there.

use log::{info, warn};
use thiserror::Error;

use super::Dataplane;
use crate::{
    admission::AdmissionSettings,
    ebpf_object::{NOT_BUILT_IN, kernel_object},
    error_text,
    interfaces::Interface,
    kernel::{KernelError, KernelPath, LoadOptions},
    mode::Mode,
    pin::PinDirError,
    portmap,
    settings::Settings,
    splice::{ListenError, Userspace},
};

/// The kernel path could not be started where the mode asks for it.
#[derive(Debug, Error)]
pub enum StartError {
    /// This binary has no kernel program in it, and a kernel mode was asked for.
    #[error("{NOT_BUILT_IN}")]
    NotBuiltIn,
    /// The kernel program could not be loaded or set up.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The pin directory holds state that cannot be adopted; falling back to splice would
    /// leave its programs reflecting beside the listeners, so it is the operator's to solve.
    #[error(transparent)]
    Pin(#[from] PinDirError),
    /// No attach mode worked on an interface.
    #[error("cannot reflect on {interface}: {reasons}; --mode auto would fall back to splice")]
    NoAttach {
        /// The interface.
        interface: String,
        /// Each mode tried and why it failed.
        reasons: String,
    },
}

impl Dataplane {
    /// Listens on every mapped port in userspace; the kernel path comes next
    /// ([`Dataplane::start_kernel`]).
    ///
    /// # Errors
    /// [`ListenError`] when a port cannot be listened on.
    pub(crate) fn listen(settings: &Settings) -> Result<Self, ListenError> {
        crate::splice::fd_limit::raise(&settings.splice);
        let mut userspace = Userspace::new(settings.splice, settings.admission.admission());
        userspace.apply(&settings.maps)?;
        info!(
            "userspace: listening on {} (IPv4 and IPv6) for whatever no kernel program reflects",
            portmap::list(&settings.maps)
        );
        log_admission(&settings.admission);
        Ok(Self {
            kernel: None,
            userspace,
            maps: settings.maps.clone(),
            admission: settings.admission.clone(),
        })
    }

    /// Loads the kernel program and attaches it to each interface in the best way that
    /// works. In `auto` mode, an interface where nothing attaches (or every interface, when
    /// the program cannot be loaded at all) is left to the userspace path; other modes give
    /// up instead. In splice mode, nothing is loaded.
    ///
    /// # Errors
    /// [`StartError`] when a mode other than `auto` cannot be had, or pinned state cannot
    /// be adopted.
    pub(crate) fn start_kernel(
        &mut self,
        settings: &Settings,
        interfaces: &[Interface],
    ) -> Result<(), StartError> {
        if settings.mode == Mode::Splice {
            for interface in interfaces {
                info!("{}: reflecting with splice", interface.name);
            }
            return Ok(());
        }
        let fall_back = settings.mode == Mode::Auto;
        let mut kernel = match load(settings) {
            Ok(kernel) => kernel,
            Err(StartError::Kernel(KernelError::Pin(error))) => return Err(error.into()),
            Err(error) if fall_back => {
                let why = error_text::render(&error);
                for interface in interfaces {
                    info!(
                        "{}: reflecting with splice (skipped: {}: {why})",
                        interface.name,
                        kernel_modes(settings.mode, interface)
                    );
                }
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        for interface in interfaces {
            attach_best(&mut kernel, settings.mode, interface)?;
        }
        kernel.release_unadopted();
        if kernel.attached().next().is_some() {
            self.kernel = Some(kernel);
        }
        Ok(())
    }
}

/// Attaches `kernel` to `interface` in the first of the mode's candidates that works,
/// adopting a pinned link of one of them when there is one.
fn attach_best(
    kernel: &mut KernelPath,
    mode: Mode,
    interface: &Interface,
) -> Result<(), StartError> {
    let candidates = mode.candidates(interface);
    if let Some(attach) = kernel.adopt_link(interface, candidates) {
        info!(
            "{}: reflecting with {attach} (adopted: stayed attached)",
            interface.name
        );
        return Ok(());
    }
    let mut reasons = Vec::new();
    let mut chosen = None;
    for &attach in candidates {
        match kernel.attach(interface, attach) {
            Ok(()) => {
                chosen = Some(attach);
                break;
            }
            Err(error) => reasons.push(format!("{attach}: {}", error_text::render(&error))),
        }
    }
    let skipped = if reasons.is_empty() {
        String::new()
    } else {
        format!(" (skipped: {})", reasons.join("; "))
    };
    match chosen {
        Some(attach) => info!("{}: reflecting with {attach}{skipped}", interface.name),
        None if mode == Mode::Auto => {
            info!("{}: reflecting with splice{skipped}", interface.name);
        }
        None => {
            return Err(StartError::NoAttach {
                interface: interface.name.clone(),
                reasons: reasons.join("; "),
            });
        }
    }
    Ok(())
}

/// Loads the program (or adopts it from the pin directory) and fills its port table.
fn load(settings: &Settings) -> Result<KernelPath, StartError> {
    let object = kernel_object().ok_or(StartError::NotBuiltIn)?;
    let options = LoadOptions {
        flow_table_size: settings.flow_table_size,
        debug_events: log::log_enabled!(target: "reflector", log::Level::Debug),
    };
    let mut kernel = match &settings.pin {
        Some(dir) => KernelPath::pinned(object, options, dir)?,
        None => KernelPath::load(object, options)?,
    };
    if kernel.is_adopted() {
        kernel.set_port_maps_adopted(&settings.maps)?;
    } else {
        kernel.set_port_maps(&[], &settings.maps)?;
    }
    kernel.set_admission_adopted(&settings.admission)?;
    Ok(kernel)
}

/// Says who may open new flows and how often; warns when every source may.
pub(super) fn log_admission(admission: &AdmissionSettings) {
    if admission.allow.is_empty() {
        warn!(
            "reflecting for every source: anyone who can reach this host can make it send \
             packets to an address they claim; give --allow CIDR (your nodes' networks) to \
             reflect for them only"
        );
    } else {
        info!("reflecting for sources in {}", admission.allow_list());
    }
    info!("new flows: {}", admission.limits());
}

/// The kernel modes `mode` would try on `interface`, as `tc, xdp, xdp-skb`.
fn kernel_modes(mode: Mode, interface: &Interface) -> String {
    let names: Vec<String> = mode
        .candidates(interface)
        .iter()
        .map(ToString::to_string)
        .collect();
    names.join(", ")
}
