//! The container image and the Kubernetes DaemonSet (`deploy/`), checked offline and run
//! for real.
//!
//! Offline: every manifest passes `kubernetes-validate --strict` for every Kubernetes
//! version from 1.29 on that it knows, `yamllint`, and `checkov` (its skipped checks
//! listed with their reasons in `deploy/kubernetes/.checkov.yaml`); the ConfigMap's
//! `reflector.toml` passes `reflector check-config`; the two variants differ only in
//! their security settings.
//!
//! For real: each variant's pod template becomes a Pod that `podman kube play` starts in
//! namespace R of a test topology, with the image `cargo xtask image` built; a check from X
//! through R lands on X's own service, `/readyz` answers 200 inside R, `podman inspect`
//! and the daemon's `/proc` status show what the manifest asks for, and a rolling restart
//! (stop the Pod, start a new one that adopts the pins) loses no byte of a long connection.
//! The tools come from `cargo xtask setup` (podman from Debian; the validators from PyPI).
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::net::SocketAddr;
use std::path::Path as FsPath;
use std::process::Command;
use std::time::{Duration, Instant};

use reflector_tests::command::{output_within, run};
use reflector_tests::daemon::binary;
use reflector_tests::manifests::{self, Variant};
use reflector_tests::pinning::LongSession;
use reflector_tests::podman::{NodeBpffs, PlayedPod, image};
use reflector_tests::reflection::{Path, assert_reflected};
use reflector_tests::servers::{Session, peer_service, session_service};
use reflector_tests::wait::poll_until;
use reflector_tests::{Family, Mode, Proto, TempDir, Topology, require_root, require_tool};
use serde_json::{Value, json};

/// The ConfigMap's map that the checks go through: 10022 to X's port 22.
const LISTEN: u16 = 10_022;
const SERVICE: u16 = 22;
/// The metrics port of the manifests (probes, scrape annotations).
const METRICS_PORT: u16 = 9477;
/// How long a Pod may take from `kube play` to `/readyz` answering 200.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a validator may run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(300);
/// The capabilities the restricted variant grants, as the kernel names them.
const RESTRICTED_CAPS: [&str; 3] = ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"];
/// Their bits in `/proc/<pid>/status`.
const RESTRICTED_CAP_MASK: u64 = 1 << 39 | 1 << 12 | 1 << 38;
/// `CAP_BPF`, all the daemon keeps of them once attached.
const CAP_BPF: u64 = 1 << 39;

