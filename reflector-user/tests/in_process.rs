//! The daemon run in-process in splice mode on loopback, as mini-redis tests its server: the
//! control plane (control socket changes and their rollback, reload from a changed config
//! file, metrics, error messages) checked in seconds, without root and without namespaces.
//! Traffic goes only to 127.0.0.1.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test sees every dependency of the library it tests"
)]

use std::{
    fs,
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use reflector::{
    control::{Reply, Request, client},
    daemon::{self, DaemonError},
    error_text,
    mode::Mode,
    portmap::PortMap,
    settings::{Overrides, Sources},
};
use tokio::sync::oneshot;

/// How long anything here may take; every wait is bounded by it.
const PATIENCE: Duration = Duration::from_secs(10);

/// A directory of this test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "reflector-in-process-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A daemon running on a runtime of its own, stopped (through its shutdown future) when
/// dropped.
struct Daemon {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<Result<(), Box<DaemonError>>>>,
    control: PathBuf,
}

impl Daemon {
    /// Starts the daemon with `sources` and waits until its control socket answers.
    fn start(sources: Sources) -> Self {
        let _ = env_logger::builder().is_test(true).try_init();
        let settings = sources.load().expect("the test's settings load");
        let control = settings.control_socket_path().to_owned();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            runtime
                .block_on(daemon::run(settings, &sources, async {
                    let _ = stopped.await;
                }))
                .map_err(Box::new)
        });
        let daemon = Self {
            stop: Some(stop),
            thread: Some(thread),
            control,
        };
        let deadline = Instant::now() + PATIENCE;
        while client::ask(&daemon.control, &Request::MapList).is_err() {
            assert!(
                !daemon.thread.as_ref().unwrap().is_finished(),
                "the daemon stopped before it was ready"
            );
            assert!(
                Instant::now() < deadline,
                "the daemon was not ready in time"
            );
            thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    fn ask(&self, request: &Request) -> Reply {
        client::ask(&self.control, request).expect("the control socket answers")
    }

    fn maps(&self) -> Vec<String> {
        self.ask(&Request::MapList)
            .maps
            .expect("map-list lists maps")
    }

    /// Stops the daemon and returns how `run` ended.
    fn stop(mut self) -> Result<(), Box<DaemonError>> {
        self.stop.take().map(|stop| stop.send(()));
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("the daemon thread")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A port free on every address now (TCP, IPv4 and IPv6).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("[::]:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A service on 127.0.0.1 that greets every connection with `greeting` and closes it.
fn greeter(greeting: &'static str) -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = (&stream).write_all(greeting.as_bytes());
        }
    });
    port
}

/// What a client connecting to `127.0.0.1:port` reads before the connection closes.
fn read_through(port: u16) -> std::io::Result<String> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, PATIENCE)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

fn map(listen: u16, target: u16) -> PortMap {
    format!("{listen}:{target}").parse().unwrap()
}

/// Splice mode on loopback, with the control socket in `scratch` and `maps`.
fn sources(scratch: &Scratch, maps: Vec<PortMap>, config: Option<PathBuf>) -> Sources {
    Sources {
        config,
        command_line: Overrides {
            maps: (!maps.is_empty()).then_some(maps),
            mode: Some(Mode::Splice),
            control_socket: Some(scratch.path("control.sock")),
            ..Overrides::default()
        },
    }
}

/// Polls `condition` until it holds or [`PATIENCE`] runs out.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn reflects_and_counts_in_metrics() {
    let scratch = Scratch::new("metrics");
    let (listen, target, metrics) = (free_port(), greeter("hello\n"), free_port());
    let mut sources = sources(&scratch, vec![map(listen, target)], None);
    sources.command_line.metrics = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, metrics)));
    let daemon = Daemon::start(sources);
    assert_eq!(read_through(listen).unwrap(), "hello\n");

    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, metrics)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    for line in [
        "reflector_ready 1",
        "reflector_splice_connections_total{protocol=\"tcp\"} 1",
        "reflector_interface_mode{",
    ] {
        assert!(response.contains(line), "no {line:?} in:\n{response}");
    }
    assert!(
        !response.contains("reflector_reflected_packets"),
        "no kernel program, so no kernel metrics:\n{response}"
    );
    daemon.stop().unwrap();
}

