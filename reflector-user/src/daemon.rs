//! The daemon: listens on the mapped ports in userspace, sets up the kernel path where it
//! can, keeps both current, and tears them down when the shutdown future completes. It takes
//! shutdown as a future so tests can run it in-process.

use std::{future::Future, sync::Arc, time::Duration};

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
        self, AllowChange, Change, MapChange, Reply,
        server::{ChangeRequest, ControlError, ControlSocket},
    },
    dataplane::{self, Dataplane, StartError},
    error_text,
    interfaces::{self, InterfaceError},
    kernel::KernelError,
    local_addrs::{self, LocalAddrsError},
    notify::{Notifier, Watchdog},
    pin::PinDirError,
    portmap,
    reload::{self, Trigger},
    settings::{Settings, Sources},
    splice::ListenError,
    telemetry::{
        Telemetry,
        http::{self, BindError},
    },
};

/// How long the metrics server may take to finish its requests at shutdown.
const METRICS_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// The daemon could not start, or stopped on an error.
#[derive(Debug, Error)]
pub enum DaemonError {
    /// An interface could not be resolved.
    #[error(transparent)]
    Interface(#[from] InterfaceError),
    /// The kernel path could not be started.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The kernel program's maps could not be opened for reading or writing.
    #[error(transparent)]
    Kernel(#[from] KernelError),
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
    /// The capabilities nothing needs any more could not be dropped.
    #[error("cannot drop the capabilities the daemon no longer needs")]
    Privileges(#[source] std::io::Error),
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
    dataplane::check_pin(&mut settings)?;
    // Listening first: a port taken by another program fails before anything is attached.
    let mut dataplane = Dataplane::listen(&settings)?;
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
    dataplane.start_kernel(&settings, &interfaces)?;

    // The address table is full before `ready`: until then the program passes everything.
    let follow = match dataplane.take_local_addrs()? {
        Some(mut local_addrs) => {
            local_addrs::sync(&handle, &mut local_addrs).await?;
            Either::Left(local_addrs::follow(handle, local_addrs, address_events))
        }
        None => Either::Right(future::pending()),
    };
    dataplane
        .drop_privileges()
        .map_err(DaemonError::Privileges)?;
    let modes = dataplane.interface_modes(&interfaces);
    let mut placed: Vec<String> = modes
        .iter()
        .map(|entry| format!("{} ({})", entry.interface, entry.mode))
        .collect();
    if interfaces.is_empty() {
        placed.push("every interface (splice)".to_owned());
    }

    // Watching before anything says ready: a change made right after `ready` is not missed.
    let mut hangups = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
    let mut config_watch = watch_config(sources);
    let telemetry = Arc::new(dataplane.telemetry(modes)?);
    let metrics_server =
        metrics_listener.map(|listener| MetricsServer::start(listener, Arc::clone(&telemetry)));
    // The main loop keeps a sender, so `changes` stays open without a control socket.
    let (changes_sender, mut changes) = mpsc::channel::<ChangeRequest>(16);
    if let Some(control) = control.as_mut() {
        control.serve(Arc::clone(&telemetry), changes_sender.clone());
    }
    telemetry.set_ready();
    info!("ready: {}", status(&dataplane, &placed));
    let notifier = Notifier::from_env();
    notifier.ready(&status(&dataplane, &placed));
    let mut watchdog = Watchdog::new(&notifier);

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
                reload::reload(trigger, sources, &settings, &mut dataplane);
                notifier.ready(&status(&dataplane, &placed));
            }
            Some((change, reply)) = changes.recv() => {
                let answer = match &change {
                    Change::Maps(change) => change_maps(change, &mut dataplane),
                    Change::Allow(change) => change_allow(change, &mut dataplane),
                };
                let _ = reply.send(answer);
                notifier.status(&status(&dataplane, &placed));
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
    dataplane.stop();
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
                "{}; changes to it take effect on SIGHUP only",
                error_text::render(&error)
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
fn status(dataplane: &Dataplane, placed: &[String]) -> String {
    format!(
        "reflecting {} on {}",
        portmap::list(dataplane.maps()),
        placed.join(", ")
    )
}

/// Binds the control socket. The default path is optional: when it cannot be had (e.g.
/// without root), the daemon runs without one; a path the user gave must work.
fn bind_control(settings: &Settings) -> Result<Option<ControlSocket>, DaemonError> {
    match ControlSocket::bind(settings.control_socket_path()) {
        Ok(socket) => Ok(Some(socket)),
        Err(error) if settings.control_socket.is_none() => {
            warn!(
                "{}; running without a control socket (`reflector stats` and \
                 `reflector map` need one: give --control-socket PATH)",
                error_text::render(&error)
            );
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// Carries out a map request from the control socket on both paths, all or nothing,
/// logging what changed or why nothing did.
fn change_maps(change: &MapChange, dataplane: &mut Dataplane) -> Reply {
    let new = match control::changed(dataplane.maps(), change) {
        Ok(new) => new,
        Err(error) => return refused(&error),
    };
    let what = match change {
        MapChange::List => return dataplane.maps_reply(),
        MapChange::Add(map) => format!("added {map}"),
        MapChange::Del(key) => format!("removed {key}"),
    };
    if let Err(error) = dataplane.set_maps(new) {
        return refused(&error);
    }
    info!(
        "control: {what}; port maps now {} (until the next reload or restart)",
        portmap::list(dataplane.maps())
    );
    dataplane.maps_reply()
}

/// The reply to a change refused for `error`, which is logged.
fn refused(error: &(dyn std::error::Error + 'static)) -> Reply {
    let why = error_text::render(error);
    warn!("control: refused: {why}; nothing changed");
    Reply::error(why)
}

/// Carries out an allow-list request from the control socket on both paths, all or
/// nothing, logging what changed or why nothing did.
fn change_allow(change: &AllowChange, dataplane: &mut Dataplane) -> Reply {
    let new = match control::allow_changed(dataplane.admission(), change) {
        Ok(new) => new,
        Err(error) => return refused(&error),
    };
    let what = match change {
        AllowChange::List => return Reply::allow(&dataplane.admission().allow),
        AllowChange::Add(prefix) => format!("allowed {prefix}"),
        AllowChange::Del(prefix) => format!("no longer allowed {prefix}"),
    };
    if let Err(error) = dataplane.set_admission(new) {
        return refused(&error);
    }
    info!(
        "control: {what}; reflecting for {} (until the next reload or restart)",
        dataplane.admission().allow_list()
    );
    Reply::allow(&dataplane.admission().allow)
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
