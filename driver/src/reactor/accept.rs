//! Listening sockets and the connections they accept.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use polling::Poller;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use sockstate::{Input, ServerId, SocketSettings, TcpId};

use super::os::{apply_settings, bound_address, new_socket, retry, set_nosigpipe};
use super::sources::{Io, Owner};
use super::stream::want_inq;
use super::{Reactor, Report};

/// How long a listening socket rests after `accept` failed for want of resources (file
/// descriptors, memory): its pending connection would otherwise wake the loop at once, again
/// and again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

impl Reactor {
    /// `Action::Listen`: a listening socket, not accepting until `SetReading` says so.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn listen(
        &mut self,
        poller: &Poller,
        id: ServerId,
        local: SocketAddr,
        backlog: u32,
        reuse_address: bool,
        settings: SocketSettings,
        reports: &mut Vec<Report>,
    ) {
        let socket = start_listen(local, backlog, reuse_address, &settings);
        let listening = self.open(poller, socket, |s| (Io::Socket(s), Owner::Server(id)));
        reports.push(
            match listening {
                Ok(local) => Input::Listening { id, local },
                Err(e) => Input::ListenFailed {
                    id,
                    error: e.kind(),
                },
            }
            .into(),
        );
    }

    /// A connection the core accepted as `id`: from now on it is that socket's stream.
    pub(crate) fn adopt(&mut self, poller: &Poller, id: TcpId, socket: Socket) -> io::Result<()> {
        self.register(poller, Io::Socket(socket), Owner::Stream(id))
            .map(|_| ())
    }

    /// Accepts what is waiting, at most `accepts_per_turn` connections.
    pub(super) fn accept(&mut self, key: usize, server: ServerId, reports: &mut Vec<Report>) {
        let Some(source) = self.sources.get_mut(key) else {
            return;
        };
        if !source.reading || source.dead || source.resting {
            return;
        }
        let Io::Socket(listener) = &source.io else {
            return;
        };
        // A listener bound to a specific address accepts on that address.
        let fixed_local =
            (self.fixed_locals.iter()).find_map(|&(k, local)| (k == key).then_some(local));
        for _ in 0..self.limits.accepts_per_turn.max(1) {
            match retry(|| accept_nonblocking(listener)) {
                Ok((socket, remote)) => {
                    let ready = accepted_options(&socket)
                        .and_then(|()| set_nosigpipe(&socket))
                        .and_then(|()| {
                            let local = match fixed_local {
                                Some(local) => local,
                                None => bound_address(&socket)?,
                            };
                            let remote = remote
                                .as_socket()
                                .ok_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable))?;
                            Ok((local, remote))
                        });
                    // A connection that cannot be set up is closed (the peer sees a reset),
                    // as if it had never arrived.
                    if let Ok((local, remote)) = ready {
                        reports.push(Report::Accepted {
                            server,
                            socket,
                            local,
                            remote,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(source) = self.sources.get_mut(key) {
                        source.ready.read = false;
                    }
                    return;
                }
                // The peer gave up before we accepted (ECONNABORTED): take the next one.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(_) => {
                    // Out of descriptors or memory (or anything else): rest a while rather
                    // than be woken at once by the same pending connection.
                    self.rest(key, Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }
}

/// The next connection, non-blocking from the start where `accept4` says so (close-on-exec
/// too, as socket2's `accept`); elsewhere made non-blocking after `accept`, and one that
/// cannot be is closed and skipped like a connection the peer aborted.
fn accept_nonblocking(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    #[cfg(any(
        target_os = "android",
        target_os = "dragonfly",
        target_os = "freebsd",
        target_os = "fuchsia",
        target_os = "illumos",
        target_os = "linux",
        target_os = "netbsd",
        target_os = "openbsd",
    ))]
    return listener.accept4(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK);
    #[allow(unreachable_code)]
    {
        let (socket, remote) = listener.accept()?;
        match socket.set_nonblocking(true) {
            Ok(()) => Ok((socket, remote)),
            Err(_) => Err(io::ErrorKind::ConnectionAborted.into()),
        }
    }
}

/// A non-blocking listening socket.
/// Linux copies `TCP_NODELAY` and `TCP_INQ` from a listening socket into every connection it
/// accepts (the child socket is a clone of the listener), so there they are set once on the
/// listener ([`start_listen`]) rather than with two syscalls per accepted connection.
const LISTENER_OPTIONS_INHERITED: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// `TCP_NODELAY` and `TCP_INQ` on a connection just accepted, where it does not have them from
/// its listener ([`LISTENER_OPTIONS_INHERITED`]).
fn accepted_options(socket: &Socket) -> io::Result<()> {
    if LISTENER_OPTIONS_INHERITED {
        return Ok(());
    }
    want_inq(socket);
    socket.set_tcp_nodelay(true)
}

/// The buffer sizes are set on the listener, before `listen`: accepted connections inherit
/// them (on Linux and the BSDs), and TCP's window scale is chosen for the receive buffer.
fn start_listen(
    local: SocketAddr,
    backlog: u32,
    reuse: bool,
    settings: &SocketSettings,
) -> io::Result<Socket> {
    let socket = new_socket(Domain::for_address(local), Type::STREAM, Protocol::TCP)?;
    apply_settings(&socket, local, settings)?;
    if LISTENER_OPTIONS_INHERITED {
        socket.set_tcp_nodelay(true)?;
        want_inq(&socket);
    }
    socket.set_reuse_address(reuse)?;
    socket.bind(&SockAddr::from(local))?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX).max(1))?;
    Ok(socket)
}