/// Runs `cmd` and panics with its output unless it exits 0 within [`TOOL_TIMEOUT`].
fn passes(cmd: &mut Command) -> String {
    let output = output_within(cmd, TOOL_TIMEOUT);
    reflector_tests::command::check(cmd, &output);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn manifest_paths() -> Vec<String> {
    manifests::FILES
        .iter()
        .map(|file| manifests::dir().join(file).to_string_lossy().into_owned())
        .collect()
}

/// `kubernetes-validate --strict` for every Kubernetes version from 1.29 on that the
/// installed release knows (it ships the schemas; nothing is fetched).
#[test]
fn manifests_validate_for_every_kubernetes_version_from_1_29() {
    require_tool(
        "kubernetes-validate",
        "the PyPI package kubernetes-validate (cargo xtask setup)",
    );
    let versions = passes(Command::new("python3").args([
        "-c",
        "import importlib.resources as r, kubernetes_validate as k; \
         print('\\n'.join(sorted(p.name[1:-len('-local')] for p in \
         (r.files(k) / 'kubernetes-json-schema').iterdir() \
         if p.name.startswith('v') and p.name.endswith('-local'))))",
    ]));
    let mut checked = Vec::new();
    for version in versions.lines() {
        let minor: Option<u32> = version
            .strip_prefix("1.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|minor| minor.parse().ok());
        if minor.is_none_or(|minor| minor < 29) {
            continue;
        }
        passes(
            Command::new("kubernetes-validate")
                .args(["--strict", "--kubernetes-version", version])
                .args(manifest_paths()),
        );
        checked.push(version.to_owned());
    }
    assert!(
        checked.len() >= 4,
        "kubernetes-validate must know at least 1.29 to 1.32; it knows: {versions}"
    );
    eprintln!(
        "kubernetes-validate --strict passed for {}",
        checked.join(" ")
    );
}

/// `yamllint` with the repository's rules, and `checkov` with every skipped check named,
/// with its reason, in `deploy/kubernetes/.checkov.yaml`.
#[test]
fn manifests_pass_yamllint_and_checkov() {
    require_tool("yamllint", "the PyPI package yamllint (cargo xtask setup)");
    require_tool("checkov", "the PyPI package checkov (cargo xtask setup)");
    let dir = manifests::dir();
    passes(
        Command::new("yamllint")
            .args(["--strict", "--config-file"])
            .arg(dir.join(".yamllint.yaml"))
            .arg(&dir),
    );
    let report = passes(
        Command::new("checkov")
            .args([
                "--quiet",
                "--compact",
                "--framework",
                "kubernetes",
                "--config-file",
            ])
            .arg(dir.join(".checkov.yaml"))
            .arg("--directory")
            .arg(&dir),
    );
    assert!(
        !report.contains("FAILED"),
        "checkov must pass every check it is not told to skip:\n{report}"
    );
}

/// The ConfigMap's `reflector.toml` is a file the daemon accepts, with the pin directory
/// on the bpffs the DaemonSet mounts and the control socket in its emptyDir.
#[test]
fn config_map_file_passes_check_config() {
    let dir = TempDir::new("cm");
    let file = dir.join("reflector.toml");
    std::fs::write(&file, manifests::config_file()).expect("write the ConfigMap's file");
    let output = output_within(
        Command::new(binary()).arg("check-config").arg(&file),
        TOOL_TIMEOUT,
    );
    assert!(
        output.status.success(),
        "reflector check-config: {output:?}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("ok: maps 10022:22/tcp 19999:19999/tcp; mode auto"),
        "{stdout}"
    );
    let text = manifests::config_file();
    for line in [
        "pin = \"/sys/fs/bpf/reflector\"",
        "control-socket = \"/run/reflector/control.sock\"",
        "metrics = \"[::]:9477\"",
    ] {
        assert!(
            text.contains(line),
            "the ConfigMap must set {line}:\n{text}"
        );
    }
}

/// What the issue asks of both variants, and that they differ only in their security
/// settings.
#[test]
fn variants_share_everything_but_security() {
    let mut privileged = manifests::daemon_set(Variant::Privileged);
    let mut restricted = manifests::daemon_set(Variant::Restricted);
    for daemon_set in [&privileged, &restricted] {
        let spec = &daemon_set["spec"];
        let pod = &spec["template"]["spec"];
        assert_eq!(
            spec["updateStrategy"]["rollingUpdate"],
            json!({"maxUnavailable": "10%", "maxSurge": 0})
        );
        assert_eq!(pod["hostNetwork"], true);
        assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
        assert_eq!(pod["priorityClassName"], "system-node-critical");
        assert_eq!(pod["tolerations"], json!([{"operator": "Exists"}]));
        let annotations = &spec["template"]["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true");
        assert_eq!(annotations["prometheus.io/port"], METRICS_PORT.to_string());
        let daemon = &pod["containers"][0];
        assert_eq!(
            daemon["ports"][0],
            json!({"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"})
        );
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ] {
            assert_eq!(
                daemon[probe]["httpGet"],
                json!({"path": path, "port": "metrics"}),
                "{probe}"
            );
        }
        assert!(daemon["resources"]["requests"]["memory"].is_string());
        assert!(daemon["resources"]["limits"]["memory"].is_string());
        let init = &pod["initContainers"][0];
        assert_eq!(init["args"], json!(["mount-bpffs", "/sys/fs/bpf"]));
        assert_eq!(init["volumeMounts"][0]["mountPropagation"], "Bidirectional");
        let run = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "run")
            .unwrap();
        assert!(run["emptyDir"].is_object());
    }

    let security = &restricted["spec"]["template"]["spec"]["containers"][0]["securityContext"];
    assert_eq!(
        security["capabilities"],
        json!({"drop": ["ALL"], "add": ["BPF", "NET_ADMIN", "PERFMON"]})
    );
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(
        security["seccompProfile"],
        json!({"type": "Localhost", "localhostProfile": "profiles/reflector.json"})
    );
    assert_eq!(
        privileged["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"],
        true
    );

    // Take the security settings away: what is left must be the same.
    for daemon_set in [&mut privileged, &mut restricted] {
        let template = &mut daemon_set["spec"]["template"];
        template["spec"]["containers"][0]["securityContext"].take();
        if let Some(annotations) = template["metadata"]["annotations"].as_object_mut() {
            annotations.retain(|key, _| !key.starts_with("container.apparmor.security"));
        }
    }
    assert_eq!(
        privileged, restricted,
        "the variants differ beyond their security settings"
    );
}

