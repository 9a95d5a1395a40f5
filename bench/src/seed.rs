//! The seed's Python tool, `PyPI` package `reflector` 0.1: downloaded once, checked against the
//! SHA-256 `PyPI` lists (and this file pins), unpacked without running any of its code.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reflector_tests::command::{describe, format_output, output_within};
use serde::Deserialize;

/// The distribution file.
const FILE: &str = "reflector-0.1.tar.gz";
/// Its SHA-256, as `PyPI` lists it (uploaded 2014-11-27, never changed).
const SHA256: &str = "6594c889bab88dadffcfe45f57f51c474d9aa753fc67b71246184c78860fb1e8";
/// `PyPI`'s index page of the project, in its JSON form (PEP 691).
const INDEX: &str = "https://pypi.org/simple/reflector/";
/// The script inside the archive.
const SCRIPT: &str = "reflector-0.1/reflector.py";
/// How long each download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the tool could not be fetched.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SeedError {
    /// A command failed.
    #[error("`{command}` failed ({status}){output}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its labelled output.
        output: String,
    },
    /// The index did not list the file.
    #[error("PyPI's index {INDEX} does not list {FILE}: {reason}")]
    NotListed {
        /// What was wrong with the index.
        reason: String,
    },
    /// The index or the file has another digest than the pinned one.
    #[error("{what} has SHA-256 {actual}, expected {SHA256}: not the seed's tool")]
    Digest {
        /// The index entry or the downloaded file.
        what: String,
        /// The digest found.
        actual: String,
    },
    /// A file operation failed.
    #[error("{what} {path}")]
    Io {
        /// What was done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// PEP 691 index page: only what is read of it.
#[derive(Deserialize)]
struct Index {
    files: Vec<IndexFile>,
}

#[derive(Deserialize)]
struct IndexFile {
    filename: String,
    url: String,
    hashes: Hashes,
}

#[derive(Deserialize)]
struct Hashes {
    sha256: String,
}

/// Makes sure `dir` holds the verified archive and its unpacked `reflector.py`; returns
/// the script's path.
pub(crate) fn fetch(dir: &Path) -> Result<PathBuf, SeedError> {
    fs::create_dir_all(dir).map_err(|source| SeedError::Io {
        what: "cannot create",
        path: dir.to_owned(),
        source,
    })?;
    let archive = dir.join(FILE);
    if !archive.is_file() || sha256(&archive)? != SHA256 {
        download(&archive)?;
    }
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(dir)
        .arg(SCRIPT))?;
    Ok(dir.join(SCRIPT))
}

/// Looks the file up in `PyPI`'s index, downloads it next to `archive`, checks its digest,
/// and moves it into place.
fn download(archive: &Path) -> Result<(), SeedError> {
    eprintln!("reflector-bench: downloading the seed's Python tool ({FILE}) from PyPI");
    let page = run(curl()
        .args(["--header", "Accept: application/vnd.pypi.simple.v1+json"])
        .arg(INDEX))?;
    let index: Index = serde_json::from_str(&page).map_err(|e| SeedError::NotListed {
        reason: format!("unreadable JSON: {e}"),
    })?;
    let entry = index
        .files
        .into_iter()
        .find(|file| file.filename == FILE)
        .ok_or_else(|| SeedError::NotListed {
            reason: "no such file".to_owned(),
        })?;
    if entry.hashes.sha256 != SHA256 {
        return Err(SeedError::Digest {
            what: format!("PyPI's entry for {FILE}"),
            actual: entry.hashes.sha256,
        });
    }
    let partial = archive.with_extension("partial");
    run(curl().arg("--output").arg(&partial).arg(&entry.url))?;
    let actual = sha256(&partial)?;
    if actual != SHA256 {
        let _ = fs::remove_file(&partial);
        return Err(SeedError::Digest {
            what: entry.url,
            actual,
        });
    }
    fs::rename(&partial, archive).map_err(|source| SeedError::Io {
        what: "cannot move the download to",
        path: archive.to_owned(),
        source,
    })
}

/// curl, quiet but for errors, failing on HTTP errors, bounded in time.
fn curl() -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--fail", "--location"])
        .args(["--max-time", &DOWNLOAD_TIMEOUT.as_secs().to_string()]);
    cmd
}

/// The SHA-256 of `path`, hex (`sha256sum`).
fn sha256(path: &Path) -> Result<String, SeedError> {
    let line = run(Command::new("sha256sum").arg(path))?;
    Ok(line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// Runs `cmd` within the download timeout (plus a margin) and returns its stdout.
fn run(cmd: &mut Command) -> Result<String, SeedError> {
    let output = output_within(cmd, DOWNLOAD_TIMEOUT + Duration::from_secs(10));
    if !output.status.success() {
        return Err(SeedError::Command {
            command: describe(cmd),
            status: output.status,
            output: format_output(&output.stdout, &output.stderr),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
