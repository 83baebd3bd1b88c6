//! Cores' `TCPServerSocket`s in the simulated network: listening, accepting connections from
//! other cores (or the same one) and scripted clients, and refusing.
//!
//! As Linux's, the kernel completes the handshake whether the server accepts or not: while it
//! is suspended, a connection is queued in its accept queue (the client is connected, sends,
//! and the queued end takes data up to its receive window), up to the `listen(2)` backlog the
//! core asks for (Linux's `sk_acceptq_is_full` lets `min(backlog, somaxconn) + 1` wait,
//! [`SimConfig::somaxconn`](super::SimConfig::somaxconn)); a SYN beyond it is dropped
//! (`tcp_abort_on_overflow` = 0) and the client's TCP sends it again on its schedule
//! (retransmit.rs). On resume the queue is accepted in order. A server closed with a queue
//! resets each queued connection (Linux's `inet_csk_listen_stop`); a crashed host loses its
//! queue with the host (the clients hear nothing until they send to the restarted host, which
//! resets). Not modelled: Linux checks the queue again when the handshake's last ACK arrives,
//! so SYNs that cross in flight may overfill it by a few (the sim's handshake is one step).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

use super::conn::{CoreEnd, EndKind, EndState, Segment};
use super::net::Ev;
use super::record::Happening;
use super::{ConnId, HostId, Sim};
use crate::{Accepted, Input, ServerId};

/// A host's listening server.
#[derive(Debug)]
pub(crate) struct ServerIo {
    pub(crate) local: SocketAddr,
    reading: bool,
    /// Connections the kernel completed that the server has not accepted (its accept queue).
    backlog: VecDeque<ConnId>,
    /// How many the accept queue holds: `min(backlog, somaxconn) + 1`, as Linux.
    room: usize,
}

impl Sim {
    /// `Action::Listen`.
    pub(super) fn server_listen(
        &mut self,
        host: HostId,
        id: ServerId,
        local: SocketAddr,
        backlog: u32,
    ) {
        let ips = &self.hosts[host.0 as usize].ips;
        let input = if !(local.ip().is_unspecified() || ips.contains(&local.ip())) {
            Input::ListenFailed {
                id,
                error: io::ErrorKind::AddrNotAvailable,
            }
        } else {
            match self.bind_port(host, local.ip(), local.port()) {
                Some(port) => {
                    let local = SocketAddr::new(local.ip(), port);
                    let room = backlog.min(self.cfg.somaxconn) as usize + 1;
                    let io = ServerIo {
                        local,
                        reading: false,
                        backlog: VecDeque::new(),
                        room,
                    };
                    self.hosts[host.0 as usize].servers.insert(id, io);
                    Input::Listening { id, local }
                }
                None => Input::ListenFailed {
                    id,
                    error: io::ErrorKind::AddrInUse,
                },
            }
        };
        self.schedule(self.now, Ev::Input { host, input });
    }

    /// The core server listening at `addr`, if any.
    pub(super) fn core_listener(&self, addr: SocketAddr) -> Option<(HostId, ServerId)> {
        let host = self.host_of(addr.ip())?;
        let servers = &self.hosts[host.0 as usize].servers;
        servers
            .iter()
            .find(|(_, s)| {
                s.local.port() == addr.port()
                    && (s.local.ip() == addr.ip()
                        || (s.local.ip().is_unspecified() && s.local.is_ipv4() == addr.is_ipv4()))
            })
            .map(|(id, _)| (host, *id))
    }

    /// A SYN reached a core's server: accepted now; while it does not accept, the handshake
    /// completes and the connection waits in the accept queue, or the SYN is dropped when the
    /// queue is full.
    pub(super) fn server_syn(&mut self, conn: ConnId, host: HostId, server: ServerId) {
        let Some(io) = self.hosts[host.0 as usize].servers.get_mut(&server) else {
            return;
        };
        if io.reading {
            return self.server_accept(conn, host, server, false);
        }
        if io.backlog.len() >= io.room {
            self.note(
                Some(host),
                format!("{conn}: accept queue of {server} full: SYN dropped"),
            );
            if let Some(s) = self.conn(conn).syn.as_mut() {
                s.dropped = true;
            }
            return;
        }
        io.backlog.push_back(conn);
        self.note(Some(host), format!("{conn}: queued for {server}'s accept"));
        let c = &mut self.conns[conn.0 as usize];
        c.ends[1].host = Some(host);
        c.ends[1].state = EndState::Open;
        self.send(conn, 1, Segment::SynAck);
    }

