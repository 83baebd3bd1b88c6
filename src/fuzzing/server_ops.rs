//! [`server_ops`]: servers of one core accepting sockets of another over the simulated network.

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};

use crate::sim::{Call, ConnId, HostId, Returned};
use crate::{BinaryType, TcpId, TcpOptions};

use super::{finish, sim_failure, tcp_call, two_cores, LinkCase, TcpCall};

/// One step of a [`server_ops`] run: host `a` connects to servers host `b` runs.
#[derive(Arbitrary, Clone, Debug)]
pub enum ServerOp {
    /// `b` listens on port 7000 + `port % 4`.
    Listen {
        /// Which port.
        port: u8,
        /// `max_connections` (0: none).
        max_connections: u8,
        /// `binaryType` arraybuffer for accepted sockets.
        binary: bool,
    },
    /// `server.close()`.
    ServerClose {
        /// Which server.
        server: u8,
    },
    /// `server.suspend()`.
    ServerSuspend {
        /// Which server.
        server: u8,
    },
    /// `server.resume()`.
    ServerResume {
        /// Which server.
        server: u8,
    },
    /// `a` opens a socket to port 7000 + `port % 4` of `b`.
    Connect {
        /// Which port.
        port: u8,
    },
    /// A TCP call on a socket of `a` (`on_server` false) or `b`.
    Tcp {
        /// On `b`'s accepted sockets.
        on_server: bool,
        /// Which socket.
        socket: u8,
        /// What to call.
        call: TcpCall,
    },
    /// Let this much virtual time pass.
    Run {
        /// Milliseconds.
        ms: u16,
    },
    /// Reset a connection in the network.
    Reset {
        /// Which connection.
        conn: u8,
    },
}

/// A whole [`server_ops`] run.
#[derive(Arbitrary, Clone, Debug)]
pub struct ServerOpsCase {
    /// The simulator's seed.
    pub seed: u64,
    /// The link between the hosts.
    pub link: LinkCase,
    /// The steps.
    pub ops: Vec<ServerOp>,
}

/// Fuzz target: servers of one core accepting sockets of another over the simulated network.
/// Panics on any broken invariant, and when bytes arrive other than sent where nothing failed.
pub fn server_ops(data: &[u8]) {
    if let Ok(case) = ServerOpsCase::arbitrary_take_rest(Unstructured::new(data)) {
        run_server_ops(&case);
    }
}

/// Runs a [`ServerOpsCase`].
pub fn run_server_ops(case: &ServerOpsCase) {
    let (mut sim, a, b) = two_cores(case.seed, &case.link);
    let mut servers: Vec<crate::ServerId> = Vec::new();
    let mut clients: Vec<TcpId> = Vec::new();
    let mut closed_at_once: Vec<(HostId, TcpId)> = Vec::new();
    for op in &case.ops {
        let conns: Vec<ConnId> = sim.conns().collect();
        let server = |n: u8| servers.get(n as usize % servers.len().max(1)).copied();
        match op {
            ServerOp::Listen {
                port,
                max_connections,
                binary,
            } => {
                let options = crate::ServerOptions {
                    local_port: Some(7000 + u16::from(port % 4)),
                    max_connections: (*max_connections > 0).then_some(u32::from(*max_connections)),
                    binary_type: if *binary {
                        BinaryType::ArrayBuffer
                    } else {
                        BinaryType::String
                    },
                    ..crate::ServerOptions::default()
                };
                if let Ok(Returned::Listening(id)) = sim.call(b, Call::ServerListen { options }) {
                    servers.push(id);
                }
            }
            ServerOp::ServerClose { server: n } => {
                if let Some(id) = server(*n) {
                    let _ = sim.call(b, Call::ServerClose { id });
                }
            }
            ServerOp::ServerSuspend { server: n } => {
                if let Some(id) = server(*n) {
                    let _ = sim.call(b, Call::ServerSuspend { id });
                }
            }
            ServerOp::ServerResume { server: n } => {
                if let Some(id) = server(*n) {
                    let _ = sim.call(b, Call::ServerResume { id });
                }
            }
            ServerOp::Connect { port } => {
                let open = Call::TcpOpen {
                    host: "b.test".into(),
                    port: 7000 + u16::from(port % 4),
                    options: TcpOptions::default(),
                };
                if let Ok(Returned::Opened(id)) = sim.call(a, open) {
                    clients.push(id);
                }
            }
            ServerOp::Tcp {
                on_server,
                socket,
                call,
            } => {
                let host = if *on_server { b } else { a };
                let live: Vec<TcpId> = sim
                    .core(host)
                    .map(|c| c.tcp_ids().collect())
                    .unwrap_or_default();
                let Some(&id) = live.get(*socket as usize % live.len().max(1)) else {
                    continue;
                };
                if let TcpCall::CloseImmediately = call {
                    closed_at_once.push((host, id));
                }
                let _ = sim.call(host, tcp_call(id, call));
            }
            ServerOp::Run { ms } => {
                sim.run_for(Duration::from_millis(u64::from(*ms)));
            }
            ServerOp::Reset { conn } => {
                if let Some(c) = conns.get(*conn as usize % conns.len().max(1)) {
                    let _ = sim.reset(*c);
                }
            }
        }
    }
    // Let graceful closes finish before the rest is closed at once.
    sim.run();
    for h in [a, b] {
        for id in sim
            .core(h)
            .map(|c| c.tcp_ids().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            closed_at_once.push((h, id));
        }
    }
    finish(&mut sim, &[a, b], case);
    // Where neither end failed nor was cut short, each received exactly what the other sent.
    let conns: Vec<ConnId> = sim.conns().collect();
    for conn in conns {
        let Some([Some(x), Some(y)]) = sim.conn_sockets(conn) else {
            continue;
        };
        if sim.faulted(conn) {
            continue;
        }
        for (from, to) in [(x, y), (y, x)] {
            let (Some(src), Some(dst)) = (sim.checked(from.0), sim.checked(to.0)) else {
                continue;
            };
            let (Some(out), Some(got)) = (src.outcome(from.1), dst.outcome(to.1)) else {
                continue;
            };
            let whole = out.error.is_none()
                && got.error.is_none()
                && got.end_of_stream
                && !got.closed_by_app
                && !closed_at_once.contains(&from);
            if whole && src.sent_bytes(from.1) != dst.received_bytes(to.1) {
                sim_failure(
                    &sim,
                    format!("{conn}: {} received other bytes than {} sent", to.1, from.1),
                    case,
                );
            }
        }
    }
}
