//! The load generator, run inside namespace X: workers in threads, each in a loop bounded
//! in time and count, latencies into HDR histograms; prints one JSON report on stdout.

use std::collections::BTreeMap;
use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::latency::{self, Summary};
use crate::server::BANNER;
use crate::sockets::{self, error_key};

/// How long a connect, read or write may block before it counts as an error.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// A worker's pause after an error, so a refused connection does not become a spin.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// A completed operation this slow waited for a retransmission: the kernel's first SYN
/// retransmission comes after 1 s, so a health check that meets a refused or dropped
/// handshake shows here even when its retry succeeds.
pub(crate) const SLOW: Duration = Duration::from_secs(1);

/// Upper bound on one worker's attempts per second of run time: far above what a worker
/// can do, it bounds the loop by count as well as by time.
const MAX_ATTEMPTS_PER_SECOND: u64 = 1_000_000;

/// The pattern of load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Pattern {
    /// Health checks: connect, read the service's banner to end of file, close.
    Connect,
    /// Request/response on one long connection per worker: write `size` bytes, read them
    /// back.
    RequestResponse,
    /// UDP: send a `size`-byte datagram, wait for its echo (each worker one at a time, like
    /// a resolver or a UDP health check), from one socket per worker.
    Datagram,
}

/// `load`'s arguments.
#[derive(Args, Debug)]
pub(crate) struct LoadArgs {
    /// The pattern.
    #[arg(long, value_enum)]
    pub pattern: Pattern,
    /// Where to connect.
    #[arg(long)]
    pub to: SocketAddr,
    /// Concurrent workers.
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Seconds measured.
    #[arg(long)]
    pub duration: f64,
    /// Seconds of load before the measurement starts.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Request size of the request/response pattern, in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
}

/// What one `load` run measured.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LoadReport {
    /// The pattern.
    pub pattern: Pattern,
    /// Where it connected.
    pub to: SocketAddr,
    /// Concurrent workers.
    pub workers: usize,
    /// The length of the measurement window.
    pub seconds: f64,
    /// Operations (connections, or round trips) that started and ended in the window.
    pub completed: u64,
    /// `completed / seconds`.
    pub per_second: f64,
    /// Latency of each completed operation.
    pub latency: Summary,
    /// Failed operations that started in the window, by what failed (`connect: ECONNREFUSED`).
    pub errors: BTreeMap<String, u64>,
    /// Failed operations that started in the window (the sum of `errors`): a hung health
    /// check (no answer within [`IO_TIMEOUT`]) or one refused or reset.
    pub failed: u64,
    /// Completed operations that took [`SLOW`] or longer.
    pub slow: u64,
}

/// When the measurement counts.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

/// One worker's tally.
struct Tally {
    histogram: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    /// The tally of a worker that could not start.
    fn failed(key: &str) -> Self {
        Self {
            histogram: latency::histogram(),
            errors: BTreeMap::from([(key.to_owned(), 1)]),
        }
    }
}

/// Runs the load and prints its [`LoadReport`] as JSON.
pub(crate) fn load(args: &LoadArgs) -> Result<()> {
    let report = generate(args)?;
    println!(
        "{}",
        serde_json::to_string(&report).context("cannot encode the report")?
    );
    Ok(())
}

