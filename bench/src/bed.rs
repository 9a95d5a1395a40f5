//! A test bed: fresh namespaces X and R joined by a veth pair, with one contender running
//! in R, torn down on drop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use reflector_tests::daemon::has_ready_line;
use reflector_tests::test_run::Kernel;
use reflector_tests::wait::poll_until;
use reflector_tests::{Family, Netns, Process, Topology, TopologyOptions};

use crate::contender::{Contender, Nic};
use crate::nft;

/// The port clients connect to on R when reflected (L of the map `L:P`).
pub(crate) const LISTEN_PORT: u16 = 10022;
/// The service's port (P): in X when reflected, in R for the direct path.
pub(crate) const SERVICE_PORT: u16 = 2222;

/// How long the reflector may take to log `ready`, and a server to listen.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the reflector may take to exit after SIGTERM.
const TERM_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an exited process's output may take to reach us.
const OUTPUT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a bed needs to start its contender.
#[derive(Debug)]
pub(crate) struct Programs {
    /// The `reflector` binary.
    pub reflector: PathBuf,
    /// The seed's `reflector.py`, when the Python tool is among the contenders.
    pub python_tool: Option<PathBuf>,
}

/// One contender running on its own fresh topology.
#[derive(Debug)]
pub(crate) struct Bed {
    // Field order is drop order: stop the contender, then remove the namespaces.
    daemon: Option<Process>,
    /// The reference reflector, attached to R's interface until dropped.
    reference: Option<Kernel>,
    topology: Topology,
    contender: Contender,
    /// The line the reflector logged about the mode it attached with (for `auto`).
    mode_line: Option<String>,
    /// The CPUs every process of the bed runs on (`taskset --cpu-list`), if pinned.
    cpus: Option<String>,
}

impl Bed {
    /// Builds a topology with X's NIC set up as `nic` (the contender's own setting, see
    /// [`Contender::nic`]; the direct path runs under each) and starts the contender in R;
    /// with `cpus`, it and every process started through [`Bed::command`] run on those
    /// CPUs only.
    pub(crate) fn start(
        contender: Contender,
        nic: Nic,
        programs: &Programs,
        cpus: Option<String>,
    ) -> Result<Self> {
        let topology = Topology::new(TopologyOptions {
            xdp_client_nic_like: nic == Nic::PhysicalLike,
        });
        let mut bed = Self {
            daemon: None,
            reference: None,
            topology,
            contender,
            mode_line: None,
            cpus,
        };
        let r = bed.topology.r();
        let map = format!("{LISTEN_PORT}:{SERVICE_PORT}/tcp,udp");
        match contender {
            Contender::Direct => {}
            Contender::Reference => {
                let mut reference = Kernel::reference_reflector_for(LISTEN_PORT, SERVICE_PORT);
                reference.attach_xdp_native(r, bed.topology.r_iface());
                bed.reference = Some(reference);
            }
            Contender::Python => {
                let tool = programs
                    .python_tool
                    .as_deref()
                    .context("the seed's Python tool was not fetched")?;
                let mut cmd = bed.command(
                    r,
                    &[
                        "/usr/bin/python3",
                        "-u",
                        &tool.to_string_lossy(),
                        &LISTEN_PORT.to_string(),
                        "--return-port",
                        &SERVICE_PORT.to_string(),
                    ],
                );
                bed.daemon = Some(Process::spawn(&mut cmd));
                r.wait_listening(false, LISTEN_PORT, START_TIMEOUT);
            }
            Contender::Nftables => nft::reflect(r, LISTEN_PORT, SERVICE_PORT)?,
            Contender::Splice
            | Contender::Tc
            | Contender::Xdp
            | Contender::XdpSkb
            | Contender::Auto => {
                let mode = contender.reflector_mode().unwrap_or("auto");
                let mut cmd = bed.command(r, &[&programs.reflector.to_string_lossy()]);
                cmd.args(["--map", &map, "--iface", bed.topology.r_iface()])
                    .args(["--mode", mode])
                    // One client opens more new flows per second than the per-source limit
                    // allows: the bench measures forwarding, not the limiter.
                    .args(["--limit-per-source", "0", "--limit-global", "0"])
                    .env("RUST_LOG", "info");
                let (process, mode_line) = start_reflector(&mut cmd)?;
                bed.daemon = Some(process);
                bed.mode_line = mode_line;
            }
        }
        Ok(bed)
    }

