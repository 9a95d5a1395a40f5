//! `reflector map add|del|list`: change or list the running daemon's port maps.

use clap::Subcommand;

use super::ControlArgs;
use crate::{control::MapKey, control::Request, portmap::PortMap};

/// `reflector map ...`.
#[derive(Debug, Subcommand)]
pub enum MapCommand {
    /// Add a port map LISTEN:TARGET[/tcp|/udp|/tcp,udp], e.g. `reflector map add 10080:80`.
    Add {
        /// The map, as with `--map`.
        #[arg(value_name = "L:P[/PROTO]")]
        map: PortMap,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Remove the maps of a listen port (or of one protocol on it), e.g.
    /// `reflector map del 10080` or `reflector map del 10053/udp`.
    Del {
        /// The listen port, optionally with `/tcp` or `/udp`.
        #[arg(value_name = "L[/PROTO]")]
        map: MapKey,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Print the port maps, one per line.
    List {
        #[command(flatten)]
        control: ControlArgs,
    },
}

/// Runs `command` against the daemon and prints the outcome.
///
/// # Errors
/// When the daemon cannot be reached or refuses the change.
pub(crate) fn run(command: MapCommand) -> anyhow::Result<()> {
    let (control, request, done) = match command {
        MapCommand::Add { map, control } => {
            let done = format!("added {map}");
            let request = Request::MapAdd {
                map: map.to_string(),
            };
            (control, request, Some(done))
        }
        MapCommand::Del { map, control } => {
            let done = format!("removed {map}");
            let request = Request::MapDel {
                map: map.to_string(),
            };
            (control, request, Some(done))
        }
        MapCommand::List { control } => (control, Request::MapList, None),
    };
    let reply = control.ask(&request)?;
    let maps = reply.maps.unwrap_or_default();
    match done {
        Some(done) => println!("{done}; port maps now: {}", maps.join(" ")),
        None => print!("{}", listing(&maps, reply.reply_paths.as_deref())),
    }
    Ok(())
}

/// `map list`'s lines: each map, with how the kernel path finds its replies when a kernel
/// program is loaded (`10022:22/tcp  stateless`).
fn listing(maps: &[String], paths: Option<&[String]>) -> String {
    let width = maps.iter().map(String::len).max().unwrap_or_default();
    maps.iter()
        .enumerate()
        .map(|(i, map)| match paths.and_then(|paths| paths.get(i)) {
            Some(path) => format!("{map:<width$}  {path}\n"),
            None => format!("{map}\n"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::listing;

    #[test]
    fn lists_each_map_with_its_reply_path() {
        let maps = ["10022:22/tcp".to_owned(), "10080:80/tcp,udp".to_owned()];
        let paths = [
            "stateless".to_owned(),
            "flow-table (--flow-table always)".to_owned(),
        ];
        assert_eq!(
            listing(&maps, Some(&paths)),
            "10022:22/tcp      stateless\n10080:80/tcp,udp  flow-table (--flow-table always)\n"
        );
        assert_eq!(listing(&maps, None), "10022:22/tcp\n10080:80/tcp,udp\n");
    }
}
