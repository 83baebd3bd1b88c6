//! Connect attempts: each its own OS socket, until one wins (it becomes the id's stream) or
//! fails.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use polling::Poller;
use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};
use sockstate::{Input, SocketSettings, TcpId};

use super::os::{apply_settings, bound_address, new_socket, set_nosigpipe};
use super::sources::{Io, Owner};
use super::stream::want_inq;
use super::{Reactor, Report};

impl Reactor {
    /// `Action::Connect`: a new OS socket, bound if asked, non-blocking connect started.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn connect(
        &mut self,
        poller: &Poller,
        id: TcpId,
        attempt: u8,
        remote: SocketAddr,
        local: Option<SocketAddr>,
        no_delay: bool,
        keep_alive: Option<Duration>,
        settings: SocketSettings,
        reports: &mut Vec<Report>,
    ) {
        let started =
            start_connect(remote, local, no_delay, keep_alive, &settings).and_then(|socket| {
                let owner = Owner::Attempt { id, attempt };
                self.register(poller, Io::Socket(socket), owner).map(|_| ())
            });
        if let Err(e) = started {
            reports.push(
                Input::ConnectFailed {
                    id,
                    attempt,
                    error: e.kind(),
                }
                .into(),
            );
        }
    }

    /// `Action::AbortConnect`: close that attempt's socket.
    pub(crate) fn abort_connect(&mut self, poller: &Poller, id: TcpId, attempt: u8) {
        let owner = Owner::Attempt { id, attempt };
        let key = self.attempts.get(&id.serial()).and_then(|keys| {
            (keys.iter().copied())
                .find(|&key| self.sources.get(key).is_some_and(|s| s.owner == owner))
        });
        if let Some(key) = key {
            self.close_source(poller, key);
        }
    }

    /// A connect attempt became writable (or failed).
    pub(super) fn connect_ready(
        &mut self,
        poller: &Poller,
        key: usize,
        id: TcpId,
        attempt: u8,
        reports: &mut Vec<Report>,
    ) {
        let Some(source) = self.sources.get(key) else {
            return;
        };
        let sock = source.io.sock();
        // Connected, or else failed (`SO_ERROR` says why) or not done yet (a spurious
        // wake-up: keep waiting). Asking for the peer first takes one syscall fewer when the
        // connect succeeded, which is what it mostly does.
        let outcome = match sock.peer_addr() {
            Ok(_) => bound_address(&sock),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => match sock.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                Ok(None) => {
                    if let Some(source) = self.sources.get_mut(key) {
                        source.ready.write = false;
                    }
                    return;
                }
            },
            Err(e) => Err(e),
        };
        match outcome {
            Ok(local) => {
                let serial = id.serial();
                if let Some(keys) = self.attempts.get_mut(&serial) {
                    keys.retain(|&k| k != key);
                }
                let entry = self.ids.entry(serial).or_default();
                // A key came from `register`, which refuses any that does not fit.
                entry.main = key as u32;
                if let Some(source) = self.sources.get_mut(key) {
                    source.owner = Owner::Stream(id);
                    source.reading = entry.reading;
                }
                reports.push(Input::Connected { id, attempt, local }.into());
            }
            Err(e) => {
                self.close_source(poller, key);
                reports.push(
                    Input::ConnectFailed {
                        id,
                        attempt,
                        error: e.kind(),
                    }
                    .into(),
                );
            }
        }
    }
}

/// A non-blocking TCP socket with its options, bound if asked, its connect started.
fn start_connect(
    remote: SocketAddr,
    local: Option<SocketAddr>,
    no_delay: bool,
    keep_alive: Option<Duration>,
    settings: &SocketSettings,
) -> io::Result<Socket> {
    let socket = new_socket(Domain::for_address(remote), Type::STREAM, Protocol::TCP)?;
    set_nosigpipe(&socket)?;
    apply_settings(&socket, remote, settings)?;
    socket.set_tcp_nodelay(no_delay)?;
    want_inq(&socket);
    if let Some(idle) = keep_alive {
        socket.set_keepalive(true)?;
        socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle))?;
    }
    if let Some(local) = local {
        socket.bind(&SockAddr::from(local))?;
    }
    // Not retried on EINTR: an interrupted connect goes on in the background, like one in
    // progress, and its outcome is read on writability.
    match socket.connect(&SockAddr::from(remote)) {
        Ok(()) => Ok(socket),
        Err(e) if in_progress(&e) => Ok(socket),
        Err(e) => Err(e),
    }
}

/// `EINPROGRESS` (Unix) or `WSAEWOULDBLOCK` (Windows) from a non-blocking connect, or `EINTR`.
fn in_progress(e: &io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        return true;
    }
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
