//! The daemon: sets up the kernel path, keeps it current, and tears it down when the
//! shutdown future completes. It takes shutdown as a future so tests can run it in-process.

use std::{error::Error as StdError, fmt::Write as _, future::Future};

use log::{info, warn};
use rtnetlink::{
    constants::{RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR},
    sys::{AsyncSocket as _, SocketAddr},
};
use thiserror::Error;

use crate::{
    ebpf_object::{NOT_BUILT_IN, kernel_object},
    interfaces::{self, InterfaceError},
    kernel::{KernelError, KernelPath, LoadOptions},
    local_addrs::{self, LocalAddrsError},
    settings::Settings,
};

/// The daemon could not start, or stopped on an error.
#[derive(Debug, Error)]
pub enum DaemonError {
    /// This binary has no kernel program in it.
    #[error("{NOT_BUILT_IN}")]
    NotBuiltIn,
    /// An interface could not be resolved.
    #[error(transparent)]
    Interface(#[from] InterfaceError),
    /// The kernel program could not be loaded or set up.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// No attach mode worked on an interface.
    #[error("cannot reflect on {interface}: {reasons}")]
    NoAttach {
        /// The interface.
        interface: String,
        /// Each mode tried and why it failed.
        reasons: String,
    },
    /// The local addresses could not be tracked.
    #[error(transparent)]
    LocalAddrs(#[from] LocalAddrsError),
    /// No netlink socket.
    #[error("opening a netlink socket failed")]
    Netlink(#[source] std::io::Error),
}

/// Runs the reflector until `shutdown` completes, then detaches everything.
///
/// # Errors
/// [`DaemonError`] when setting up fails or tracking local addresses stops working.
pub async fn run(
    settings: &Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let object = kernel_object().ok_or(DaemonError::NotBuiltIn)?;

    let (mut connection, handle, address_events) =
        rtnetlink::new_connection().map_err(DaemonError::Netlink)?;
    connection
        .socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
        .map_err(DaemonError::Netlink)?;
    tokio::spawn(connection);

    let interfaces = interfaces::resolve(&handle, &settings.interfaces).await?;
    let mut kernel = KernelPath::load(
        object,
        LoadOptions {
            flow_table_size: settings.flow_table_size,
            debug_events: log::log_enabled!(target: "reflector", log::Level::Debug),
        },
    )?;
    kernel.set_port_maps(&[], &settings.maps)?;
    let mut local_addrs = kernel.take_local_addrs()?;
    local_addrs::sync(&handle, &mut local_addrs).await?;
    let follow = local_addrs::follow(handle, local_addrs, address_events);

    for interface in &interfaces {
        let mut reasons = String::new();
        for &attach in settings.mode.candidates(interface) {
            match kernel.attach(interface, attach) {
                Ok(()) => {
                    let skipped = if reasons.is_empty() {
                        String::new()
                    } else {
                        format!(" (skipped:{reasons})")
                    };
                    info!("{}: reflecting with {attach}{skipped}", interface.name);
                    reasons.clear();
                    break;
                }
                Err(error) => {
                    let _ = write!(reasons, " {attach}: {}", chain(&error));
                }
            }
        }
        if !reasons.is_empty() {
            return Err(DaemonError::NoAttach {
                interface: interface.name.clone(),
                reasons: reasons.trim_start().to_owned(),
            });
        }
    }

    let maps: Vec<String> = settings.maps.iter().map(ToString::to_string).collect();
    let attached: Vec<String> = kernel
        .attached()
        .map(|(interface, attach)| format!("{} ({attach})", interface.name))
        .collect();
    info!(
        "ready: reflecting {} on {}",
        maps.join(" "),
        attached.join(", ")
    );

    let outcome = tokio::select! {
        () = shutdown => Ok(()),
        result = follow => {
            warn!("stopped following address changes");
            result.map_err(DaemonError::from)
        }
    };
    kernel.detach_all();
    info!("detached from every interface; exiting");
    outcome
}

/// An error and its sources on one line.
fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}
