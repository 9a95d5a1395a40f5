//! Running commands: each one is announced before it runs, and a failure names the command.

use std::{
    env,
    ffi::OsStr,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// Prints a one-line progress message.
pub(crate) fn say(message: &str) {
    eprintln!("xtask: {message}");
}

/// The workspace root, so every command works from any directory inside it.
pub(crate) fn workspace_root() -> PathBuf {
    // `cargo run` sets this at run time too; prefer that, in case the checkout moved.
    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.clone(), Path::to_path_buf)
}

/// The cargo target directory (`CARGO_TARGET_DIR`, or `target/` in the workspace).
pub(crate) fn target_dir() -> PathBuf {
    let root = workspace_root();
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |dir| root.join(dir))
}

/// A `cargo` command run from the workspace root, with the toolchain `cargo xtask` runs on.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace_root());
    cmd
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A command for `program` that runs as root: directly when already root, else through
/// `sudo`, keeping the environment when `keep_env` (the daemon reads `RUST_LOG`).
pub(crate) fn as_root(program: impl AsRef<OsStr>, keep_env: bool) -> Command {
    if is_root() {
        return Command::new(program);
    }
    let mut cmd = Command::new("sudo");
    if keep_env {
        cmd.arg("-E");
    }
    cmd.arg(program);
    cmd
}

/// Makes `cmd` (a `cargo test`) run its test binaries as root: through `sudo -E` as cargo's
/// runner when not root already. Only the test binaries run as root: cargo itself and the
/// build stay with the user.
pub(crate) fn tests_as_root(cmd: &mut Command) {
    if !is_root() {
        cmd.env(
            format!(
                "CARGO_TARGET_{}_UNKNOWN_LINUX_GNU_RUNNER",
                env::consts::ARCH.to_uppercase()
            ),
            "sudo -E",
        );
    }
}

/// Announces `cmd`, runs it with inherited stdio and fails if it does not succeed.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let shown = describe(cmd);
    say(&format!("running `{shown}`"));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout, or `None` when it cannot start or fails.
/// For probes, where failure is an answer ("not installed"), not an error.
pub(crate) fn probe(cmd: &mut Command) -> Option<String> {
    let output = cmd.stderr(std::process::Stdio::null()).output().ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8(output.stdout).ok()
}

/// `cmd` as a shell-like line, with the environment variables set on it first.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut line = String::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            let _ = write!(line, "{}={} ", key.display(), quote(value));
        }
    }
    line.push_str(&quote(cmd.get_program()));
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    line
}

/// Quotes `word` for display when a shell would split or expand it.
fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%^".contains(c));
    if plain {
        word.into_owned()
    } else {
        // Control characters (CARGO_ENCODED_RUSTFLAGS separates flags with 0x1f) are escaped.
        let shown: String = word
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect();
        format!("'{}'", shown.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_shows_env_and_quotes_what_a_shell_would_split() {
        let mut cmd = Command::new("cargo");
        cmd.env("RUNNER", "sudo -E")
            .args(["test", "--", "--test-threads=1", "a b"]);
        assert_eq!(
            describe(&cmd),
            "RUNNER='sudo -E' cargo test -- --test-threads=1 'a b'"
        );
    }
}
