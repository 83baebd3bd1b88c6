//! [`udp_ops`]: UDP sockets of two cores over a lossy, duplicating, reordering network.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};

use crate::sim::{Call, HostId, Link, Returned};
use crate::Bytes;

use super::{finish, sim_failure, two_cores, LinkCase};

/// One step of a [`udp_ops`] run: UDP sockets on hosts `a` and `b`.
#[derive(Arbitrary, Clone, Debug)]
pub enum UdpOp {
    /// `new UDPSocket` on `a` or `b`, on port 5000 + `port % 3` (or ephemeral), with or
    /// without a default destination.
    Open {
        /// On `b`.
        on_b: bool,
        /// Which port (`None`: ephemeral).
        port: Option<u8>,
        /// Default destination: port 5000 + this % 3 on the other host.
        remote: Option<u8>,
        /// `loopback`.
        loopback: bool,
    },
    /// `send(data, to?)`: to port 5000 + `to % 3` of `a`, `b` or the group, or the default.
    Send {
        /// Which socket.
        socket: u8,
        /// The datagram.
        data: Vec<u8>,
        /// The destination: `None` the default, else host / group and port.
        to: Option<u8>,
    },
    /// `joinMulticastGroup(239.0.0.1 + group % 2)`.
    Join {
        /// Which socket.
        socket: u8,
        /// Which group.
        group: u8,
    },
    /// `leaveMulticastGroup(...)`.
    Leave {
        /// Which socket.
        socket: u8,
        /// Which group.
        group: u8,
    },
    /// `suspend()`.
    Suspend {
        /// Which socket.
        socket: u8,
    },
    /// `resume()`.
    Resume {
        /// Which socket.
        socket: u8,
    },
    /// `close()`.
    Close {
        /// Which socket.
        socket: u8,
    },
    /// Let this much virtual time pass.
    Run {
        /// Milliseconds.
        ms: u16,
    },
}

/// A whole [`udp_ops`] run.
#[derive(Arbitrary, Clone, Debug)]
pub struct UdpOpsCase {
    /// The simulator's seed; odd, the simulated OS batches datagrams as GSO and GRO do
    /// (`SimConfig::udp_batches`: `Sent` of several, `Datagrams` runs).
    pub seed: u64,
    /// Loss, duplication and reordering, in 1/256.
    pub loss: u8,
    /// Duplication, in 1/256.
    pub duplicate: u8,
    /// Reordering window, ms.
    pub reorder_ms: u8,
    /// The steps.
    pub ops: Vec<UdpOp>,
}

/// Fuzz target: UDP sockets of two cores over a lossy, duplicating, reordering network with
/// multicast. Panics on any broken invariant, and on a message that no one sent whole.
pub fn udp_ops(data: &[u8]) {
    if let Ok(case) = UdpOpsCase::arbitrary_take_rest(Unstructured::new(data)) {
        run_udp_ops(&case);
    }
}

/// Runs a [`UdpOpsCase`].
pub fn run_udp_ops(case: &UdpOpsCase) {
    let link = LinkCase {
        latency_ms: 1,
        jitter_ms: 0,
        bandwidth_kib: 0,
        buffer: u16::MAX,
        max_read: u16::MAX,
        whole_reads: true,
        whole_writes: true,
        flips: false,
    };
    let (mut sim, a, b) = two_cores(case.seed, &link);
    sim.set_udp_batches(case.seed % 2 == 1);
    let lossy = Link {
        udp_loss: f64::from(case.loss) / 256.0,
        udp_duplicate: f64::from(case.duplicate) / 256.0,
        udp_reorder: Duration::from_millis(case.reorder_ms.into()),
        ..link.link()
    };
    sim.set_link(a, b, lossy.clone());
    sim.set_link(a, a, lossy.clone());
    sim.set_link(b, b, lossy);
    let ip_of = |host: HostId| IpAddr::from([127, 0, 0, if host == a { 1 } else { 2 }]);
    let group = |n: u8| IpAddr::from([239, 0, 0, 1 + n % 2]);
    let mut sockets: Vec<(HostId, crate::UdpId)> = Vec::new();
    let mut sent: Vec<Bytes> = Vec::new();
    let mut events = Vec::new();
    for op in &case.ops {
        let pick = |n: u8| sockets.get(n as usize % sockets.len().max(1)).copied();
        match op {
            UdpOp::Open {
                on_b,
                port,
                remote,
                loopback,
            } => {
                let (host, other) = if *on_b { (b, a) } else { (a, b) };
                let options = crate::UdpOptions {
                    local_port: port.map(|p| 5000 + u16::from(p % 3)),
                    remote_address: remote.map(|_| ip_of(other)),
                    remote_port: remote.map(|p| 5000 + u16::from(p % 3)),
                    loopback: *loopback,
                    ..crate::UdpOptions::default()
                };
                if let Ok(Returned::Bound(id)) = sim.call(host, Call::UdpOpen { options }) {
                    sockets.push((host, id));
                }
            }
            UdpOp::Send { socket, data, to } => {
                let Some((host, id)) = pick(*socket) else {
                    continue;
                };
                let to = to.map(|n| {
                    let ip = match n % 3 {
                        0 => ip_of(a),
                        1 => ip_of(b),
                        _ => group(n / 3),
                    };
                    SocketAddr::new(ip, 5000 + u16::from(n / 3 % 3))
                });
                let data = Bytes::from(data.clone());
                if sim
                    .call(
                        host,
                        Call::UdpSend {
                            id,
                            data: data.clone(),
                            to,
                        },
                    )
                    .is_ok()
                {
                    sent.push(data);
                }
            }
            UdpOp::Join { socket, group: g } => {
                if let Some((host, id)) = pick(*socket) {
                    let _ = sim.call(
                        host,
                        Call::UdpJoin {
                            id,
                            group: group(*g),
                        },
                    );
                }
            }
            UdpOp::Leave { socket, group: g } => {
                if let Some((host, id)) = pick(*socket) {
                    let _ = sim.call(
                        host,
                        Call::UdpLeave {
                            id,
                            group: group(*g),
                        },
                    );
                }
            }
            UdpOp::Suspend { socket } => {
                if let Some((host, id)) = pick(*socket) {
                    let _ = sim.call(host, Call::UdpSuspend { id });
                }
            }
            UdpOp::Resume { socket } => {
                if let Some((host, id)) = pick(*socket) {
                    let _ = sim.call(host, Call::UdpResume { id });
                }
            }
            UdpOp::Close { socket } => {
                if let Some((host, id)) = pick(*socket) {
                    let _ = sim.call(host, Call::UdpClose { id });
                }
            }
            UdpOp::Run { ms } => {
                events.extend(sim.run_for(Duration::from_millis(u64::from(*ms))));
            }
        }
    }
    events.extend(sim.run());
    for (_, event) in &events {
        if let crate::Event::Message { id, data, .. } = event {
            if !sent.contains(data) {
                sim_failure(
                    &sim,
                    format!("{id} got a datagram no one sent: {data:?}"),
                    case,
                );
            }
        }
    }
    finish(&mut sim, &[a, b], case);
}
