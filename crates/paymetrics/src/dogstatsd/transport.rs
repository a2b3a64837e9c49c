//! Sockets to the Agent: UDP (IPv4, IPv6, host names), Unix datagram and Unix stream.
//!
//! Runs on the flusher thread only, and never waits longer than its timeout on any one step:
//! a host name is resolved on a helper thread that the flusher waits for at most the timeout
//! (a slow resolver is asked again at the next flush, not waited for), a Unix stream connects
//! without blocking (an Agent whose backlog is full is "not accepting", not a hang), and every
//! write has the timeout as its deadline.
//!
//! A payload that cannot be sent is dropped and the caller counts it; the socket is then
//! dropped too. Reconnecting is tried at most once per flush ([`Transport::begin_flush`]), so
//! a dead Agent costs one failed connect per interval and a restarted one gets the next flush:
//! the gap after an Agent comes back is at most one flush interval.
//!
//! A UDP send to a closed port "succeeds" locally; the refusal (ICMP port unreachable) comes
//! back as the socket's pending error. It is read right after each send, so a payload refused
//! by the Agent's host is counted as dropped, not sent. (On loopback the refusal is always
//! there by then; from a remote host it may arrive later and fail the next send instead, which
//! is then counted as dropped.) Encoding is unknown here.

use std::{
    io::{self, Write},
    net::{SocketAddr, ToSocketAddrs, UdpSocket},
    os::unix::net::{UnixDatagram, UnixStream},
    path::Path,
    sync::mpsc,
    time::Duration,
};

use super::config::AgentAddress;

#[cfg(any(target_os = "linux", target_os = "android"))]
const EPROTOTYPE: i32 = 91;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const EPROTOTYPE: i32 = 41;

#[derive(Debug)]
enum Socket {
    Udp(UdpSocket),
    UnixDatagram(UnixDatagram),
    UnixStream(UnixStream),
}

/// A host name being resolved off the flusher thread.
#[derive(Debug, Default)]
struct Resolver {
    pending: Option<mpsc::Receiver<io::Result<SocketAddr>>>,
}

impl Resolver {
    /// The address of `host:port`, waiting at most `timeout`; a resolution still running then
    /// is picked up by a later call instead of being started again.
    fn resolve(&mut self, host: &str, port: u16, timeout: Duration) -> io::Result<SocketAddr> {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let receiver = match self.pending.take() {
            Some(receiver) => receiver,
            None => {
                let (sender, receiver) = mpsc::sync_channel(1);
                let target = (host.to_owned(), port);
                std::thread::Builder::new()
                    .name("paymetrics-resolve".into())
                    .spawn(move || {
                        let result = target.to_socket_addrs().and_then(|mut addrs| {
                            addrs.next().ok_or_else(|| {
                                io::Error::new(io::ErrorKind::NotFound, "the host has no address")
                            })
                        });
                        let _ = sender.send(result);
                    })?;
                receiver
            }
        };
        match receiver.recv_timeout(timeout) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.pending = Some(receiver);
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("resolving {host} took longer than {timeout:?}"),
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(io::Error::other(format!(
                "the resolver thread for {host} stopped"
            ))),
        }
    }
}

/// A connection to the Agent that reconnects on demand, at most once per flush.
#[derive(Debug)]
pub(crate) struct Transport {
    address: AgentAddress,
    timeout: Duration,
    socket: Option<Socket>,
    may_connect: bool,
    resolver: Resolver,
}

impl Transport {
    /// `timeout` bounds every step: resolving, connecting, each write.
    pub(crate) fn new(address: AgentAddress, timeout: Duration) -> Self {
        Self {
            address,
            timeout: timeout.max(Duration::from_millis(1)),
            socket: None,
            may_connect: true,
            resolver: Resolver::default(),
        }
    }

    /// The `client_transport:` telemetry tag value.
    pub(crate) fn kind(&self) -> &'static str {
        match (&self.address, &self.socket) {
            (AgentAddress::Udp { .. }, _) => "udp",
            (AgentAddress::UnixStream(_), _) | (_, Some(Socket::UnixStream(_))) => "uds-stream",
            _ => "uds",
        }
    }

    /// A new flush starts: one connect attempt is allowed again if the socket is down.
    pub(crate) fn begin_flush(&mut self) {
        self.may_connect = true;
    }

    /// Connects now if not connected, to report an unreachable address early.
    pub(crate) fn probe(&mut self) -> io::Result<()> {
        if self.socket.is_none() {
            self.socket = Some(self.connect()?);
        }
        Ok(())
    }

    fn connect(&mut self) -> io::Result<Socket> {
        let timeout = self.timeout;
        match &self.address {
            AgentAddress::Udp { host, port } => {
                let target = self.resolver.resolve(host, *port, timeout)?;
                let local: SocketAddr = if target.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let socket = UdpSocket::bind(local)?;
                socket.set_write_timeout(Some(timeout))?;
                socket.connect(target)?;
                Ok(Socket::Udp(socket))
            }
            AgentAddress::UnixDatagram(path) => {
                Ok(Socket::UnixDatagram(unix_datagram(path, timeout)?))
            }
            AgentAddress::UnixStream(path) => Ok(Socket::UnixStream(unix_stream(path, timeout)?)),
            AgentAddress::Unix(path) => match unix_datagram(path, timeout) {
                Err(e) if e.raw_os_error() == Some(EPROTOTYPE) => {
                    Ok(Socket::UnixStream(unix_stream(path, timeout)?))
                }
                other => other.map(Socket::UnixDatagram),
            },
        }
    }

    /// Sends one payload, connecting first if needed and allowed in this flush.
    pub(crate) fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        if self.socket.is_none() {
            if !self.may_connect {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!(
                        "not connected to {}; reconnecting at the next flush",
                        self.address
                    ),
                ));
            }
            self.may_connect = false;
            self.socket = Some(self.connect()?);
        }
        let result = match self.socket.as_mut() {
            Some(Socket::Udp(s)) => s.send(payload).and_then(|_| match s.take_error()? {
                // The Agent's host refused this very datagram (see the module docs).
                Some(e) => Err(e),
                None => Ok(()),
            }),
            Some(Socket::UnixDatagram(s)) => s.send(payload).map(drop),
            Some(Socket::UnixStream(s)) => {
                let len = u32::try_from(payload.len()).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "payload over 4 GiB")
                })?;
                let mut framed = Vec::with_capacity(payload.len() + 4);
                framed.extend_from_slice(&len.to_le_bytes());
                framed.extend_from_slice(payload);
                s.write_all(&framed)
            }
            None => unreachable!("connected above"),
        };
        if result.is_err() {
            // A stream may hold half a frame now, and a UDP host may have moved: start afresh.
            self.socket = None;
        }
        result
    }
}

fn unix_datagram(path: &Path, timeout: Duration) -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    socket.set_write_timeout(Some(timeout))?;
    socket.connect(path)?;
    Ok(socket)
}

/// Connects without blocking: a listener that does not accept (its backlog full) answers
/// `WouldBlock` at once instead of holding the flusher in `connect`.
fn unix_stream(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    match socket.connect(&socket2::SockAddr::unix(path)?) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is not accepting connections", path.display()),
            ));
        }
        Err(e) => return Err(e),
    }
    socket.set_nonblocking(false)?;
    let stream = UnixStream::from(socket);
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}