#[test]
fn control_socket_adds_and_removes_maps() {
    let scratch = Scratch::new("control");
    let (first, second, target) = (free_port(), free_port(), greeter("control\n"));
    let daemon = Daemon::start(sources(&scratch, vec![map(first, target)], None));
    assert!(
        read_through(second).is_err(),
        "nothing listens on {second} yet"
    );

    let reply = daemon.ask(&Request::MapAdd {
        map: format!("{second}:{target}"),
    });
    assert!(reply.ok, "{reply:?}");
    assert_eq!(
        daemon.maps(),
        [
            format!("{first}:{target}/tcp"),
            format!("{second}:{target}/tcp")
        ]
    );
    assert_eq!(read_through(second).unwrap(), "control\n");

    let reply = daemon.ask(&Request::MapDel {
        map: first.to_string(),
    });
    assert!(reply.ok, "{reply:?}");
    assert_eq!(daemon.maps(), [format!("{second}:{target}/tcp")]);
    eventually("the removed listen port closes", || {
        read_through(first).is_err()
    });

    let reply = daemon.ask(&Request::MapDel {
        map: second.to_string(),
    });
    assert!(!reply.ok, "the last map stays");
    assert!(
        reply
            .error
            .as_deref()
            .unwrap_or("")
            .contains("last port map"),
        "{reply:?}"
    );
    daemon.stop().unwrap();
}

#[test]
fn a_taken_port_is_refused_whole_and_nothing_changes() {
    let scratch = Scratch::new("rollback");
    let (listen, target) = (free_port(), greeter("kept\n"));
    let daemon = Daemon::start(sources(&scratch, vec![map(listen, target)], None));
    let taken = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let taken_port = taken.local_addr().unwrap().port();

    let reply = daemon.ask(&Request::MapAdd {
        map: format!("{taken_port}:{target}"),
    });
    assert!(!reply.ok, "{reply:?}");
    let error = reply.error.unwrap();
    assert_eq!(
        error.matches("Address already in use").count(),
        1,
        "the OS error once: {error}"
    );
    assert!(
        error.starts_with(&format!("cannot listen on 0.0.0.0:{taken_port} (tcp)")),
        "{error}"
    );
    assert_eq!(daemon.maps(), [format!("{listen}:{target}/tcp")]);
    assert_eq!(read_through(listen).unwrap(), "kept\n");
    daemon.stop().unwrap();
}

#[test]
fn a_changed_config_file_reloads_and_a_bad_one_keeps_the_running_maps() {
    let scratch = Scratch::new("reload");
    let (first, second, target) = (free_port(), free_port(), greeter("reload\n"));
    let config = scratch.path("reflector.toml");
    let write = |text: String| {
        // Written beside and renamed over, as an editor or the kubelet does.
        let staged = config.with_extension("tmp");
        fs::write(&staged, text).unwrap();
        fs::rename(&staged, &config).unwrap();
    };
    write(format!("maps = [\"{first}:{target}\"]\n"));
    let daemon = Daemon::start(sources(&scratch, Vec::new(), Some(config.clone())));
    assert_eq!(daemon.maps(), [format!("{first}:{target}/tcp")]);

    write(format!(
        "maps = [\"{first}:{target}\", \"{second}:{target}\"]\n"
    ));
    eventually("the changed file is applied", || daemon.maps().len() == 2);
    assert_eq!(read_through(second).unwrap(), "reload\n");

    // A bad file, then one whose new port is taken: both refused, the maps stay.
    let taken = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let running = daemon.maps();
    for refused in [
        "maps = [\"not a map\"]\n".to_owned(),
        format!("maps = [\"{first}:{target}\", \"{taken_port}:{target}\"]\n"),
    ] {
        write(refused);
        // Past the watcher's settling time: a refused file would have been applied by now.
        thread::sleep(Duration::from_millis(800));
        assert_eq!(daemon.maps(), running);
    }
    assert_eq!(read_through(second).unwrap(), "reload\n");
    // The watcher still works after the refusals: this change shows.
    write(format!("maps = [\"{second}:{target}\"]\n"));
    eventually("the last good file is applied", || {
        daemon.maps() == [format!("{second}:{target}/tcp")]
    });
    daemon.stop().unwrap();
}