    /// The core's server accepts `conn`: fresh from a SYN, or from its accept queue (the
    /// handshake done, maybe data or a reset arrived).
    fn server_accept(&mut self, conn: ConnId, host: HostId, server: ServerId, queued: bool) {
        let (client, local) = {
            let c = &self.conns[conn.0 as usize];
            (c.ends[0].addr, c.ends[1].addr)
        };
        let now = self.now;
        let result = self.hosts[host.0 as usize]
            .core
            .handle_accepted(now, server, local, client);
        self.record(
            Some(host),
            Happening::Accepted {
                server,
                local,
                remote: client,
                result,
            },
        );
        match result {
            Ok(Accepted::Socket(id)) => {
                let c = &mut self.conns[conn.0 as usize];
                let reset = queued && c.ends[1].state == EndState::Closed;
                c.ends[1].host = Some(host);
                c.ends[1].state = EndState::Open;
                c.ends[1].kind = EndKind::Core(CoreEnd::new(id, 0));
                self.sock(host, id).conn = Some((conn, 1));
                self.established.insert((host, id), conn);
                if !queued {
                    self.send(conn, 1, Segment::SynAck);
                } else if reset {
                    // Reset while it waited: accept hands it over, its first read fails.
                    self.drain(host);
                    self.reset_end(conn, 1, io::ErrorKind::ConnectionReset);
                }
            }
            other => {
                if let Err(e) = other {
                    let what = format!("the core refused an accepted connection: {e}");
                    self.violation(host, Some(server.into()), what);
                }
                // The OS completed the handshake; the server closes it at once.
                self.note(Some(host), format!("{conn}: accepted and closed at once"));
                let c = &mut self.conns[conn.0 as usize];
                let live = !queued || c.ends[1].state == EndState::Open;
                c.ends[1].host = Some(host);
                c.ends[1].state = EndState::Closed;
                if live {
                    c.ends[1].rst_sent = true;
                    if !queued {
                        self.send(conn, 1, Segment::SynAck);
                    }
                    self.send(conn, 1, Segment::Rst);
                }
            }
        }
        self.drain(host);
    }

    /// `Action::SetReading` for a server: accepting resumes with its accept queue.
    pub(super) fn server_reading(&mut self, host: HostId, id: ServerId, enabled: bool) {
        let Some(io) = self.hosts[host.0 as usize].servers.get_mut(&id) else {
            return;
        };
        io.reading = enabled;
        if enabled && !io.backlog.is_empty() {
            self.schedule(self.now, Ev::Accept { host, server: id });
        }
    }

    /// [`Ev::Accept`]: the server takes its accept queue, in order, while it accepts.
    pub(super) fn server_accept_queue(&mut self, host: HostId, server: ServerId) {
        loop {
            let Some(io) = self.hosts[host.0 as usize].servers.get_mut(&server) else {
                return;
            };
            if !io.reading {
                return;
            }
            let Some(conn) = io.backlog.pop_front() else {
                return;
            };
            self.server_accept(conn, host, server, true);
        }
    }

    /// `Action::Release` of a server: it stops listening; what its accept queue held is reset.
    pub(super) fn server_release(&mut self, host: HostId, id: ServerId) {
        let Some(io) = self.hosts[host.0 as usize].servers.remove(&id) else {
            return;
        };
        for conn in io.backlog {
            let c = &mut self.conns[conn.0 as usize];
            if c.ends[1].state != EndState::Open {
                continue;
            }
            c.ends[1].state = EndState::Closed;
            c.ends[1].rst_sent = true;
            c.faulted = true;
            self.note(
                Some(host),
                format!("{conn}: server closed: queued connection reset"),
            );
            self.rto_stop(conn, 1);
            self.send(conn, 1, Segment::Rst);
        }
    }
}
