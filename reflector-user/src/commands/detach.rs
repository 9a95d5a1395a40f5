//! `reflector detach --pin DIR`: unpin, and so detach, what a daemon run with `--pin DIR`
//! left running.

use std::path::PathBuf;

use clap::Args;

use crate::pin;

/// `reflector detach`.
#[derive(Debug, Args)]
pub struct DetachArgs {
    /// The pin directory the daemon ran with, e.g. /sys/fs/bpf/reflector.
    #[arg(long, value_name = "DIR", env = "REFLECTOR_PIN")]
    pub pin: PathBuf,
}

/// Removes every reflector pin in the directory, detaching its links.
///
/// # Errors
/// When a pin cannot be removed.
pub(crate) fn run(args: &DetachArgs) -> anyhow::Result<()> {
    let links = if args.pin.exists() {
        pin::links(&args.pin)?
    } else {
        Vec::new()
    };
    let removed = pin::remove_all(&args.pin)?;
    if removed == 0 {
        println!("nothing pinned at {}", args.pin.display());
        return Ok(());
    }
    for link in &links {
        println!("detached {} from {}", link.attach, link.interface);
    }
    println!(
        "removed {removed} pins from {}; nothing of reflector is left there",
        args.pin.display()
    );
    Ok(())
}
