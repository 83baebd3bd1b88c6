//! [`pair_net`]: a core and scripted peers over the simulated network, with fuzz-chosen link,
//! faults and app calls.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};

use crate::sim::SimConfig;
use crate::sim::{AfterGreeting, Call, ConnId, HostId, Peer, Returned, Sim};
use crate::{Config, ResolveError, TcpId};

use super::tcp_ops::OptionsCase;
use super::{error, pick, tcp_call, LinkCase, TcpCall};

/// Where a [`pair_net`] client connects: (host, port).
const TARGETS_NET: [(&str, u16); 10] = [
    ("127.0.0.2", 7),   // echo
    ("127.0.0.2", 9),   // sink
    ("127.0.0.2", 19),  // sends 3000 bytes, then FIN
    ("127.0.0.2", 21),  // never reads
    ("127.0.0.2", 25),  // sends a line, then resets
    ("server.test", 7), // ::2 (echo) first, then 127.0.0.2
    ("127.0.0.2", 80),  // nobody listens: refused
    ("flaky.test", 7),  // the resolver fails
    ("nowhere.test", 7),
    ("::2", 9), // sink over IPv6
];

/// One step of a [`pair_net`] run.
#[derive(Arbitrary, Clone, Debug)]
pub enum PairOp {
    /// `open` to `TARGETS_NET[target]`.
    Open {
        /// Index into the target table.
        target: u8,
        /// `binaryType` arraybuffer.
        binary: bool,
        /// `allowHalfOpen`.
        half_open: bool,
    },
    /// A `TCPSocket` call on a socket.
    Tcp {
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
    /// A connection goes silent for good.
    Silence {
        /// Which connection.
        conn: u8,
    },
    /// The OS fails a connection.
    Fail {
        /// Which connection.
        conn: u8,
        /// Index into an error table.
        error: u8,
    },
    /// The scripted peer sends.
    PeerSend {
        /// Which connection.
        conn: u8,
        /// Bytes.
        data: Vec<u8>,
    },
    /// The scripted peer sends FIN.
    PeerClose {
        /// Which connection.
        conn: u8,
    },
    /// The scripted peer resets.
    PeerReset {
        /// Which connection.
        conn: u8,
    },
    /// The scripted peer stops or starts reading.
    PeerPause {
        /// Which connection.
        conn: u8,
        /// Stop (`true`) or start.
        paused: bool,
    },
    /// Black-hole the server's IPv4 (`false`) or IPv6 address.
    BlackHole {
        /// Which address.
        v6: bool,
    },
    /// Heal both server addresses.
    Heal,
}

/// A whole [`pair_net`] run.
#[derive(Arbitrary, Clone, Debug)]
pub struct PairNetCase {
    /// The simulator's seed.
    pub seed: u64,
    /// The link between client and server.
    pub link: LinkCase,
    /// High-water mark: 64 × (1 + this) bytes (the hard cap is 64 KiB).
    pub mark: u8,
    /// The steps.
    pub ops: Vec<PairOp>,
}

/// Fuzz target: a core and scripted peers over the simulated network. Panics on any broken
/// invariant, and when bytes arrive other than sent on a connection where nothing failed.
pub fn pair_net(data: &[u8]) {
    if let Ok(case) = PairNetCase::arbitrary_take_rest(Unstructured::new(data)) {
        run_pair_net(&case);
    }
}

/// What the app did to a socket, for the end-to-end checks.
#[derive(Default, Debug)]
struct AppModel {
    conn: Option<ConnId>,
    closed_at_once: bool,
}

/// Runs a [`PairNetCase`]; panics with the violations and the end of the transcript if an
/// invariant or an end-to-end property broke.
pub fn run_pair_net(case: &PairNetCase) {
    let core = Config {
        high_water_mark: (case.mark as usize + 1) * 64,
        send_buffer_limit: 64 << 10,
        connect_timeout: Duration::from_secs(2),
        close_timeout: Duration::from_secs(3),
        linger_timeout: Duration::from_millis(500),
        ..Config::default()
    };
    let cfg = SimConfig {
        core,
        link: case.link.link(),
        time_limit: Duration::from_secs(3600),
        step_limit: 2_000_000,
        ..SimConfig::default()
    };
    let (mut sim, client) = pair_network(case.seed, cfg);
    let mut ids: Vec<TcpId> = Vec::new();
    let mut app: BTreeMap<TcpId, AppModel> = BTreeMap::new();
    for op in &case.ops {
        step_pair(&mut sim, client, &mut ids, &mut app, op);
        for (id, m) in app.iter_mut() {
            if let Some(conn) = sim.conn_of(client, *id) {
                m.conn = Some(conn);
            }
        }
    }
    // The network heals, so that what black holes held is retransmitted as TCP would, and
    // every peer reads what reached it.
    step_pair(&mut sim, client, &mut ids, &mut app, &PairOp::Heal);
    let conns: Vec<ConnId> = sim.conns().collect();
    for conn in conns {
        let _ = sim.peer_pause(conn, false);
    }
    sim.run();
    for (id, m) in app.iter_mut() {
        if sim.core(client).is_some_and(|c| c.tcp(*id).is_some()) {
            m.closed_at_once = true;
            let _ = sim.call(client, Call::TcpCloseImmediately { id: *id });
        }
    }
    sim.run();
    let fail = |sim: &Sim, what: String| -> ! {
        let text = sim.transcript_text();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(120)..].join("\n");
        panic!("{what}\ncase: {case:#?}\n--- transcript (last 120 lines) ---\n{tail}");
    };
    if let Some(stop) = sim.stopped() {
        fail(&sim, format!("the run did not end: {stop:?}"));
    }
    let mut violations = sim.violations();
    if let Some(checked) = sim.checked(client) {
        let mut checked_all = Vec::new();
        for id in &ids {
            if checked.outcome(*id).is_some_and(|o| !o.closed) {
                checked_all.push(*id);
            }
        }
        if !checked_all.is_empty() {
            violations.push(crate::sim::Violation {
                socket: None,
                what: format!("no Close for {checked_all:?}"),
            });
        }
    }
    if !violations.is_empty() {
        fail(&sim, format!("invariants broken: {violations:#?}"));
    }
    end_to_end(&sim, client, &app).unwrap_or_else(|what| fail(&sim, what));
}

