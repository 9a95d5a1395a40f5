//! The CLI's side of the control socket: one request, one reply.

use std::{
    io::{self, BufRead as _, BufReader, ErrorKind, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use thiserror::Error;

use super::{Reply, Request};

/// How long the daemon may take to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The daemon could not be asked, or did not answer.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Nothing listens on the socket.
    #[error(
        "no reflector daemon is running on control socket {}; start one, or give its --control-socket",
        path.display()
    )]
    NotRunning {
        /// The socket path.
        path: PathBuf,
        /// Why connecting failed.
        #[source]
        source: io::Error,
    },
    /// The socket is root-only.
    #[error(
        "permission denied on control socket {}: it is root-only; run this command as root (e.g. with sudo)",
        path.display()
    )]
    PermissionDenied {
        /// The socket path.
        path: PathBuf,
    },
    /// Talking to the daemon failed.
    #[error("control socket {}: {what}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What failed.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The daemon's reply is not what this version understands.
    #[error("control socket {}: unexpected reply {reply:?}", path.display())]
    BadReply {
        /// The socket path.
        path: PathBuf,
        /// The reply line.
        reply: String,
        /// Why it was not understood.
        #[source]
        source: serde_json::Error,
    },
}

/// Sends `request` to the daemon on `path` and returns its reply.
///
/// # Errors
/// [`ClientError`] when the daemon is not running, the socket is not accessible, or the
/// exchange fails.
pub fn ask(path: &Path, request: &Request) -> Result<Reply, ClientError> {
    let io_error = |what| {
        let path = path.to_owned();
        move |source| ClientError::Io { path, what, source }
    };
    let stream = UnixStream::connect(path).map_err(|source| match source.kind() {
        ErrorKind::PermissionDenied => ClientError::PermissionDenied {
            path: path.to_owned(),
        },
        _ => ClientError::NotRunning {
            path: path.to_owned(),
            source,
        },
    })?;
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(io_error("set a timeout"))?;
    let mut line = serde_json::to_string(request).unwrap_or_default();
    line.push('\n');
    (&stream)
        .write_all(line.as_bytes())
        .map_err(io_error("sending the request failed"))?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .map_err(io_error("reading the reply failed"))?;
    Reply::parse(&reply).map_err(|source| ClientError::BadReply {
        path: path.to_owned(),
        reply,
        source,
    })
}
