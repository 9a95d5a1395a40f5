//! The daemon's side of the control socket: binds it root-only, answers `stats` itself and
//! hands map requests to the main loop, one task per client.

use std::{
    fs,
    io::{self, ErrorKind},
    os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::Arc,
};

use log::{debug, info, warn};
use thiserror::Error;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use super::{AllowChange, Change, MAX_REQUEST, MapChange, Reply, Request, parse_request};
use crate::telemetry::Telemetry;

/// A change for the main loop, and where its reply goes.
pub type ChangeRequest = (Change, oneshot::Sender<Reply>);

/// The control socket cannot be set up.
#[derive(Debug, Error)]
pub enum ControlError {
    /// Its directory could not be created.
    #[error("control socket {}: cannot create the directory {}", path.display(), dir.display())]
    CreateDir {
        /// The socket path.
        path: PathBuf,
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A daemon answers on it already.
    #[error(
        "control socket {}: another reflector is already serving it; stop it or give this one another --control-socket",
        path.display()
    )]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Something other than a socket is there.
    #[error("control socket {}: the path exists and is not a socket; remove it or choose another --control-socket", path.display())]
    NotSocket {
        /// The socket path.
        path: PathBuf,
    },
    /// Binding, removing the stale socket or setting its mode failed.
    #[error("control socket {}: cannot {what}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What failed.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The bound control socket; removes its file on drop (unless another process has put a
/// socket of its own there meanwhile).
#[derive(Debug)]
pub struct ControlSocket {
    path: PathBuf,
    listener: Option<UnixListener>,
    /// Device and inode of the socket file, to remove only our own.
    identity: (u64, u64),
    task: Option<JoinHandle<()>>,
}

impl ControlSocket {
    /// Binds `path` with mode 0600, creating its directory (0700) when missing and removing
    /// a stale socket left by a daemon that is gone.
    ///
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`ControlError`] naming the path.
    pub fn bind(path: &Path) -> Result<Self, ControlError> {
        let io_error = |what| {
            let path = path.to_owned();
            move |source| ControlError::Io { path, what, source }
        };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty())
            && !dir.exists()
        {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| ControlError::CreateDir {
                    path: path.to_owned(),
                    dir: dir.to_owned(),
                    source,
                })?;
        }
        match fs::symlink_metadata(path) {
            Ok(metadata) if metadata.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(ControlError::InUse {
                        path: path.to_owned(),
                    });
                }
                fs::remove_file(path).map_err(io_error("remove the stale socket"))?;
                info!("control: removed the stale socket {}", path.display());
            }
            Ok(_) => {
                return Err(ControlError::NotSocket {
                    path: path.to_owned(),
                });
            }
            Err(error) if error.kind() == ErrorKind::NotFound => {}
            Err(error) => return Err(io_error("inspect the path")(error)),
        }
        // Nobody but the owner may connect, from the moment the socket exists.
        let mask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
        let bound = UnixListener::bind(path);
        rustix::process::umask(mask);
        let listener = bound.map_err(io_error("listen"))?;
        let mut socket = Self {
            path: path.to_owned(),
            listener: Some(listener),
            identity: (0, 0),
            task: None,
        };
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(io_error("set its mode to 0600"))?;
        let metadata = fs::symlink_metadata(path).map_err(io_error("inspect the socket"))?;
        socket.identity = (metadata.dev(), metadata.ino());
        Ok(socket)
    }

    /// The socket's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves clients in a task of its own until dropped: `stats` from `telemetry`, map
    /// requests through `changes` to the main loop.
    pub fn serve(&mut self, telemetry: Arc<Telemetry>, changes: mpsc::Sender<ChangeRequest>) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        info!("control: serving {} (mode 0600)", self.path.display());
        self.task = Some(tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let telemetry = Arc::clone(&telemetry);
                        let changes = changes.clone();
                        tokio::spawn(async move {
                            if let Err(error) = serve_client(stream, &telemetry, &changes).await {
                                debug!("control: a client connection failed: {error}");
                            }
                        });
                    }
                    Err(error) => {
                        warn!("control: accepting a client failed: {error}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|metadata| (metadata.dev(), metadata.ino()) == self.identity);
        if ours && let Err(error) = fs::remove_file(&self.path) {
            warn!("control: cannot remove {}: {error}", self.path.display());
        }
    }
}

/// Answers one client's requests, one line each, until it closes the connection or sends a
/// line longer than [`MAX_REQUEST`].
async fn serve_client(
    stream: UnixStream,
    telemetry: &Telemetry,
    changes: &mpsc::Sender<ChangeRequest>,
) -> io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        let complete = read_line(&mut reader, &mut line).await?;
        if line.is_empty() && !complete {
            return Ok(());
        }
        if line.len() > MAX_REQUEST {
            let reply = Reply::error(format!(
                "request longer than {MAX_REQUEST} bytes; closing the connection"
            ));
            writer.write_all(reply.to_line().as_bytes()).await?;
            return Ok(());
        }
        let reply = match std::str::from_utf8(&line) {
            Ok(text) => answer(text.trim_end_matches(['\n', '\r']), telemetry, changes).await,
            Err(_) => Reply::error("invalid request: not UTF-8"),
        };
        writer.write_all(reply.to_line().as_bytes()).await?;
        if !complete {
            return Ok(());
        }
    }
}

/// Reads up to and including a newline into `line`, but keeps at most [`MAX_REQUEST`] + 1
/// bytes (more means the request is too long). Returns whether a newline ended it.
async fn read_line(
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> io::Result<bool> {
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(false);
        }
        let (taken, found) = match buffer.iter().position(|&byte| byte == b'\n') {
            Some(end) => (end + 1, true),
            None => (buffer.len(), false),
        };
        let room = (MAX_REQUEST + 1).saturating_sub(line.len());
        line.extend_from_slice(&buffer[..taken.min(room)]);
        reader.consume(taken);
        if found {
            return Ok(true);
        }
        if line.len() > MAX_REQUEST {
            return Ok(true);
        }
    }
}

/// The reply to one request line.
async fn answer(line: &str, telemetry: &Telemetry, changes: &mpsc::Sender<ChangeRequest>) -> Reply {
    let change = match parse_request(line) {
        Err(why) => return Reply::error(why),
        Ok(Request::Stats) => return Reply::stats(telemetry.snapshot()),
        Ok(Request::MapList) => Change::Maps(MapChange::List),
        Ok(Request::MapAdd { map }) => match map.parse() {
            Ok(map) => Change::Maps(MapChange::Add(map)),
            Err(error) => return Reply::error(format!("{error}")),
        },
        Ok(Request::MapDel { map }) => match map.parse() {
            Ok(key) => Change::Maps(MapChange::Del(key)),
            Err(error) => return Reply::error(format!("{error}")),
        },
        Ok(Request::AllowList) => Change::Allow(AllowChange::List),
        Ok(Request::AllowAdd { prefix }) => match prefix.parse() {
            Ok(prefix) => Change::Allow(AllowChange::Add(prefix)),
            Err(error) => return Reply::error(format!("{error}")),
        },
        Ok(Request::AllowDel { prefix }) => match prefix.parse() {
            Ok(prefix) => Change::Allow(AllowChange::Del(prefix)),
            Err(error) => return Reply::error(format!("{error}")),
        },
    };
    let (reply, replied) = oneshot::channel();
    if changes.send((change, reply)).await.is_err() {
        return Reply::error("the daemon is shutting down");
    }
    replied
        .await
        .unwrap_or_else(|_| Reply::error("the daemon is shutting down"))
}