/// A client host and a server host with the scripted peers of [`TARGETS_NET`].
fn pair_network(seed: u64, cfg: SimConfig) -> (Sim, HostId) {
    let mut sim = Sim::with_config(seed, cfg);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let at = |s: &str| {
        s.parse::<SocketAddr>()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 2], 1)))
    };
    let client = sim
        .add_host("client", &[ip("127.0.0.1"), ip("::1")])
        .expect("a fresh simulation takes the client");
    sim.add_host("server.test", &[ip("::2"), ip("127.0.0.2")])
        .expect("a fresh simulation takes the server");
    let pattern: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let peers = [
        ("127.0.0.2:7", Peer::echo()),
        ("[::2]:7", Peer::echo()),
        ("127.0.0.2:9", Peer::sink()),
        ("[::2]:9", Peer::sink()),
        (
            "127.0.0.2:19",
            Peer {
                after_greeting: AfterGreeting::Close,
                ..Peer::send(pattern)
            },
        ),
        ("127.0.0.2:21", Peer::stall()),
        (
            "127.0.0.2:25",
            Peer {
                after_greeting: AfterGreeting::Reset,
                ..Peer::send("421 going away\r\n")
            },
        ),
    ];
    for (addr, peer) in peers {
        let _ = sim.listen(at(addr), peer);
    }
    let _ = sim.dns_fail("flaky.test", ResolveError::Temporary);
    (sim, client)
}