/// One Pod of `variant` in R, reflecting in `mode`, pinning on `node`, seccomp profiles
/// from `seccomp_root`; returns once `/readyz` answers 200 inside R, with the time that took.
fn start_pod(
    topology: &Topology,
    variant: Variant,
    mode: &str,
    node: &NodeBpffs,
    seccomp_root: &FsPath,
    scratch: &TempDir,
) -> (PlayedPod, Duration) {
    let image = image();
    // Unique across test processes: podman's pods are global.
    let name = reflector_tests::names::name(
        topology.id(),
        match variant {
            Variant::Privileged => "pp",
            Variant::Restricted => "rp",
        },
    );
    let mut config_map = manifests::config_map();
    let file = manifests::config_file().replace(
        "mode = \"auto\"",
        &format!(
            "mode = \"{mode}\"\ninterfaces = [\"{}\"]",
            topology.r_iface()
        ),
    );
    config_map["data"]["reflector.toml"] = Value::String(file);
    // podman keeps a ConfigMap as a volume named after it: one per test.
    let config_name = format!("{name}-config");
    config_map["metadata"]["name"] = Value::String(config_name.clone());
    let mut pod = manifests::pod(&manifests::daemon_set(variant), &name);
    manifests::volume(&mut pod, "config")["configMap"]["name"] = Value::String(config_name);
    for container in ["bpffs", "reflector"] {
        manifests::container(&mut pod, container)["image"] = Value::String(image.clone());
    }
    // podman 4.3 takes a container port for a port mapping, which it refuses with the host
    // network ("PortMappings can only be used with Bridge or slirp4netns networking");
    // with hostNetwork the port is only a name for the probes, which podman ignores too.
    // Its liveness and startup probes become healthchecks run by systemd timers, which it
    // cannot set up where systemd is not PID 1 (and then fails to remove the pod); the
    // tests poll /readyz and /healthz themselves.
    let daemon = manifests::container(&mut pod, "reflector")
        .as_object_mut()
        .expect("a container is an object");
    for field in ["ports", "startupProbe", "livenessProbe", "readinessProbe"] {
        daemon.remove(field);
    }
    manifests::volume(&mut pod, "bpffs")["hostPath"]["path"] =
        Value::String(node.path().to_string_lossy().into_owned());
    // A DaemonSet's pods restart Always; podman 4.3 then restarts the finished init container
    // as well, waits 20 s for it and often fails the play ("failed to remove once init
    // container ... as it is running"). OnFailure still restarts a daemon that fails.
    pod["spec"]["restartPolicy"] = Value::String("OnFailure".to_owned());
    if variant == Variant::Restricted {
        // podman ignores securityContext.seccompProfile; it reads the annotation.
        pod["metadata"]["annotations"]["container.seccomp.security.alpha.kubernetes.io/reflector"] =
            Value::String("localhost/reflector.json".to_owned());
    }
    let started = Instant::now();
    let played = PlayedPod::play(
        topology.r(),
        scratch.path(),
        &name,
        &[config_map, pod],
        seccomp_root,
    );
    let played_after = started.elapsed();
    let url = format!("http://127.0.0.1:{METRICS_PORT}/readyz");
    let ready = poll_until(READY_TIMEOUT, || {
        let output = output_within(
            &mut topology.r().command(&[
                "curl",
                "--silent",
                "--output",
                "/dev/null",
                "--write-out",
                "%{http_code}",
                &url,
            ]),
            Duration::from_secs(5),
        );
        output.stdout == b"200"
    });
    let elapsed = started.elapsed();
    assert!(
        ready,
        "/readyz did not answer 200 within {READY_TIMEOUT:?}; the daemon's log:\n{}\nthe init container's:\n{}",
        played.logs("reflector"),
        played.logs("bpffs")
    );
    // The daemon container starts when `kube play` returns.
    eprintln!(
        "{name}: /readyz 200 {:.2} s after `podman kube play` returned ({:.2} s in podman)",
        elapsed.saturating_sub(played_after).as_secs_f64(),
        played_after.as_secs_f64()
    );
    (played, elapsed)
}

/// The daemon's line for R's interface, e.g. `reflecting with tc`.
fn assert_mode(pod: &PlayedPod, topology: &Topology, mode: &str) {
    let logs = pod.logs("reflector");
    assert!(
        logs.contains(&format!("{}: reflecting with {mode}", topology.r_iface())),
        "the daemon must reflect with {mode}:\n{logs}"
    );
}

