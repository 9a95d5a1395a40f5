//! Moves bytes between a client and its service. Bulk data goes with splice(2), socket to
//! pipe to socket inside the kernel, never copied into this process; small exchanges are
//! copied, which for them is cheaper than a pipe (as HAProxy's `splice-auto`).

use std::{
    io,
    net::Shutdown,
    os::fd::{AsFd as _, OwnedFd},
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

use rustix::pipe::{PipeFlags, SpliceFlags, pipe_with, splice};
use socket2::SockRef;
use tokio::{io::Interest, net::TcpStream, time::Instant};

/// Most bytes one splice(2) call moves; a pipe holds 64 KiB unless resized, and asking for
/// more than it holds is harmless.
const CHUNK: usize = 1 << 20;

/// Bytes one read may copy through the process. A direction starts by copying and switches
/// to splice(2) for good once a read fills this: that is bulk data, worth a pipe. A health
/// check or a small request/response never fills it and never pays for pipes (two `pipe2`
/// and four `close` calls per connection, a fifth of all the system calls of a short check).
const COPY_LIMIT: usize = 4096;

/// How a reflected connection ended.
#[derive(Debug)]
pub(super) enum RelayEnd {
    /// Both directions reached end of file and were passed on.
    Closed,
    /// Nothing moved either way for the idle timeout.
    Idle,
    /// A socket or pipe failed; both sides were reset.
    Failed(io::Error),
}

/// A pipe and how many bytes sit in it.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    pending: usize,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        Ok(Self {
            read,
            write,
            pending: 0,
        })
    }
}

/// When anything last moved, as milliseconds since `start`; shared by both directions.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Relaxed))
    }

    /// Completes once nothing moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let deadline = self.last() + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// Relays between `client` and `service` until both directions are done, either fails, or
/// nothing moves for `idle`. End of file one way is passed on as a half-close
/// (`shutdown(SHUT_WR)`) while the other way keeps flowing; a failure resets both sides so
/// neither end waits for bytes that will never come.
pub(super) async fn relay(
    client: &TcpStream,
    service: &TcpStream,
    idle: Duration,
    to_services: &AtomicU64,
    to_clients: &AtomicU64,
) -> RelayEnd {
    let activity = Activity::new();
    let both = async {
        tokio::try_join!(
            pump(client, service, to_services, &activity),
            pump(service, client, to_clients, &activity),
        )
    };
    tokio::select! {
        result = both => match result {
            Ok(((), ())) => RelayEnd::Closed,
            Err(error) => {
                reset(client);
                reset(service);
                RelayEnd::Failed(error)
            }
        },
        () = activity.idle_for(idle) => RelayEnd::Idle,
    }
}

/// Moves `from`'s bytes to `to` until `from` reaches end of file, then half-closes `to`.
async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    moved: &AtomicU64,
    activity: &Activity,
) -> io::Result<()> {
    // On the heap: in the future itself it would be copied whenever the task moves.
    let mut buf = vec![0_u8; COPY_LIMIT];
    loop {
        let read = loop {
            from.readable().await?;
            match from.try_read(&mut buf) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                result => break result?,
            }
        };
        if read == 0 {
            return half_close(to);
        }
        activity.touch();
        let mut written = 0;
        while written < read {
            to.writable().await?;
            match to.try_write(&buf[written..read]) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                result => written += result?,
            }
        }
        moved.fetch_add(read as u64, Relaxed);
        activity.touch();
        if read == COPY_LIMIT {
            return splice_pump(from, to, &mut Pipe::new()?, moved, activity).await;
        }
    }
}

/// [`pump`] for bulk data: through `pipe`, never copied into this process.
async fn splice_pump(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &mut Pipe,
    moved: &AtomicU64,
    activity: &Activity,
) -> io::Result<()> {
    loop {
        // The pipe is empty here, so EAGAIN can only mean `from` has nothing to read.
        let filled = from
            .async_io(Interest::READABLE, || {
                splice(
                    from.as_fd(),
                    None,
                    pipe.write.as_fd(),
                    None,
                    CHUNK,
                    SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
                )
                .map_err(io::Error::from)
            })
            .await?;
        if filled == 0 {
            return half_close(to);
        }
        pipe.pending = filled;
        activity.touch();
        while pipe.pending > 0 {
            let drained = to
                .async_io(Interest::WRITABLE, || {
                    splice(
                        pipe.read.as_fd(),
                        None,
                        to.as_fd(),
                        None,
                        pipe.pending,
                        SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
                    )
                    .map_err(io::Error::from)
                })
                .await?;
            pipe.pending -= drained;
            moved.fetch_add(drained as u64, Relaxed);
        }
        activity.touch();
    }
}

/// Passes end of file on: `to`'s peer reads it, and may still send.
fn half_close(to: &TcpStream) -> io::Result<()> {
    match SockRef::from(to).shutdown(Shutdown::Write) {
        // The other side may have gone already; its own direction reports that.
        Err(error) if error.kind() != io::ErrorKind::NotConnected => Err(error),
        _ => Ok(()),
    }
}

/// Closes `stream` with a reset (`SO_LINGER` 0) instead of a FIN when it is dropped, so the
/// peer learns at once that the connection is gone.
pub(super) fn reset(stream: &TcpStream) {
    // Best effort: if the socket is already dead, its peer has been told.
    let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
}
