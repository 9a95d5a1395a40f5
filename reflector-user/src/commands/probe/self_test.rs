//! The self-test: a listener on this node's port Q, and a connection through each
//! reflector's self-test map L0:Q that must come back to it.
//!
//! Each reflector gets a ticket: a random nonce the probe sends through the reflector and a
//! random token the listener answers it with. Only this process knows the token, so an
//! answer with it proves the connection came back here, not to some service on R or
//! elsewhere that echoes what it gets.

use std::{
    collections::HashMap,
    fmt::Write as _,
    io,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use socket2::{Domain, Socket, Type};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{TcpListener, TcpStream},
    task::JoinSet,
    time::{Instant, sleep, timeout_at},
};

use super::check::{Attempt, Failure};

/// How often binding Q is retried while another probe on this node holds it.
const BIND_RETRY: Duration = Duration::from_millis(20);

/// The longest line either side of a self-test sends.
const MAX_LINE: u64 = 128;

/// The self-test listener could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on port {port} for the self-test ({family})")]
pub(crate) struct ListenError {
    /// Q.
    pub port: u16,
    /// `IPv4` or `IPv6`.
    pub family: &'static str,
    /// Why.
    #[source]
    pub source: io::Error,
}

/// A nonce to send through one reflector and the token this node answers it with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ticket {
    nonce: String,
    token: String,
}

impl Ticket {
    /// A fresh random ticket.
    ///
    /// # Errors
    /// When the kernel gives no random bytes.
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Self {
            nonce: random_hex()?,
            token: random_hex()?,
        })
    }
}

/// 128 random bits as hex.
fn random_hex() -> io::Result<String> {
    let mut bytes = [0_u8; 16];
    rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty())?;
    let mut text = String::with_capacity(32);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    Ok(text)
}

/// The listener on Q (per IP family the reflectors use), answering each ticket's nonce
/// with its token, until dropped.
#[derive(Debug)]
pub(crate) struct Listener {
    // Dropping the set aborts the accept loops and every connection they serve.
    _tasks: JoinSet<()>,
}

impl Listener {
    /// Listens on `port` for IPv4 (`v4`) and/or IPv6 (`v6`), and answers `tickets`. When
    /// the port is in use (another probe on this node holds it), tries again until
    /// `deadline`.
    ///
    /// # Errors
    /// [`ListenError`] when it cannot listen by then.
    pub(crate) async fn open(
        port: u16,
        v4: bool,
        v6: bool,
        tickets: &[Ticket],
        deadline: Instant,
    ) -> Result<Self, ListenError> {
        let answers: Arc<HashMap<String, String>> = Arc::new(
            tickets
                .iter()
                .map(|ticket| (ticket.nonce.clone(), ticket.token.clone()))
                .collect(),
        );
        let mut tasks = JoinSet::new();
        for (wanted, address) in [
            (v4, SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))),
            (v6, SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))),
        ] {
            if !wanted {
                continue;
            }
            let listener = bind_retrying(address, deadline).await?;
            let answers = Arc::clone(&answers);
            tasks.spawn(serve(listener, answers));
        }
        Ok(Self { _tasks: tasks })
    }
}

async fn bind_retrying(address: SocketAddr, deadline: Instant) -> Result<TcpListener, ListenError> {
    loop {
        match bind(address) {
            Err(error) if error.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                sleep(BIND_RETRY).await;
            }
            result => {
                return result.map_err(|source| ListenError {
                    port: address.port(),
                    family: if address.is_ipv4() { "IPv4" } else { "IPv6" },
                    source,
                });
            }
        }
    }
}

fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    // Connections of an earlier probe in TIME_WAIT must not keep this one from listening;
    // without SO_REUSEPORT two probes still cannot listen at once.
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(64)?;
    TcpListener::from_std(socket.into())
}

async fn serve(listener: TcpListener, answers: Arc<HashMap<String, String>>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or similar: the self-test will time out and say so.
            sleep(BIND_RETRY).await;
            continue;
        };
        let answers = Arc::clone(&answers);
        connections.spawn(async move {
            let _ = answer(stream, &answers).await;
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
}

/// Reads one nonce line and, if it is one of ours, answers with its token.
async fn answer(stream: TcpStream, answers: &HashMap<String, String>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_LINE))
        .read_line(&mut line)
        .await?;
    if let Some(token) = answers.get(line.trim_end()) {
        write.write_all(format!("{token}\n").as_bytes()).await?;
        write.shutdown().await?;
    }
    Ok(())
}

/// Connects to `target` (R:L0), sends the ticket's nonce and expects its token back,
/// within `deadline`; `timeout` is the probe's `--timeout`, for messages.
pub(crate) async fn run(
    target: SocketAddr,
    ticket: &Ticket,
    deadline: Instant,
    timeout: Duration,
) -> Attempt {
    let start = Instant::now();
    let (source_port, stream) = super::check::connect(target, deadline, timeout).await;
    let result = match stream {
        Err(failure) => Err(failure),
        Ok(stream) => exchange(stream, ticket, deadline, timeout).await,
    };
    Attempt {
        source_port,
        elapsed: start.elapsed(),
        result,
    }
}

async fn exchange(
    stream: TcpStream,
    ticket: &Ticket,
    deadline: Instant,
    timeout: Duration,
) -> Result<String, Failure> {
    let (read, mut write) = stream.into_split();
    let nonce = format!("{}\n", ticket.nonce);
    match timeout_at(deadline, write.write_all(nonce.as_bytes())).await {
        Err(_) => return Err(Failure::NoAnswer { timeout }),
        Ok(Err(error)) => return Err(Failure::from_io(&error)),
        Ok(Ok(())) => {}
    }
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_LINE));
    match timeout_at(deadline, reader.read_line(&mut line)).await {
        Err(_) => Err(Failure::NoAnswer { timeout }),
        Ok(Err(error)) => Err(Failure::from_io(&error)),
        Ok(Ok(0)) => Err(Failure::Closed),
        Ok(Ok(_)) if line.trim_end() == ticket.token => Ok("came back".to_owned()),
        Ok(Ok(_)) => Err(Failure::Wrong {
            got: format!("{:?}", line.trim_end()),
            wanted: "this node's self-test token".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listener answers its tickets, and only them, on loopback (the reflector's part
    /// is tested end to end).
    #[tokio::test]
    async fn answers_only_its_tickets() {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let ticket = Ticket::new().unwrap();
        let other = Ticket::new().unwrap();
        assert_ne!(ticket, other);
        let deadline = Instant::now() + Duration::from_secs(5);
        let _listener = Listener::open(port, true, false, std::slice::from_ref(&ticket), deadline)
            .await
            .unwrap();
        // A second probe cannot listen on the same port while the first does.
        let busy = Listener::open(
            port,
            true,
            false,
            &[],
            Instant::now() + Duration::from_millis(50),
        )
        .await
        .unwrap_err();
        assert_eq!(busy.source.kind(), io::ErrorKind::AddrInUse);
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let timeout = Duration::from_secs(5);
        let passed = run(target, &ticket, deadline, timeout).await;
        assert_eq!(passed.result, Ok("came back".to_owned()));
        let failed = run(target, &other, deadline, timeout).await;
        assert_eq!(failed.result, Err(Failure::Closed));
    }
}
