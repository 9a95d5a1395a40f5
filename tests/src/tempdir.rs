//! A temporary directory removed on drop.

use std::fs;
use std::path::{Path, PathBuf};

use crate::names;

/// A fresh directory under the system's temporary directory, removed with everything in it
/// on drop (also when the test panics).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/rfl<pid>-<id><role>`.
    #[must_use]
    pub fn new(role: &str) -> Self {
        let path = std::env::temp_dir().join(names::name(names::next_id(), role));
        fs::create_dir(&path)
            .unwrap_or_else(|e| panic!("cannot create directory {}: {e}", path.display()));
        Self { path }
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` inside the directory.
    #[must_use]
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path) {
            eprintln!("cannot remove {}: {e}", self.path.display());
        }
    }
}
