//! The daemon: listens on the mapped ports in userspace, sets up the kernel path where it
//! can, keeps both current, and tears them down when the shutdown future completes. It takes
//! shutdown as a future so tests can run it in-process.

use std::{error::Error as StdError, fmt::Write as _, future::Future, sync::Arc, time::Duration};

use futures::future::{self, Either};
use log::{info, warn};
use rtnetlink::{
    constants::{RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR},
    sys::{AsyncSocket as _, SocketAddr},
};
use thiserror::Error;
use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    sync::mpsc,
};

use crate::{
    config_watch::ConfigWatch,
    control::{
        self, MapChange, Reply,
        server::{ChangeRequest, ControlError, ControlSocket},
    },
    ebpf_object::{NOT_BUILT_IN, kernel_object},
    interfaces::{self, Interface, InterfaceError},
    kernel::{KernelError, KernelPath, LoadOptions},
    local_addrs::{self, LocalAddrsError},
    mode::Mode,
    notify::{Notifier, Watchdog},
    pin::{self, PinDirError},
    reload::{self, Trigger},
    settings::{Settings, Sources},
    splice::{ListenError, Userspace},
    telemetry::{
        InterfaceMode, Telemetry,
        http::{self, BindError},
    },
};

/// How long the metrics server may take to finish its requests at shutdown.
const METRICS_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// The daemon could not start, or stopped on an error.
#[derive(Debug, Error)]
pub enum DaemonError {
    /// This binary has no kernel program in it, and a kernel mode was asked for.
    #[error("{NOT_BUILT_IN}")]
    NotBuiltIn,
    /// An interface could not be resolved.
    #[error(transparent)]
    Interface(#[from] InterfaceError),
    /// The kernel program could not be loaded or set up.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// No attach mode worked on an interface.
    #[error("cannot reflect on {interface}: {reasons}; --mode auto would fall back to splice")]
    NoAttach {
        /// The interface.
        interface: String,
        /// Each mode tried and why it failed.
        reasons: String,
    },
    /// A mapped port could not be listened on.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The local addresses could not be tracked.
    #[error(transparent)]
    LocalAddrs(#[from] LocalAddrsError),
    /// No netlink socket.
    #[error("opening a netlink socket failed")]
    Netlink(#[source] std::io::Error),
    /// The metrics address cannot be listened on.
    #[error(transparent)]
    Metrics(#[from] BindError),
    /// The control socket given cannot be served.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The pin directory cannot be used.
    #[error(transparent)]
    Pin(#[from] PinDirError),
    /// SIGHUP cannot be watched.
    #[error("cannot watch SIGHUP")]
    Signal(#[source] std::io::Error),
}

/// Runs the reflector until `shutdown` completes, then detaches everything.
/// SIGHUP reads `sources` again and applies what changed ([`reload`]).
///
/// # Errors
/// [`DaemonError`] when setting up fails or tracking local addresses stops working.
pub async fn run(
    mut settings: Settings,
    sources: &Sources,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    check_pin(&mut settings)?;
    crate::splice::fd_limit::raise(&settings.splice);
    // Listening first: a port taken by another program fails before anything is attached.
    let mut userspace = Userspace::new(settings.splice);
    userspace.apply(&settings.maps)?;
    let maps: Vec<String> = settings.maps.iter().map(ToString::to_string).collect();
    info!(
        "userspace: listening on {} (IPv4 and IPv6) for whatever no kernel program reflects",
        maps.join(" ")
    );
    // Bound early too: a metrics address in use fails before anything is attached.
    let metrics_listener = match settings.metrics {
        Some(address) => Some(http::bind(address).await?),
        None => None,
    };
    let mut control = bind_control(&settings)?;

    let (mut connection, handle, address_events) =
        rtnetlink::new_connection().map_err(DaemonError::Netlink)?;
    connection
        .socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
        .map_err(DaemonError::Netlink)?;
    tokio::spawn(connection);
    let interfaces = interfaces::resolve(&handle, &settings.interfaces).await?;

    let mut kernel = match settings.mode {
        Mode::Splice => {
            for interface in &interfaces {
                info!("{}: reflecting with splice", interface.name);
            }
            None
        }
        _ => start_kernel(&settings, &interfaces)?,
    };

    // The address table is full before `ready`: until then the program passes everything.
    let follow = match kernel.as_mut() {
        Some(kernel) => {
            let mut local_addrs = kernel.take_local_addrs()?;
            local_addrs::sync(&handle, &mut local_addrs).await?;
            Either::Left(local_addrs::follow(handle, local_addrs, address_events))
        }
        None => Either::Right(future::pending()),
    };
    let modes = interface_modes(&interfaces, kernel.as_ref());
    let mut placed: Vec<String> = modes
        .iter()
        .map(|entry| format!("{} ({})", entry.interface, entry.mode))
        .collect();
    if interfaces.is_empty() {
        placed.push("every interface (splice)".to_owned());
    }

    let telemetry = Arc::new(telemetry(kernel.as_mut(), &userspace, modes)?);
    let metrics_server =
        metrics_listener.map(|listener| MetricsServer::start(listener, Arc::clone(&telemetry)));
    // The main loop keeps a sender, so `changes` stays open without a control socket.
    let (changes_sender, mut changes) = mpsc::channel::<ChangeRequest>(16);
    if let Some(control) = control.as_mut() {
        control.serve(Arc::clone(&telemetry), changes_sender.clone());
    }
    telemetry.set_ready();
    info!("ready: {}", status(&settings, &placed));
    let notifier = Notifier::from_env();
    notifier.ready(&status(&settings, &placed));
    let mut watchdog = Watchdog::new(&notifier);

    let mut hangups = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
    let mut config_watch = watch_config(sources);
    tokio::pin!(shutdown, follow);
    let outcome = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            result = &mut follow => {
                warn!("stopped following address changes");
                break result.map_err(DaemonError::from);
            }
            trigger = reload_asked(&mut hangups, config_watch.as_mut()) => {
                notifier.reloading();
                reload::reload(trigger, sources, &mut settings, kernel.as_mut(), &mut userspace);
                notifier.ready(&status(&settings, &placed));
            }
            Some((change, reply)) = changes.recv() => {
                let answer = change_maps(&change, &mut settings, kernel.as_mut(), &mut userspace);
                let _ = reply.send(answer);
                notifier.status(&status(&settings, &placed));
            }
            () = watchdog.tick() => notifier.watchdog(),
        }
    };
    notifier.stopping();
    drop(control);
    drop(changes_sender);
    if let Some(server) = metrics_server {
        server.stop().await;
    }
    if let Some(kernel) = kernel {
        stop_kernel(kernel);
    }
    info!("splice: {}", userspace.counters());
    drop(userspace);
    info!("exiting");
    outcome
}

/// A watch on the config file, when there is one; a daemon that cannot watch it still
/// reloads on SIGHUP, and says so.
fn watch_config(sources: &Sources) -> Option<ConfigWatch> {
    let path = sources.config.as_deref()?;
    match ConfigWatch::new(path) {
        Ok(watch) => {
            info!(
                "watching {} for changes (a change reloads, as SIGHUP does)",
                path.display()
            );
            Some(watch)
        }
        Err(error) => {
            warn!(
                "{:#}; changes to it take effect on SIGHUP only",
                anyhow::Error::from(error)
            );
            None
        }
    }
}

/// Resolves with what asks for a reload: SIGHUP, or a change of the watched config file
/// (never without a watch). Both are cancel-safe, as the main loop's `select!` needs.
async fn reload_asked(hangups: &mut Signal, watch: Option<&mut ConfigWatch>) -> Trigger {
    let file_changed = async {
        match watch {
            Some(watch) => watch.changed().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = hangups.recv() => Trigger::Hangup,
        () = file_changed => Trigger::FileChanged,
    }
}

/// What the daemon does, for the `ready` log line and the service manager's `STATUS=`:
/// `reflecting 10022:22/tcp on eth0 (tc)`.
fn status(settings: &Settings, placed: &[String]) -> String {
    format!(
        "reflecting {} on {}",
        reload::list(&settings.maps),
        placed.join(", ")
    )
}

/// Checks the pin directory first, so one off bpffs fails before anything is attached; in
/// splice mode there is nothing to pin, and `--pin` is dropped with a warning.
fn check_pin(settings: &mut Settings) -> Result<(), DaemonError> {
    if let Some(dir) = &settings.pin {
        if settings.mode == Mode::Splice {
            warn!(
                "--pin {} is ignored in splice mode: only the kernel modes pin",
                dir.display()
            );
            settings.pin = None;
        } else {
            pin::prepare_dir(dir)?;
        }
    }
    Ok(())
}

/// Detaches the kernel path, unless it is pinned: then it stays attached for the next start.
fn stop_kernel(mut kernel: KernelPath) {
    if let Some(dir) = kernel.pin_dir().map(std::path::Path::to_owned) {
        drop(kernel);
        info!(
            "left the kernel program attached, pinned at {0}; the next start with --pin {0} \
             adopts it, `reflector detach --pin {0}` removes it",
            dir.display()
        );
    } else {
        kernel.detach_all();
        info!("detached from every interface");
    }
}

/// What reports on the daemon reads: the userspace counters, and the kernel program's
/// counters and flow table when it is loaded.
fn telemetry(
    kernel: Option<&mut KernelPath>,
    userspace: &Userspace,
    modes: Vec<InterfaceMode>,
) -> Result<Telemetry, DaemonError> {
    let (stats, map_counters, flow_table) = match kernel {
        Some(kernel) => (
            Some(kernel.take_stats()?),
            Some(kernel.map_counters()?),
            Some(kernel.flow_table()?),
        ),
        None => (None, None, None),
    };
    Ok(Telemetry::new(
        userspace.shared_counters(),
        stats,
        map_counters,
        flow_table,
        modes,
    ))
}

/// How each interface is reflected: the kernel mode attached to it, else splice.
fn interface_modes(interfaces: &[Interface], kernel: Option<&KernelPath>) -> Vec<InterfaceMode> {
    interfaces
        .iter()
        .map(|interface| {
            let attach = kernel.and_then(|kernel| {
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

/// Binds the control socket. The default path is optional: when it cannot be had (e.g.
/// without root), the daemon runs without one; a path the user gave must work.
fn bind_control(settings: &Settings) -> Result<Option<ControlSocket>, DaemonError> {
    match ControlSocket::bind(settings.control_socket_path()) {
        Ok(socket) => Ok(Some(socket)),
        Err(error) if settings.control_socket.is_none() => {
            warn!(
                "{error}; running without a control socket (`reflector stats` and \
                 `reflector map` need one: give --control-socket PATH)"
            );
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// Carries out a map request from the control socket, logging a refusal.
fn change_maps(
    change: &MapChange,
    settings: &mut Settings,
    kernel: Option<&mut KernelPath>,
    userspace: &mut Userspace,
) -> Reply {
    match control::apply(change, &mut settings.maps, kernel, userspace) {
        Ok(()) => Reply::maps(&settings.maps),
        Err(why) => {
            warn!("control: refused: {why}; nothing changed");
            Reply::error(why)
        }
    }
}

/// The metrics server task and the way to stop it.
struct MetricsServer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl MetricsServer {
    /// Serves `telemetry` on `listener` in a task of its own.
    fn start(listener: tokio::net::TcpListener, telemetry: Arc<Telemetry>) -> Self {
        let address = listener
            .local_addr()
            .map_or_else(|_| "?".to_owned(), |address| address.to_string());
        info!("metrics: serving http://{address}/metrics");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(http::serve(listener, telemetry, async {
            let _ = stopped.await;
        }));
        Self { stop, task }
    }

    /// Stops serving, letting requests under way finish for a moment.
    async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        match tokio::time::timeout(METRICS_STOP_TIMEOUT, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => warn!("metrics: the server failed: {error}"),
            Ok(Err(error)) => warn!("metrics: the server task failed: {error}"),
            Err(_) => {
                task.abort();
                warn!("metrics: the server did not stop within {METRICS_STOP_TIMEOUT:?}");
            }
        }
    }
}

/// Loads the kernel program and attaches it to each interface in the best way that works.
/// In `auto` mode, an interface where nothing attaches (or every interface, when the program
/// cannot be loaded at all) is left to the userspace path; other modes give up instead.
/// Returns `None` when the kernel path is attached nowhere.
fn start_kernel(
    settings: &Settings,
    interfaces: &[Interface],
) -> Result<Option<KernelPath>, DaemonError> {
    let fall_back = settings.mode == Mode::Auto;
    let mut kernel = match load_kernel(settings) {
        Ok(kernel) => kernel,
        // A pin directory that cannot be adopted is the operator's to resolve: falling back
        // to splice would leave its programs reflecting beside the listeners.
        Err(DaemonError::Kernel(KernelError::Pin(error))) => return Err(error.into()),
        Err(error) if fall_back => {
            let why = describe(&error, Some("bpf(2)"));
            for interface in interfaces {
                info!(
                    "{}: reflecting with splice (skipped: {}: {why})",
                    interface.name,
                    kernel_modes(settings.mode, interface)
                );
            }
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    for interface in interfaces {
        let candidates = settings.mode.candidates(interface);
        if let Some(attach) = kernel.adopt_link(interface, candidates) {
            info!(
                "{}: reflecting with {attach} (adopted: stayed attached)",
                interface.name
            );
            continue;
        }
        let mut reasons = Vec::new();
        let mut chosen = None;
        for &attach in candidates {
            match kernel.attach(interface, attach) {
                Ok(()) => {
                    chosen = Some(attach);
                    break;
                }
                Err(error) => reasons.push(format!("{attach}: {}", describe(&error, None))),
            }
        }
        let skipped = if reasons.is_empty() {
            String::new()
        } else {
            format!(" (skipped: {})", reasons.join("; "))
        };
        match chosen {
            Some(attach) => info!("{}: reflecting with {attach}{skipped}", interface.name),
            None if fall_back => info!("{}: reflecting with splice{skipped}", interface.name),
            None => {
                return Err(DaemonError::NoAttach {
                    interface: interface.name.clone(),
                    reasons: reasons.join("; "),
                });
            }
        }
    }
    kernel.release_unadopted();
    let attached_anywhere = kernel.attached().next().is_some();
    Ok(attached_anywhere.then_some(kernel))
}

/// Loads the program and fills its port table.
fn load_kernel(settings: &Settings) -> Result<KernelPath, DaemonError> {
    let object = kernel_object().ok_or(DaemonError::NotBuiltIn)?;
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
    Ok(kernel)
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

/// An error and its sources on one line (a source that only repeats what is already there is
/// left out), with the errno's name when the kernel gave one: `...: Operation not permitted
/// (os error 1) [bpf(2): EPERM]`. `syscall` names the call when it is known.
fn describe(error: &(dyn StdError + 'static), syscall: Option<&str>) -> String {
    let mut text = error.to_string();
    let mut errno = None;
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(cause) = current {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            errno = errno.or(io.raw_os_error());
        }
        current = cause.source();
        if let Some(next) = current {
            let next = next.to_string();
            if !text.contains(&next) {
                let _ = write!(text, ": {next}");
            }
        }
    }
    if let Some(errno) = errno {
        let name = nix::errno::Errno::from_raw(errno);
        let _ = match syscall {
            Some(syscall) => write!(text, " [{syscall}: {name:?}]"),
            None => write!(text, " [{name:?}]"),
        };
    }
    text
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::describe;

    #[derive(Debug, thiserror::Error)]
    #[error("loading failed: map `M`")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("map `M`")]
    struct Middle(#[source] io::Error);

    #[test]
    fn describe_names_the_errno_once() {
        let error = Outer(Middle(io::Error::from_raw_os_error(libc::EPERM)));
        assert_eq!(
            describe(&error, Some("bpf(2)")),
            "loading failed: map `M`: Operation not permitted (os error 1) [bpf(2): EPERM]"
        );
    }
}