/// Runs `args.workers` workers until the window closes and merges their tallies.
#[expect(
    clippy::cast_precision_loss,
    reason = "operation counts are far below 2^52"
)]
fn generate(args: &LoadArgs) -> Result<LoadReport> {
    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now() + warmup;
    let window = Window {
        start,
        end: start + duration,
    };
    let max_attempts = (warmup + duration).as_secs().saturating_add(1) * MAX_ATTEMPTS_PER_SECOND;
    let tallies: Vec<Tally> = thread::scope(|scope| {
        let workers: Vec<_> = (0..args.workers.max(1))
            .map(|_| {
                scope.spawn(move || match args.pattern {
                    Pattern::Connect => run_worker(window, max_attempts, || health_check(args.to)),
                    Pattern::RequestResponse => {
                        let mut exchange = Exchange::new(args.to, args.size);
                        run_worker(window, max_attempts, || exchange.round_trip())
                    }
                    Pattern::Datagram => match Datagrams::new(args.to, args.size) {
                        Ok(mut datagrams) => {
                            run_worker(window, max_attempts, || datagrams.round_trip())
                        }
                        Err(e) => Tally::failed(&format!("socket: {}", error_key(&e))),
                    },
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a load worker panicked"))
            .collect()
    });
    let mut histogram = latency::histogram();
    let mut errors = BTreeMap::new();
    for tally in tallies {
        histogram
            .add(&tally.histogram)
            .context("cannot merge latency histograms")?;
        for (key, count) in tally.errors {
            *errors.entry(key).or_insert(0) += count;
        }
    }
    let completed = histogram.len();
    let slow_ns = u64::try_from(SLOW.as_nanos()).unwrap_or(u64::MAX);
    let slow = histogram
        .iter_recorded()
        .filter(|value| value.value_iterated_to() >= slow_ns)
        .map(|value| value.count_at_value())
        .sum();
    Ok(LoadReport {
        pattern: args.pattern,
        to: args.to,
        workers: args.workers,
        seconds: args.duration,
        completed,
        per_second: completed as f64 / args.duration,
        latency: Summary::of(&histogram),
        failed: errors.values().sum(),
        errors,
        slow,
    })
}

/// Calls `attempt` until the window closes (or `max_attempts` calls): an attempt that
/// starts and ends within the window has its latency recorded; one that fails in it is
/// counted by its error.
fn run_worker(
    window: Window,
    max_attempts: u64,
    mut attempt: impl FnMut() -> Result<(), String>,
) -> Tally {
    let mut tally = Tally {
        histogram: latency::histogram(),
        errors: BTreeMap::new(),
    };
    for _ in 0..max_attempts {
        let began = Instant::now();
        if began >= window.end {
            break;
        }
        let outcome = attempt();
        let ended = Instant::now();
        match outcome {
            Ok(()) if began >= window.start && ended <= window.end => {
                latency::record(&mut tally.histogram, ended - began);
            }
            Ok(()) => {}
            Err(key) => {
                if began >= window.start {
                    *tally.errors.entry(key).or_insert(0) += 1;
                }
                thread::sleep(ERROR_BACKOFF);
            }
        }
    }
    tally
}

/// One health check: connect, read the banner to end of file, close.
fn health_check(to: SocketAddr) -> Result<(), String> {
    let mut stream =
        sockets::connect(to, IO_TIMEOUT).map_err(|e| format!("connect: {}", error_key(&e)))?;
    let mut buffer = [0_u8; 2 * BANNER.len()];
    let mut len = 0;
    // Bounded: every round reads at least one byte into a fixed buffer, or ends.
    while len < buffer.len() {
        match stream.read(&mut buffer[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) => return Err(format!("read: {}", error_key(&e))),
        }
    }
    if &buffer[..len] == BANNER {
        Ok(())
    } else {
        Err(format!("response: {len} bytes, not the banner"))
    }
}

/// A request/response client on one long connection, reconnecting after a failure.
struct Exchange {
    to: SocketAddr,
    stream: Option<TcpStream>,
    request: Vec<u8>,
    response: Vec<u8>,
}

impl Exchange {
    fn new(to: SocketAddr, size: usize) -> Self {
        Self {
            to,
            stream: None,
            request: (0..size.max(1)).map(|i| (i % 251) as u8).collect(),
            response: vec![0; size.max(1)],
        }
    }

    /// Writes the request and reads as many bytes back, which must be the same.
    fn round_trip(&mut self) -> Result<(), String> {
        let result = self.try_round_trip();
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn try_round_trip(&mut self) -> Result<(), String> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => self.stream.insert(
                sockets::connect(self.to, IO_TIMEOUT)
                    .map_err(|e| format!("connect: {}", error_key(&e)))?,
            ),
        };
        stream
            .write_all(&self.request)
            .map_err(|e| format!("write: {}", error_key(&e)))?;
        stream
            .read_exact(&mut self.response)
            .map_err(|e| format!("read: {}", error_key(&e)))?;
        if self.response == self.request {
            Ok(())
        } else {
            Err("response: not the request echoed".to_owned())
        }
    }
}

/// How long a datagram's echo may take before the datagram counts as lost.
pub(crate) const UDP_WAIT: Duration = Duration::from_millis(200);

/// Replies read for one datagram before giving up: late echoes of earlier (lost-counted)
/// datagrams are skipped, a bounded number of them.
const UDP_STALE_REPLIES: usize = 8;

/// A UDP client: a socket connected to the target (so only its replies are received),
/// numbering its datagrams so a late echo is not taken for the current one.
struct Datagrams {
    socket: UdpSocket,
    sequence: u64,
    request: Vec<u8>,
    response: Vec<u8>,
}

impl Datagrams {
    fn new(to: SocketAddr, size: usize) -> io::Result<Self> {
        let any = if to.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0_u16; 8], 0))
        };
        let socket = UdpSocket::bind(any)?;
        socket.connect(to)?;
        socket.set_read_timeout(Some(UDP_WAIT))?;
        let size = size.max(8);
        Ok(Self {
            socket,
            sequence: 0,
            request: vec![0; size],
            response: vec![0; size + 1],
        })
    }

    /// Sends the next datagram and waits for its echo.
    fn round_trip(&mut self) -> Result<(), String> {
        self.sequence += 1;
        self.request[..8].copy_from_slice(&self.sequence.to_be_bytes());
        self.socket
            .send(&self.request)
            .map_err(|e| format!("send: {}", error_key(&e)))?;
        for _ in 0..UDP_STALE_REPLIES {
            match self.socket.recv(&mut self.response) {
                Ok(len) if self.response[..len] == self.request[..] => return Ok(()),
                // An echo of an earlier datagram, or something else: keep waiting.
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err("lost: no echo within 200 ms".to_owned());
                }
                Err(e) => return Err(format!("recv: {}", error_key(&e))),
            }
        }
        Err("lost: only stale echoes".to_owned())
    }
}
