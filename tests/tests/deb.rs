//! The Debian package (`cargo xtask deb`): its contents; installed with dpkg on this machine
//! (CI machines are throwaway; the test refuses to touch a reflector it did not install),
//! `reflector --version`, the files where Debian expects them, the config a conffile,
//! `systemd-analyze verify` clean on the installed unit, the installed daemon running with
//! the shipped config; then purged, also when a check fails. And lintian clean, but for
//! the tags the package's own overrides justify.
//!
//! The package: `$REFLECTOR_DEB`, else the newest `target/debian/reflector_*_amd64.deb`.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use reflector_tests::command::output_within;
use reflector_tests::daemon::command as daemon_command;
use reflector_tests::{Mode, Reflector, TempDir, Topology, require_root, require_tool};

const TIMEOUT: Duration = Duration::from_secs(120);

/// Every file the package installs, besides `/usr/share/doc/reflector/copyright` and the
/// extra man pages of the subcommands.
const FILES: &[&str] = &[
    "/usr/bin/reflector",
    "/usr/lib/systemd/system/reflector.service",
    "/usr/lib/tmpfiles.d/reflector.conf",
    "/etc/reflector/reflector.toml",
    "/usr/share/man/man1/reflector.1.gz",
    "/usr/share/man/man1/reflector-stats.1.gz",
    "/usr/share/bash-completion/completions/reflector",
    "/usr/share/zsh/vendor-completions/_reflector",
    "/usr/share/fish/vendor_completions.d/reflector.fish",
    "/usr/share/doc/reflector/README.md",
    "/usr/share/doc/reflector/copyright",
    "/usr/share/lintian/overrides/reflector",
];

fn package() -> PathBuf {
    if let Some(path) = std::env::var_os("REFLECTOR_DEB") {
        return PathBuf::from(path);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debian");
    let newest = fs::read_dir(&dir).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with("reflector_") && name.ends_with("_amd64.deb")
            })
            .max_by_key(|path| fs::metadata(path).and_then(|m| m.modified()).ok())
    });
    newest.unwrap_or_else(|| {
        panic!(
            "no reflector_*_amd64.deb in {}: build it with `cargo xtask deb` or set REFLECTOR_DEB",
            dir.display()
        )
    })
}

fn run(program: &str, args: &[&str]) -> Output {
    output_within(Command::new(program).args(args), TIMEOUT)
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn installed() -> bool {
    let output = run("dpkg-query", &["-W", "-f=${db:Status-Status}", "reflector"]);
    output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "installed"
}

/// The installed package: purged on drop (also when the test panics).
struct Installed;

impl Installed {
    fn install(deb: &Path) -> Self {
        assert!(
            !installed(),
            "a reflector package is installed on this machine already: this test installs \
             and purges its own, and does not touch one it did not install"
        );
        let guard = Self;
        let output = run("dpkg", &["-i", &deb.to_string_lossy()]);
        assert!(
            output.status.success(),
            "dpkg -i failed:\n{}",
            text(&output)
        );
        guard
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let output = run("dpkg", &["--purge", "reflector"]);
        if !output.status.success() {
            eprintln!("dpkg --purge reflector failed:\n{}", text(&output));
        }
    }
}

#[test]
fn package_installs_runs_and_purges() {
    require_root();
    for (tool, package) in [
        ("dpkg", "dpkg"),
        ("systemd-analyze", "systemd"),
        ("man", "man-db"),
    ] {
        require_tool(tool, package);
    }
    let deb = package();
    let listing = text(&run("dpkg", &["-c", &deb.to_string_lossy()]));
    for file in FILES {
        assert!(
            listing.contains(&format!(".{file}\n")),
            "the package has {file}:\n{listing}"
        );
    }

    let guard = Installed::install(&deb);
    let version = text(&run("reflector", &["--version"]));
    assert_eq!(
        version.trim(),
        format!("reflector {}", env!("CARGO_PKG_VERSION"))
    );
    for file in FILES {
        assert!(Path::new(file).is_file(), "{file} is installed");
    }
    let conffiles = text(&run("dpkg-query", &["-W", "-f=${Conffiles}", "reflector"]));
    assert!(
        conffiles.contains("/etc/reflector/reflector.toml"),
        "the config file is a conffile: {conffiles}"
    );
    let man = run("man", &["-w", "reflector"]);
    assert!(man.status.success(), "man finds the page: {}", text(&man));
    let verify = run(
        "systemd-analyze",
        &["verify", "/usr/lib/systemd/system/reflector.service"],
    );
    assert!(
        verify.status.success() && text(&verify).trim().is_empty(),
        "systemd-analyze verify is clean on the installed unit ({}):\n{}",
        verify.status,
        text(&verify)
    );
    let completion = run(
        "bash",
        &[
            "-c",
            ". /usr/share/bash-completion/completions/reflector && complete -p reflector",
        ],
    );
    assert!(
        completion.status.success(),
        "bash completion loads: {}",
        text(&completion)
    );

    // The installed binary with the shipped config (only the interface, the mode and a
    // control socket of its own given: the default path is shared by the whole host), in
    // a namespace of its own: it starts, is ready, stops cleanly.
    let topology = Topology::for_mode(Mode::Splice);
    let dir = TempDir::new("ctl");
    let control = dir.join("control.sock");
    let reflector = Reflector::start_command(&mut daemon_command(
        topology.r(),
        Path::new("/usr/bin/reflector"),
        &[
            "--config",
            "/etc/reflector/reflector.toml",
            "--iface",
            topology.r_iface(),
            "--mode",
            "splice",
            "--control-socket",
            &control.to_string_lossy(),
        ],
    ));
    assert!(
        reflector.log().contains("ready: reflecting 10022:22/tcp"),
        "{}",
        reflector.log()
    );
    reflector.stop_cleanly();

    drop(guard);
    assert!(!installed(), "purged");
    for file in FILES {
        assert!(!Path::new(file).exists(), "{file} is gone after purge");
    }
    assert!(
        !Path::new("/etc/reflector").exists(),
        "/etc/reflector is gone after purge"
    );
}

/// lintian reports nothing beyond what the package's overrides justify (each with its
/// reason, in deploy/debian/lintian-overrides).
#[test]
fn package_is_lintian_clean() {
    require_tool("lintian", "lintian");
    let deb = package();
    let output = run(
        "lintian",
        &[
            "--fail-on",
            "error,warning,info",
            "--display-info",
            &deb.to_string_lossy(),
        ],
    );
    // Tags go to stdout; stderr may only say that running as root is not recommended.
    let tags = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && tags.trim().is_empty(),
        "lintian ({}):\n{}",
        output.status,
        text(&output)
    );
}