/// Prints the daemon container's memory and CPU (`podman stats`), the figures the
/// manifests' resource requests and limits come from.
fn report_usage(pod: &PlayedPod) {
    let usage = run(reflector_tests::podman::podman().args([
        "stats",
        "--no-stream",
        "--format",
        "{{.MemUsage}} {{.CPUPerc}}",
        &pod.container_name("reflector"),
    ]));
    let status = proc_status(pod, "reflector");
    eprintln!(
        "reflector container: memory and CPU {}; daemon VmRSS {}",
        usage.trim(),
        status_field(&status, "VmRSS")
    );
}

/// `/proc/<pid>/status` of the container's main process.
fn proc_status(pod: &PlayedPod, container: &str) -> String {
    let inspect = pod.inspect(container);
    let pid = inspect["State"]["Pid"]
        .as_u64()
        .expect("a running container has a pid");
    std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the daemon's status")
}

fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in:\n{status}"))
        .trim()
        .to_owned()
}

/// What `podman inspect` and the kernel say of the restricted daemon: the three
/// capabilities and no others, read-only root, no new privileges, seccomp on, the mounts.
fn assert_restricted(pod: &PlayedPod, node: &NodeBpffs) {
    let inspect = pod.inspect("reflector");
    let mut caps: Vec<&str> = inspect["EffectiveCaps"]
        .as_array()
        .expect("podman reports the effective capabilities")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    caps.sort_unstable();
    assert_eq!(caps, RESTRICTED_CAPS, "effective capabilities");
    assert_eq!(
        inspect["HostConfig"]["ReadonlyRootfs"], true,
        "read-only root"
    );
    let status = proc_status(pod, "reflector");
    let set = |name: &str| u64::from_str_radix(&status_field(&status, name), 16).ok();
    assert_eq!(
        set("CapBnd"),
        Some(RESTRICTED_CAP_MASK),
        "CapBnd:\n{status}"
    );
    // Once attached, the daemon keeps CAP_BPF only (this kernel has TCX: detaching needs no
    // netlink, and the pod grants no CAP_NET_BIND_SERVICE).
    for name in ["CapEff", "CapPrm"] {
        assert_eq!(set(name), Some(CAP_BPF), "{name}:\n{status}");
    }
    assert_eq!(
        status_field(&status, "NoNewPrivs"),
        "1",
        "allowPrivilegeEscalation: false"
    );
    assert_eq!(
        status_field(&status, "Seccomp"),
        "2",
        "the seccomp profile filters"
    );
    assert_mounts(&inspect, node);
}

/// The config (read-only), the control socket's emptyDir and the node's bpffs.
fn assert_mounts(inspect: &Value, node: &NodeBpffs) {
    let mounts = inspect["Mounts"]
        .as_array()
        .expect("podman reports the mounts");
    let find = |destination: &str| {
        mounts
            .iter()
            .find(|mount| mount["Destination"] == destination)
            .unwrap_or_else(|| panic!("no mount on {destination}: {mounts:?}"))
    };
    assert_eq!(
        find("/etc/reflector")["RW"],
        false,
        "the config is read-only"
    );
    assert_eq!(
        find("/run/reflector")["RW"],
        true,
        "the control socket's directory"
    );
    let bpffs = find("/sys/fs/bpf");
    assert_eq!(
        bpffs["Source"],
        node.path().to_string_lossy().as_ref(),
        "the node's bpffs"
    );
}

/// A long TCP session through R loses no byte and sees no reset while the Pod is stopped
/// and a new one adopts the pins: a rolling update of the DaemonSet on one node.
fn rolling_restart(
    topology: &Topology,
    variant: Variant,
    pod: PlayedPod,
    node: &NodeBpffs,
    seccomp_root: &FsPath,
    scratch: &TempDir,
) {
    let mut session = LongSession::open(topology, LISTEN);
    session.exchange("before", 5);
    pod.remove();
    session.exchange("no-pod", 5);
    let (next, _) = start_pod(topology, variant, "tc", node, seccomp_root, scratch);
    let logs = next.logs("reflector");
    assert!(
        logs.contains("adopted the pinned state"),
        "the new Pod adopts the pins:\n{logs}"
    );
    session.exchange("after", 5);
    let to = SocketAddr::new(topology.r_addr(Family::V4), LISTEN);
    let (_, reply) = reflector_tests::client::tcp_line(topology.x(), to, "new after restart");
    assert!(reply.ends_with("new after restart"), "{reply:?}");
    next.remove();
}

/// A TCP check from X through R's [`LISTEN`] reaches X's own service on [`SERVICE`].
fn check_through(topology: &Topology, path: Path, family: Family, tag: &str) {
    assert_reflected(topology, path, Proto::Tcp, family, LISTEN, tag);
}

fn seccomp_root() -> std::path::PathBuf {
    manifests::dir().join("seccomp")
}

