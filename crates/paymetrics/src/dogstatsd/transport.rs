//! Sockets to the Agent: UDP (IPv4, IPv6, host names), Unix datagram and Unix stream.
//!
//! Runs on the flusher thread only. A payload that cannot be sent is dropped and the caller
//! counts it; the socket is then dropped too, and the next payload reconnects (a UDP host name
//! is resolved again). Unix sockets that fail to connect are retried with exponential backoff
//! (100 ms doubling to 5 s); payloads in the meantime are dropped. Encoding is unknown here.

use std::{
    io::{self, Write},
    net::{SocketAddr, ToSocketAddrs, UdpSocket},
    os::unix::net::{UnixDatagram, UnixStream},
    path::Path,
    time::{Duration, Instant},
};

use super::config::AgentAddress;

const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

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

/// A connection to the Agent that reconnects on demand.
#[derive(Debug)]
pub(crate) struct Transport {
    address: AgentAddress,
    write_timeout: Duration,
    socket: Option<Socket>,
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Transport {
    pub(crate) fn new(address: AgentAddress, write_timeout: Duration) -> Self {
        Self {
            address,
            write_timeout,
            socket: None,
            retry_at: None,
            backoff: INITIAL_BACKOFF,
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

    fn connect(&self) -> io::Result<Socket> {
        let timeout = Some(self.write_timeout);
        match &self.address {
            AgentAddress::Udp { host, port } => {
                let target: SocketAddr = (host.as_str(), *port)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"))
                    })?;
                let local: SocketAddr = if target.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let socket = UdpSocket::bind(local)?;
                socket.set_write_timeout(timeout)?;
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

    /// Sends one payload, connecting first if needed.
    pub(crate) fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        if self.socket.is_none() {
            if let Some(at) = self.retry_at
                && Instant::now() < at
            {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!("waiting to reconnect to {}", self.address),
                ));
            }
            match self.connect() {
                Ok(s) => {
                    self.socket = Some(s);
                    self.retry_at = None;
                    self.backoff = INITIAL_BACKOFF;
                }
                Err(e) => {
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    return Err(e);
                }
            }
        }
        let result = match self.socket.as_mut() {
            Some(Socket::Udp(s)) => s.send(payload).map(drop),
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

fn unix_datagram(path: &Path, timeout: Option<Duration>) -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    socket.set_write_timeout(timeout)?;
    socket.connect(path)?;
    Ok(socket)
}

fn unix_stream(path: &Path, timeout: Option<Duration>) -> io::Result<UnixStream> {
    let socket = UnixStream::connect(path)?;
    socket.set_write_timeout(timeout)?;
    Ok(socket)
}
