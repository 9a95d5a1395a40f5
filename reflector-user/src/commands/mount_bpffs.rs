//! `reflector mount-bpffs DIR`: makes sure a BPF filesystem is mounted on DIR, for the pin
//! directory. A container image with nothing but this binary (the Kubernetes init
//! container) has no `mount` command to do it with.

use std::path::PathBuf;

use clap::Args;

use crate::pin;

/// `reflector mount-bpffs`.
#[derive(Debug, Args)]
pub struct MountBpffsArgs {
    /// Where the bpffs belongs, e.g. /sys/fs/bpf.
    #[arg(value_name = "DIR", default_value = "/sys/fs/bpf")]
    pub dir: PathBuf,
}

/// Mounts a bpffs on the directory unless one is there already.
///
/// # Errors
/// When the directory cannot be created or the mount fails (it needs `CAP_SYS_ADMIN`).
pub(crate) fn run(args: &MountBpffsArgs) -> anyhow::Result<()> {
    if pin::mount_bpffs(&args.dir)? {
        println!("mounted a bpffs on {}", args.dir.display());
    } else {
        println!("{} is a bpffs already", args.dir.display());
    }
    Ok(())
}
