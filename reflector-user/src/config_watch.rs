//! Watches the config file, so that a change on disk reloads like SIGHUP does.
//!
//! Kubernetes never signals a pod when its ConfigMap changes: the kubelet writes the new
//! files into a fresh directory and swaps a symlink (`..data`) beside them, so the file the
//! daemon was given is replaced without ever being written. An inotify watch on the
//! directory that holds the file sees that swap (a `MOVED_TO`), and an editor's write or
//! rename-over too. What counts is the file's content: an event that leaves it as it was
//! (another file in the directory, a `touch`) reloads nothing.

use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use futures::StreamExt as _;
use inotify::{EventStream, Inotify, WatchMask};
use log::debug;
use thiserror::Error;
use tokio::time::Instant;

/// How long to wait after the first event for the rest of one change (a ConfigMap swap, an
/// editor's write-then-rename) before reading the file.
const SETTLE: Duration = Duration::from_millis(200);

/// The directory events that can change what the file's path reads.
const MASK: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::CREATE)
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM);

/// The config file cannot be watched.
#[derive(Debug, Error)]
#[error("cannot watch the config file's directory {}", dir.display())]
pub(crate) struct WatchError {
    /// The directory.
    dir: PathBuf,
    /// Why.
    #[source]
    source: io::Error,
}

/// A watch on one config file: [`ConfigWatch::changed`] resolves when what the file's path
/// reads differs from what it read last.
pub(crate) struct ConfigWatch {
    path: PathBuf,
    events: EventStream<Vec<u8>>,
    /// The content last seen; `None` when the file could not be read.
    last: Option<Vec<u8>>,
    /// When the file is read after an event that has not been looked at yet. Kept across
    /// calls: a `changed` cancelled while settling (the daemon's loop polls it in a
    /// `select!`, beside control requests that may come faster than [`SETTLE`]) loses no
    /// change and does not start settling over again.
    read_at: Option<Instant>,
}

impl ConfigWatch {
    /// Watches the directory that holds `path` (and, when `path` is a symlink, the one that
    /// holds its target now). What `path` reads now is the baseline.
    ///
    /// # Errors
    /// [`WatchError`] when inotify is unavailable or a directory cannot be watched.
    pub(crate) fn new(path: &Path) -> Result<Self, WatchError> {
        let dir = parent(path);
        let error = |dir: &Path| {
            let dir = dir.to_owned();
            move |source| WatchError { dir, source }
        };
        let inotify = Inotify::init().map_err(error(&dir))?;
        let mut watches = inotify.watches();
        watches.add(&dir, MASK).map_err(error(&dir))?;
        if let Ok(target) = path.canonicalize() {
            let target_dir = parent(&target);
            if target_dir != dir {
                watches.add(&target_dir, MASK).map_err(error(&target_dir))?;
            }
        }
        let events = inotify
            .into_event_stream(vec![0; 4096])
            .map_err(error(&dir))?;
        Ok(Self {
            path: path.to_owned(),
            events,
            last: std::fs::read(path).ok(),
            read_at: None,
        })
    }

    /// Resolves once the file's content differs from the last seen (it was written,
    /// replaced, swapped in or removed), and takes the new content as the baseline.
    /// Pending forever if inotify stops delivering events. Cancel-safe.
    pub(crate) async fn changed(&mut self) {
        loop {
            let read_at = if let Some(read_at) = self.read_at {
                read_at
            } else {
                if self.events.next().await.is_none() {
                    return std::future::pending().await;
                }
                // One change is often several events: let them all arrive, then read once.
                *self.read_at.insert(Instant::now() + SETTLE)
            };
            tokio::time::sleep_until(read_at).await;
            while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, self.events.next()).await {
            }
            self.read_at = None;
            let now = std::fs::read(&self.path).ok();
            if now != self.last {
                self.last = now;
                return;
            }
            debug!(
                "{}: directory event, content unchanged",
                self.path.display()
            );
        }
    }
}

/// The directory that holds `path` (`.` for a bare file name).
fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::ConfigWatch;
    use std::time::Duration;

    /// Polls `changed` for up to `limit`.
    async fn changed_within(watch: &mut ConfigWatch, limit: Duration) -> bool {
        tokio::time::timeout(limit, watch.changed()).await.is_ok()
    }

    #[tokio::test]
    async fn sees_writes_and_symlink_swaps_but_not_touches() {
        let root = std::env::temp_dir().join(format!("reflector-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // The layout of a ConfigMap volume: the file is a symlink through `..data`.
        std::fs::create_dir_all(root.join("v1")).unwrap();
        std::fs::create_dir_all(root.join("v2")).unwrap();
        std::fs::write(root.join("v1/reflector.toml"), "maps = [\"1:2\"]\n").unwrap();
        std::fs::write(root.join("v2/reflector.toml"), "maps = [\"3:4\"]\n").unwrap();
        std::os::unix::fs::symlink("v1", root.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/reflector.toml", root.join("reflector.toml")).unwrap();
        let mut watch = ConfigWatch::new(&root.join("reflector.toml")).unwrap();
        let limit = Duration::from_secs(3);

        // Another file in the directory, and a touch: no change.
        std::fs::write(root.join("other"), "x").unwrap();
        assert!(!changed_within(&mut watch, Duration::from_millis(600)).await);

        // The kubelet's swap: a new symlink renamed over `..data`.
        std::os::unix::fs::symlink("v2", root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        assert!(
            changed_within(&mut watch, limit).await,
            "the swap is a change"
        );

        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn sees_edits_of_a_plain_file() {
        let root = std::env::temp_dir().join(format!("reflector-edit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let path = root.join("reflector.toml");
        std::fs::write(&path, "maps = [\"1:2\"]\n").unwrap();
        let mut watch = ConfigWatch::new(&path).unwrap();
        let limit = Duration::from_secs(3);

        std::fs::write(&path, "maps = [\"3:4\"]\n").unwrap();
        assert!(changed_within(&mut watch, limit).await, "a write in place");

        std::fs::write(&path, "maps = [\"3:4\"]\n").unwrap();
        assert!(
            !changed_within(&mut watch, Duration::from_millis(600)).await,
            "the same content again"
        );

        // An editor's save: a new file renamed over the old one.
        std::fs::write(root.join(".reflector.toml.swp"), "maps = [\"5:6\"]\n").unwrap();
        std::fs::rename(root.join(".reflector.toml.swp"), &path).unwrap();
        assert!(
            changed_within(&mut watch, limit).await,
            "a rename over the file"
        );

        std::fs::remove_file(&path).unwrap();
        assert!(
            changed_within(&mut watch, limit).await,
            "removal is a change too"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