fn pod_topology(mode: Mode) -> Topology {
    require_root();
    require_tool("podman", "podman");
    require_tool("nsenter", "util-linux");
    require_tool("curl", "curl");
    Topology::for_mode(mode)
}

#[test]
fn restricted_pod_reflects_with_tc_and_survives_a_rolling_restart() {
    let topology = pod_topology(Mode::Tc);
    let node = NodeBpffs::new();
    let scratch = TempDir::new("pods");
    let _service = session_service(topology.x(), Session::Lines, Family::V4, SERVICE);
    let (pod, _) = start_pod(
        &topology,
        Variant::Restricted,
        "tc",
        &node,
        &seccomp_root(),
        &scratch,
    );
    assert_mode(&pod, &topology, "tc");
    assert_restricted(&pod, &node);
    check_through(&topology, Path::Kernel, Family::V4, "restricted");
    report_usage(&pod);
    rolling_restart(
        &topology,
        Variant::Restricted,
        pod,
        &node,
        &seccomp_root(),
        &scratch,
    );
}

#[test]
fn restricted_pod_reflects_with_xdp_skb() {
    let topology = pod_topology(Mode::XdpSkb);
    let node = NodeBpffs::new();
    let scratch = TempDir::new("pods");
    let _tcp = peer_service(topology.x(), Proto::Tcp, Family::V4, SERVICE);
    let _tcp6 = peer_service(topology.x(), Proto::Tcp, Family::V6, SERVICE);
    let (pod, _) = start_pod(
        &topology,
        Variant::Restricted,
        "xdp-skb",
        &node,
        &seccomp_root(),
        &scratch,
    );
    assert_mode(&pod, &topology, "xdp-skb");
    for family in [Family::V4, Family::V6] {
        check_through(&topology, Path::Kernel, family, "xdp-skb-pod");
    }
    pod.remove();
}

/// With a seccomp profile that denies bpf(2), `auto` falls back to the userspace path and
/// the check still passes.
#[test]
fn restricted_pod_falls_back_to_splice_when_seccomp_denies_bpf() {
    let topology = pod_topology(Mode::Tc);
    let node = NodeBpffs::new();
    let scratch = TempDir::new("pods");
    let profiles = TempDir::new("scmp");
    let shipped = std::fs::read_to_string(seccomp_root().join("reflector.json"))
        .expect("the shipped seccomp profile");
    let mut profile: Value = serde_json::from_str(&shipped).expect("the profile is JSON");
    let mut removed = 0;
    for rule in profile["syscalls"]
        .as_array_mut()
        .expect("the profile has syscall rules")
    {
        if let Some(names) = rule["names"].as_array_mut() {
            let before = names.len();
            names.retain(|name| name != "bpf");
            removed += before - names.len();
        }
    }
    assert_eq!(removed, 1, "the shipped profile allows bpf once");
    std::fs::write(profiles.join("reflector.json"), profile.to_string()).expect("write it");

    let _service = peer_service(topology.x(), Proto::Tcp, Family::V4, SERVICE);
    let (pod, _) = start_pod(
        &topology,
        Variant::Restricted,
        "auto",
        &node,
        profiles.path(),
        &scratch,
    );
    assert_mode(&pod, &topology, "splice");
    check_through(&topology, Path::Splice, Family::V4, "no-bpf-pod");
    pod.remove();
}

#[test]
fn privileged_pod_reflects_and_survives_a_rolling_restart() {
    let topology = pod_topology(Mode::Tc);
    let node = NodeBpffs::new();
    let scratch = TempDir::new("pods");
    let _service = session_service(topology.x(), Session::Lines, Family::V4, SERVICE);
    let (pod, _) = start_pod(
        &topology,
        Variant::Privileged,
        "tc",
        &node,
        &seccomp_root(),
        &scratch,
    );
    assert_mode(&pod, &topology, "tc");
    let inspect = pod.inspect("reflector");
    assert_eq!(inspect["HostConfig"]["Privileged"], true);
    assert_eq!(inspect["HostConfig"]["ReadonlyRootfs"], true);
    assert_mounts(&inspect, &node);
    // The init container mounted a bpffs on the node's directory, and the mount reached it.
    let mounts = run(Command::new("findmnt")
        .args(["--noheadings", "--output", "FSTYPE", "--target"])
        .arg(node.path()));
    assert_eq!(
        mounts.trim(),
        "bpf",
        "the init container's bpffs is the node's"
    );
    rolling_restart(
        &topology,
        Variant::Privileged,
        pod,
        &node,
        &seccomp_root(),
        &scratch,
    );
}
