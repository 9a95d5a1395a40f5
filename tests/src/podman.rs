//! Podman for the deployment tests: the image `cargo xtask image` built, and Pods played
//! from the Kubernetes manifests inside a test's namespace R.
//!
//! Podman runs with the repository's `deploy/container/containers.conf` (`CONTAINERS_CONF`),
//! as `cargo xtask image` does. A Pod is played with `nsenter --net=<R>`, not `ip netns
//! exec` (which mounts a fresh /sys and hides the cgroup hierarchy podman needs), so
//! `hostNetwork: true` puts the daemon in R.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::command::{check, output_within, run};
use crate::daemon;
use crate::netns::Netns;
use crate::tempdir::TempDir;

/// How long podman may take for one command (a Pod's start includes its init container).
const PODMAN_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a Pod's containers get to stop on SIGTERM before podman kills them.
const STOP_SECONDS: &str = "20";

/// `podman` with the repository's `containers.conf`.
#[must_use]
pub fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.env(
        "CONTAINERS_CONF",
        workspace().join("deploy/container/containers.conf"),
    );
    cmd
}

/// The workspace root.
#[must_use]
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the test crate is in the workspace")
        .to_owned()
}

/// The image to run: `$REFLECTOR_IMAGE`, else `localhost/reflector:<version>`, which
/// `cargo xtask image` builds (and `cargo xtask test` builds before the tests). Panics,
/// saying so, when podman does not have it.
#[must_use]
pub fn image() -> String {
    let image = std::env::var("REFLECTOR_IMAGE")
        .unwrap_or_else(|_| format!("localhost/reflector:{}", env!("CARGO_PKG_VERSION")));
    let output = output_within(podman().args(["image", "exists", &image]), PODMAN_TIMEOUT);
    assert!(
        output.status.success(),
        "podman has no image {image}: build it with `cargo xtask image` (or set REFLECTOR_IMAGE)"
    );
    image
}

/// A stand-in for a node's `/sys/fs/bpf`: an empty directory inside a shared mount of the
/// test's own, so a Pod's `Bidirectional` mount there (the init container's bpffs) reaches
/// the host as it would a node. On drop: `reflector detach` of the pins the daemon left,
/// then every mount under it is lazily unmounted.
#[derive(Debug)]
pub struct NodeBpffs {
    root: TempDir,
}

impl NodeBpffs {
    /// Makes the shared mount; the stand-in is `<root>/bpf`.
    #[must_use]
    pub fn new() -> Self {
        let root = TempDir::new("node");
        let path = root.path();
        run(Command::new("mount").arg("--bind").arg(path).arg(path));
        run(Command::new("mount").arg("--make-rshared").arg(path));
        std::fs::create_dir(root.join("bpf")).expect("create the bpffs stand-in");
        Self { root }
    }

    /// The stand-in for `/sys/fs/bpf`, a Pod's hostPath.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        self.root.join("bpf")
    }
}

impl Default for NodeBpffs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NodeBpffs {
    fn drop(&mut self) {
        let pins = self.path().join("reflector");
        if pins.exists() {
            let output = output_within(
                Command::new(daemon::binary())
                    .args(["detach", "--pin"])
                    .arg(&pins),
                PODMAN_TIMEOUT,
            );
            if !output.status.success() {
                eprintln!("reflector detach --pin {}: {output:?}", pins.display());
            }
        }
        let unmounted = Command::new("umount")
            .args(["--recursive", "--lazy"])
            .arg(self.root.path())
            .status();
        if !unmounted.is_ok_and(|status| status.success()) {
            eprintln!("cannot unmount {}", self.root.path().display());
        }
    }
}

/// A Pod played with `podman kube play` in a namespace; stopped (SIGTERM, then after
/// [`STOP_SECONDS`] SIGKILL) and removed on drop.
#[derive(Debug)]
pub struct PlayedPod {
    name: String,
    /// The volumes podman made of each `ConfigMap` played with it, removed with it.
    volumes: Vec<String>,
    removed: bool,
}

impl PlayedPod {
    /// Writes `documents` (a ConfigMap and a Pod named `name`) as one YAML stream into
    /// `dir` and plays them inside `ns`, seccomp profiles resolved under `seccomp_root`.
    /// Panics with podman's output when it fails.
    #[must_use]
    pub fn play(
        ns: &Netns,
        dir: &Path,
        name: &str,
        documents: &[Value],
        seccomp_root: &Path,
    ) -> Self {
        // JSON is YAML: one document per `---`.
        let stream: Vec<String> = documents.iter().map(Value::to_string).collect();
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, stream.join("\n---\n")).expect("write the pod's YAML");
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", ns.path().display()))
            .arg("--")
            .arg("podman")
            .env(
                "CONTAINERS_CONF",
                workspace().join("deploy/container/containers.conf"),
            )
            .args(["kube", "play", "--seccomp-profile-root"])
            .arg(seccomp_root)
            .arg(&file);
        let pod = Self {
            name: name.to_owned(),
            volumes: documents
                .iter()
                .filter(|document| document["kind"] == "ConfigMap")
                .filter_map(|document| document["metadata"]["name"].as_str())
                .map(ToOwned::to_owned)
                .collect(),
            removed: false,
        };
        let output = output_within(&mut cmd, PODMAN_TIMEOUT);
        check(&cmd, &output);
        pod
    }

    /// The name podman gives `container` of this Pod.
    #[must_use]
    pub fn container_name(&self, container: &str) -> String {
        format!("{}-{container}", self.name)
    }

    /// What `container` printed so far (stdout and stderr).
    #[must_use]
    pub fn logs(&self, container: &str) -> String {
        let output = output_within(
            podman().args(["logs", &self.container_name(container)]),
            PODMAN_TIMEOUT,
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// `podman inspect` of `container`.
    #[must_use]
    pub fn inspect(&self, container: &str) -> Value {
        let text = run(podman().args(["inspect", &self.container_name(container)]));
        let mut all: Value = serde_json::from_str(&text).expect("podman inspect prints JSON");
        all[0].take()
    }

    /// Stops the Pod (its containers get SIGTERM) and removes it.
    pub fn remove(mut self) {
        self.stop_and_remove();
    }

    fn stop_and_remove(&mut self) {
        self.removed = true;
        let mut commands = vec![
            vec!["pod", "stop", "--time", STOP_SECONDS, &self.name],
            vec!["pod", "rm", "--force", &self.name],
        ];
        for volume in &self.volumes {
            commands.push(vec!["volume", "rm", "--force", volume]);
        }
        for args in commands {
            let output = output_within(podman().args(&args), PODMAN_TIMEOUT);
            if !output.status.success() {
                eprintln!("podman {}: {output:?}", args.join(" "));
            }
        }
    }
}

impl Drop for PlayedPod {
    fn drop(&mut self) {
        if !self.removed {
            self.stop_and_remove();
        }
    }
}