    /// Where the service runs: R for the direct path, X (the client itself) otherwise.
    pub(crate) fn service_ns(&self) -> &Netns {
        match self.contender {
            Contender::Direct => self.topology.r(),
            _ => self.topology.x(),
        }
    }

    /// Where the client runs: X.
    pub(crate) fn client_ns(&self) -> &Netns {
        self.topology.x()
    }

    /// `args` to run in `ns` (one of the bed's namespaces), on the bed's CPUs.
    pub(crate) fn command(&self, ns: &Netns, args: &[&str]) -> Command {
        match &self.cpus {
            Some(cpus) => {
                let mut pinned = vec!["taskset", "--cpu-list", cpus];
                pinned.extend_from_slice(args);
                ns.command(&pinned)
            }
            None => ns.command(args),
        }
    }

    /// Where the client connects: R:P for the direct path, R:L otherwise.
    pub(crate) fn target(&self) -> SocketAddr {
        let port = match self.contender {
            Contender::Direct => SERVICE_PORT,
            _ => LISTEN_PORT,
        };
        SocketAddr::new(self.topology.r_addr(Family::V4), port)
    }

    /// The mode line the reflector logged (e.g. `...: reflecting with tc`), if any.
    pub(crate) fn mode_line(&self) -> Option<&str> {
        self.mode_line.as_deref()
    }

    /// Stops the reflector (SIGTERM, as an operator would) and returns its last `splice:`
    /// summary line, which counts what its userspace path handled (connections accepted,
    /// connect-back failures, bytes), if it logged one.
    pub(crate) fn stop_reflector(&mut self) -> Option<String> {
        self.contender.reflector_mode()?;
        let daemon = self.daemon.as_mut()?;
        daemon.terminate(TERM_TIMEOUT)?;
        let _ = daemon.wait_output_closed(OUTPUT_TIMEOUT);
        daemon.stderr().lines().rev().find_map(|line| {
            let message = line.split_once("] ").map_or(line, |(_, message)| message);
            message.starts_with("splice: ").then(|| message.to_owned())
        })
    }

    /// When the contender's process has exited (it should run until the bed is removed):
    /// a line saying so, with the last line of its output (e.g. a Python exception).
    pub(crate) fn exit_note(&mut self) -> Option<String> {
        let daemon = self.daemon.as_mut()?;
        let status = daemon.try_status()?;
        let _ = daemon.wait_output_closed(OUTPUT_TIMEOUT);
        let output = daemon.stderr() + &daemon.stdout();
        let last = output
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("no output");
        Some(format!(
            "{} exited during the measurement ({status}): {}",
            self.contender,
            last.trim()
        ))
    }
}

/// Starts the reflector (`cmd`) and waits for its `ready` line; returns it with the line
/// that says which mode it uses.
fn start_reflector(cmd: &mut Command) -> Result<(Process, Option<String>)> {
    let mut process = Process::spawn(cmd);
    let mut exited = None;
    let ready = poll_until(START_TIMEOUT, || {
        if has_ready_line(&process.stderr()) {
            return true;
        }
        exited = process.try_status();
        exited.is_some()
    }) && exited.is_none();
    if !ready {
        let why = exited.map_or_else(
            || format!("did not log `ready` within {START_TIMEOUT:?}"),
            |status| format!("exited ({status}) before logging `ready`"),
        );
        process.stop();
        bail!("`{}` {why}{}", process.what(), process.output_report());
    }
    let mode_line = process
        .stderr()
        .lines()
        .find(|line| line.contains("reflecting with"))
        .map(|line| {
            line.split_once("] ")
                .map_or(line, |(_, message)| message)
                .to_owned()
        });
    Ok((process, mode_line))
}