#[test]
fn errors_show_each_cause_once() {
    let scratch = Scratch::new("errors");
    let missing = scratch.path("missing.toml");
    let sources = sources(&scratch, Vec::new(), Some(missing.clone()));
    let error = sources.load().unwrap_err();
    assert_eq!(
        error_text::render(&error),
        format!(
            "cannot read config file {}: No such file or directory (os error 2) [ENOENT]",
            missing.display()
        )
    );

    // The file decides where the host sends packets: nobody but its owner may write it.
    let shared = scratch.path("shared.toml");
    fs::write(&shared, "maps = [\"10022:22\"]\n").unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o664)).unwrap();
    let sources = self::sources(&scratch, Vec::new(), Some(shared.clone()));
    assert_eq!(
        error_text::render(&sources.load().unwrap_err()),
        format!(
            "config file {0} is writable by group or others (mode 0664); it decides where \
             this host sends packets, so only its owner may write it: chmod go-w {0}",
            shared.display()
        )
    );
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o644)).unwrap();
    sources.load().expect("a file only its owner writes loads");

    let taken = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let sources = self::sources(&scratch, vec![map(port, 22)], None);
    let settings = sources.load().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = runtime
        .block_on(daemon::run(settings, &sources, std::future::pending()))
        .unwrap_err();
    assert_eq!(
        error_text::render(&error),
        format!(
            "cannot listen on 0.0.0.0:{port} (tcp): Address already in use (os error 98); \
             another program uses this port: stop it, or map a different listen port"
        )
    );
    assert!(!Path::new(&scratch.path("control.sock")).exists());
}

/// Refusals of new TCP flows counted by the userspace path, for `reason`.
fn tcp_refusals(daemon: &Daemon, reason: &str) -> u64 {
    let stats = daemon.ask(&Request::Stats).stats.expect("stats");
    stats
        .splice
        .refused
        .iter()
        .find(|refused| refused.protocol == "tcp" && refused.reason == reason)
        .map_or(0, |refused| refused.count)
}

#[test]
fn the_allow_list_refuses_other_sources_and_changes_at_run_time() {
    let scratch = Scratch::new("allow");
    let (listen, target) = (free_port(), greeter("allowed\n"));
    let mut sources = sources(&scratch, vec![map(listen, target)], None);
    // 127.0.0.1, the client here, is outside.
    sources.command_line.allow = Some(vec!["192.0.2.0/24".parse().unwrap()]);
    let daemon = Daemon::start(sources);
    assert_ne!(read_through(listen).ok().as_deref(), Some("allowed\n"));
    assert_eq!(tcp_refusals(&daemon, "source_not_allowed"), 1);

    let add = |prefix: &str| {
        daemon.ask(&Request::AllowAdd {
            prefix: prefix.to_owned(),
        })
    };
    let del = |prefix: &str| {
        daemon.ask(&Request::AllowDel {
            prefix: prefix.to_owned(),
        })
    };
    let reply = add("127.0.0.1");
    assert_eq!(
        reply.allow,
        Some(vec!["192.0.2.0/24".to_owned(), "127.0.0.1/32".to_owned()]),
        "{reply:?}"
    );
    assert_eq!(read_through(listen).unwrap(), "allowed\n");
    let again = add("127.0.0.1/32");
    assert!(
        again
            .error
            .as_deref()
            .unwrap_or("")
            .contains("allowed already"),
        "{again:?}"
    );

    assert!(del("127.0.0.1/32").ok);
    assert_ne!(read_through(listen).ok().as_deref(), Some("allowed\n"));
    assert_eq!(tcp_refusals(&daemon, "source_not_allowed"), 2);
    let last = del("192.0.2.0/24");
    assert!(!last.ok);
    assert!(
        last.error
            .as_deref()
            .unwrap_or("")
            .contains("last allowed prefix"),
        "{last:?}"
    );
    assert_eq!(
        daemon.ask(&Request::AllowList).allow,
        Some(vec!["192.0.2.0/24".to_owned()])
    );
    daemon.stop().unwrap();
}

#[test]
fn new_flows_over_the_limit_are_refused() {
    let scratch = Scratch::new("limits");
    let (listen, target) = (free_port(), greeter("limited\n"));
    let mut sources = sources(&scratch, vec![map(listen, target)], None);
    // One new flow a second per source, two at once: the third at once is refused.
    sources.command_line.limit_per_source = Some(1);
    sources.command_line.limit_per_source_burst = Some(2);
    let daemon = Daemon::start(sources);
    assert_eq!(read_through(listen).unwrap(), "limited\n");
    assert_eq!(read_through(listen).unwrap(), "limited\n");
    assert_ne!(read_through(listen).ok().as_deref(), Some("limited\n"));
    assert_eq!(tcp_refusals(&daemon, "rate_limited"), 1);
    daemon.stop().unwrap();
}
