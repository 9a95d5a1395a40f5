//! The Kubernetes manifests in `deploy/kubernetes`, read as data: their documents, the
//! config file the ConfigMap carries, and a DaemonSet's pod template turned into a Pod
//! that `podman kube play` runs (it plays Pods, not a `DaemonSet`).

use std::path::PathBuf;

use serde_json::{Value, json};

/// `deploy/kubernetes` in this checkout.
#[must_use]
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the test crate is in the workspace")
        .join("deploy/kubernetes")
}

/// The manifest files: the shared part and the two DaemonSet variants.
pub const FILES: [&str; 3] = [
    "common.yaml",
    "daemonset-privileged.yaml",
    "daemonset-restricted.yaml",
];

/// The two variants of the DaemonSet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `privileged: true`.
    Privileged,
    /// Three capabilities, read-only root, no privilege escalation, own seccomp profile.
    Restricted,
}

impl Variant {
    /// Its file in [`dir`].
    #[must_use]
    pub const fn file(self) -> &'static str {
        match self {
            Self::Privileged => "daemonset-privileged.yaml",
            Self::Restricted => "daemonset-restricted.yaml",
        }
    }
}

/// Every YAML document of `file` in [`dir`], as JSON values.
#[must_use]
pub fn documents(file: &str) -> Vec<Value> {
    let path = dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|document| {
            serde::Deserialize::deserialize(document)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
        })
        .collect()
}

/// The one document of `kind` in `file`.
#[must_use]
pub fn document(file: &str, kind: &str) -> Value {
    let mut found: Vec<Value> = documents(file)
        .into_iter()
        .filter(|document| document["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "{file} must hold exactly one {kind}");
    found.remove(0)
}

/// The ConfigMap.
#[must_use]
pub fn config_map() -> Value {
    document("common.yaml", "ConfigMap")
}

/// The `reflector.toml` the ConfigMap carries.
#[must_use]
pub fn config_file() -> String {
    config_map()["data"]["reflector.toml"]
        .as_str()
        .expect("the ConfigMap carries reflector.toml")
        .to_owned()
}

/// The DaemonSet of `variant`.
#[must_use]
pub fn daemon_set(variant: Variant) -> Value {
    document(variant.file(), "DaemonSet")
}

/// A Pod named `name` from the DaemonSet's pod template: its labels, annotations and spec,
/// as the DaemonSet controller would create it on a node.
#[must_use]
pub fn pod(daemon_set: &Value, name: &str) -> Value {
    let template = &daemon_set["spec"]["template"];
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"]["annotations"],
        },
        "spec": template["spec"],
    })
}

/// The container named `name` in `pod` (init containers included), to change it.
pub fn container<'a>(pod: &'a mut Value, name: &str) -> &'a mut Value {
    let spec = &mut pod["spec"];
    let position = ["initContainers", "containers"]
        .into_iter()
        .find_map(|list| {
            spec[list]
                .as_array()
                .and_then(|containers| containers.iter().position(|c| c["name"] == name))
                .map(|index| (list, index))
        });
    let (list, index) = position.unwrap_or_else(|| panic!("the pod has no container {name}"));
    &mut spec[list][index]
}

/// The volume named `name` in `pod`, to change it.
pub fn volume<'a>(pod: &'a mut Value, name: &str) -> &'a mut Value {
    let volumes = pod["spec"]["volumes"]
        .as_array_mut()
        .expect("the pod has volumes");
    volumes
        .iter_mut()
        .find(|volume| volume["name"] == name)
        .unwrap_or_else(|| panic!("the pod has no volume {name}"))
}