fn step_pair(
    sim: &mut Sim,
    client: HostId,
    ids: &mut Vec<TcpId>,
    app: &mut BTreeMap<TcpId, AppModel>,
    op: &PairOp,
) {
    let conns: Vec<ConnId> = sim.conns().collect();
    let live: Vec<TcpId> = sim
        .core(client)
        .map(|c| c.tcp_ids().collect())
        .unwrap_or_default();
    let conn = |n: u8| conns.get(n as usize % conns.len().max(1)).copied();
    let call = |sim: &mut Sim, call: Call| {
        let _ = sim.call(client, call);
    };
    match op {
        PairOp::Open {
            target,
            binary,
            half_open,
        } => {
            let (host, port) = TARGETS_NET[*target as usize % TARGETS_NET.len()];
            let options = OptionsCase {
                binary: *binary,
                half_open: *half_open,
                local_port: None,
                local_v6: None,
            }
            .options();
            let open = Call::TcpOpen {
                host: host.into(),
                port,
                options,
            };
            if let Ok(Returned::Opened(id)) = sim.call(client, open) {
                ids.push(id);
                app.insert(id, AppModel::default());
            }
        }
        PairOp::Tcp { socket, call: c } => {
            let id = pick(&live, ids, *socket);
            if let (TcpCall::CloseImmediately, Some(m)) = (c, app.get_mut(&id)) {
                m.closed_at_once |= sim.core(client).is_some_and(|c| c.tcp(id).is_some());
            }
            call(sim, tcp_call(id, c));
        }
        PairOp::Run { ms } => {
            sim.run_for(Duration::from_millis(u64::from(*ms)));
        }
        PairOp::Reset { conn: c } => {
            if let Some(c) = conn(*c) {
                let _ = sim.reset(c);
            }
        }
        PairOp::Silence { conn: c } => {
            if let Some(c) = conn(*c) {
                let _ = sim.silence(c);
            }
        }
        PairOp::Fail { conn: c, error: e } => {
            if let Some(c) = conn(*c) {
                let _ = sim.fail(c, error(*e));
            }
        }
        PairOp::PeerSend { conn: c, data } => {
            if let Some(c) = conn(*c) {
                let _ = sim.peer_send(c, data.clone());
            }
        }
        PairOp::PeerClose { conn: c } => {
            if let Some(c) = conn(*c) {
                let _ = sim.peer_close(c);
            }
        }
        PairOp::PeerReset { conn: c } => {
            if let Some(c) = conn(*c) {
                let _ = sim.peer_reset(c);
            }
        }
        PairOp::PeerPause { conn: c, paused } => {
            if let Some(c) = conn(*c) {
                let _ = sim.peer_pause(c, *paused);
            }
        }
        PairOp::BlackHole { v6 } => {
            let ip = if *v6 { "::2" } else { "127.0.0.2" };
            if let Ok(ip) = ip.parse() {
                sim.black_hole(ip);
            }
        }
        PairOp::Heal => {
            for ip in ["::2", "127.0.0.2"] {
                if let Ok(ip) = ip.parse() {
                    sim.heal(ip);
                }
            }
        }
    }
}

/// Where nothing failed, each side received exactly what the other sent.
fn end_to_end(sim: &Sim, client: HostId, app: &BTreeMap<TcpId, AppModel>) -> Result<(), String> {
    let Some(checked) = sim.checked(client) else {
        return Ok(());
    };
    for (id, m) in app {
        let (Some(conn), Some(outcome)) = (m.conn, checked.outcome(*id)) else {
            continue;
        };
        let (Some(peer_got), Some(peer_sent)) = (sim.peer_received(conn), sim.peer_sent(conn))
        else {
            continue;
        };
        // A clean Close promises that the peer's TCP received every byte sent (BEHAVIOUR §1
        // close), whatever happened to the connection: read by the peer, or still unread in
        // its kernel. Only the bytes' values may differ where a bit was flipped.
        let clean = outcome.closed && outcome.error.is_none() && !m.closed_at_once;
        if clean && outcome.opened {
            if let Some(sent) = checked.sent_bytes(*id) {
                let unread = sim.peer_unread(conn).unwrap_or(0);
                if peer_got.len() + unread != sent.len() {
                    return Err(format!(
                        "{id} on {conn}: clean Close, but the peer's TCP got {} bytes ({} of \
                         them unread), the app sent {}",
                        peer_got.len() + unread,
                        unread,
                        sent.len()
                    ));
                }
            }
        }
        if sim.faulted(conn) || outcome.error.is_some() || !outcome.opened {
            continue;
        }
        if !m.closed_at_once {
            if let Some(sent) = checked.sent_bytes(*id) {
                if peer_got != sent {
                    return Err(format!(
                        "{id} on {conn}: the peer got {} bytes, the app sent {} (graceful close, \
                         no fault)",
                        peer_got.len(),
                        sent.len()
                    ));
                }
            }
        }
        if outcome.end_of_stream && !outcome.closed_by_app {
            if let Some(got) = checked.received_bytes(*id) {
                if got != peer_sent {
                    return Err(format!(
                        "{id} on {conn}: the socket received {} bytes, the peer sent {}",
                        got.len(),
                        peer_sent.len()
                    ));
                }
            }
        }
    }
    Ok(())
}
