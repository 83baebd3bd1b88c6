//! Cores' `TCPServerSocket`s in the simulated network: listening, accepting connections from
//! other cores (or the same one), and refusing.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

use super::net::{CoreEnd, EndKind, EndState, Ev, Segment};
use super::record::Happening;
use super::{ConnId, HostId, Sim};
use crate::{Accepted, Input, ServerId};

/// A host's listening server.
#[derive(Debug)]
pub(crate) struct ServerIo {
    pub(crate) local: SocketAddr,
    reading: bool,
    /// Connection requests waiting while the server does not accept (its backlog).
    backlog: VecDeque<ConnId>,
}

impl Sim {
    /// `Action::Listen`.
    pub(super) fn server_listen(&mut self, host: HostId, id: ServerId, local: SocketAddr) {
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
                    let io = ServerIo {
                        local,
                        reading: false,
                        backlog: VecDeque::new(),
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

    /// A SYN reached a core's server: accepted now, or queued while it does not accept.
    pub(super) fn server_syn(&mut self, conn: ConnId, host: HostId, server: ServerId) {
        let Some(io) = self.hosts[host.0 as usize].servers.get_mut(&server) else {
            return;
        };
        if !io.reading {
            io.backlog.push_back(conn);
            return;
        }
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
                c.ends[1].host = Some(host);
                c.ends[1].state = EndState::Open;
                c.ends[1].kind = EndKind::Core(CoreEnd::new(id, 0));
                self.sock(host, id).conn = Some((conn, 1));
                self.established.insert((host, id), conn);
                self.send(conn, 1, Segment::SynAck);
            }
            other => {
                if let Err(e) = other {
                    let what = format!("the core refused an accepted connection: {e}");
                    self.violation(host, Some(server.into()), what);
                }
                // The OS completed the handshake; the server closes it at once.
                self.note(Some(host), format!("{conn}: accepted and closed at once"));
                let c = &mut self.conns[conn.0 as usize];
                c.ends[1].host = Some(host);
                c.ends[1].state = EndState::Closed;
                c.ends[1].rst_sent = true;
                self.send(conn, 1, Segment::SynAck);
                self.send(conn, 1, Segment::Rst);
            }
        }
        self.drain(host);
    }

    /// `Action::SetReading` for a server: accepting resumes with its backlog.
    pub(super) fn server_reading(&mut self, host: HostId, id: ServerId, enabled: bool) {
        let Some(io) = self.hosts[host.0 as usize].servers.get_mut(&id) else {
            return;
        };
        io.reading = enabled;
        if enabled {
            for conn in std::mem::take(&mut io.backlog) {
                self.schedule(self.now, Ev::Syn { conn });
            }
        }
    }

    /// `Action::Release` of a server: it stops listening; its backlog is refused.
    pub(super) fn server_release(&mut self, host: HostId, id: ServerId) {
        let Some(io) = self.hosts[host.0 as usize].servers.remove(&id) else {
            return;
        };
        for conn in io.backlog {
            let at = self.now + self.cfg.link.least_delay();
            let error = io::ErrorKind::ConnectionRefused;
            self.schedule(at, Ev::ConnectFailed { conn, error });
        }
    }
}
