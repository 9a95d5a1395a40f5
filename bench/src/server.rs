//! The services the workloads measure, run inside a namespace until killed: a banner
//! service (the health-check pattern: write a short greeting at accept, then close, as an
//! SSH or SMTP server starts), a TCP echo service (request/response) and a UDP echo
//! service (datagrams).

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};

use crate::sockets;

/// What the banner service writes at accept: 16 bytes.
pub(crate) const BANNER: &[u8; 16] = b"reflector-bench\n";

/// Threads blocked in `accept` on the banner service's listener. A handful keeps it from
/// being the bottleneck on a small machine without paying for a thread per connection.
const BANNER_THREADS: usize = 4;

/// Threads receiving on the UDP echo service's socket.
const UDP_THREADS: usize = 2;

/// How long an accept loop pauses after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Which service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Service {
    /// Writes [`BANNER`] at accept and closes (so the server, not the client, holds
    /// `TIME_WAIT`, as with a real banner service whose client reads to the end).
    Banner,
    /// Echoes every byte back until the client closes; a thread per connection.
    Echo,
    /// Echoes every UDP datagram to its sender.
    UdpEcho,
}

/// `serve`'s arguments.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// The service.
    #[arg(long, value_enum)]
    pub service: Service,
    /// The port to listen on.
    #[arg(long)]
    pub port: u16,
    /// The address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind: IpAddr,
}

/// Listens and serves until the process is killed.
pub(crate) fn serve(args: &ServeArgs) -> Result<()> {
    let addr = SocketAddr::new(args.bind, args.port);
    if args.service == Service::UdpEcho {
        let socket = UdpSocket::bind(addr).with_context(|| format!("cannot bind UDP {addr}"))?;
        let workers: Vec<_> = (0..UDP_THREADS)
            .map(|_| {
                let socket = socket.try_clone().context("cannot share the socket")?;
                Ok(thread::spawn(move || udp_echo_loop(&socket)))
            })
            .collect::<Result<_>>()?;
        for worker in workers {
            let _ = worker.join();
        }
        return Ok(());
    }
    let listener = sockets::listen(addr).with_context(|| format!("cannot listen on {addr}"))?;
    match args.service {
        Service::Banner => {
            let workers: Vec<_> = (0..BANNER_THREADS)
                .map(|_| {
                    let listener = listener.try_clone().context("cannot share the listener")?;
                    Ok(thread::spawn(move || banner_loop(&listener)))
                })
                .collect::<Result<_>>()?;
            for worker in workers {
                let _ = worker.join();
            }
        }
        Service::UdpEcho => unreachable!("served above"),
        Service::Echo => loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    thread::spawn(move || echo(stream));
                }
                Err(e) => {
                    eprintln!("accept on {addr}: {e}");
                    thread::sleep(ACCEPT_BACKOFF);
                }
            }
        },
    }
    Ok(())
}

/// Accepts, writes the banner, closes; forever. Errors of one connection (a client gone
/// already) are not the service's.
fn banner_loop(listener: &TcpListener) {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.write_all(BANNER);
            }
            // Out of file descriptors or memory: give the system a moment, not a spin.
            Err(_) => thread::sleep(ACCEPT_BACKOFF),
        }
    }
}

/// Receives datagrams and sends each back to its source; forever. A failed send (the
/// source unreachable) concerns that datagram only.
fn udp_echo_loop(socket: &UdpSocket) {
    let mut buffer = vec![0_u8; 65_536];
    loop {
        match socket.recv_from(&mut buffer) {
            Ok((len, source)) => {
                let _ = socket.send_to(&buffer[..len], source);
            }
            Err(_) => thread::sleep(ACCEPT_BACKOFF),
        }
    }
}

/// Echoes until end of file or an error.
fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buffer = [0_u8; 16 * 1024];
    while let Ok(n @ 1..) = stream.read(&mut buffer) {
        if stream.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
}
