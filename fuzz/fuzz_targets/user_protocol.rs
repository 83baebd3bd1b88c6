//! Fuzzing a protocol of your own over the simulated network: the example of the recipe in
//! `sockstate::sim::Scenario` (src/sim/fuzzing.md).
//!
//! The protocol: a key-value store over lines. A client sends `SET k v`, `GET k` or `PING`,
//! each ending in `\n`, and the server answers each request, in order, with one line: `OK`,
//! `VALUE v` or `NONE`, `PONG` (`ERR` to anything else). Clients pipeline their requests,
//! spaced by the scenario's timings, and close once every answer is in; they give up after
//! `REQUEST_TIMEOUT` without progress. The server closes connections idle for `IDLE_TIMEOUT`.
//! The app is written against `sockstate::Sockets` (so it runs unchanged on the real driver)
//! and keeps its timers as deadlines; the harness (`World`) runs it on two hosts of the
//! simulator, turning its deadlines into the scenario run's wake-ups.
//!
//! The fuzzer picks the scenario (links, faults at virtual times, timings, the seed) and each
//! client's requests. The oracles: the invariant checker of every host (`sim.violations()`,
//! which includes "every injected fault ends the connection on both sides in time") and the
//! app's own invariants, checked at the end:
//! - every answer matches its request, where no fault touched the connection;
//! - nothing is lost on a clean close: where both ends closed without an error, the client
//!   got every answer the server sent, and the server every request the client sent;
//! - every connection ends on both sides: no socket is left when nothing more can happen, and
//!   the run ended by itself (not at the sim's time or step limit).
//!
//! cargo fuzz run user_protocol --sanitizer none   (from fuzz/; see fuzz/run.sh)
#![no_main]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sockstate::sim::{ConnId, HostId, Scenario, ScenarioRun, Sim, SimConfig, Step, Stop};
use sockstate::{
    BinaryType, Config, Data, Event, ServerOptions, SocketId, Sockets, TcpId, TcpOptions,
};

const PORT: u16 = 7000;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Longer lines are a protocol error (bounded memory).
const MAX_LINE: usize = 256;

/// What the fuzzer chooses.
#[derive(Arbitrary, Debug)]
struct Input {
    /// The network and its faults.
    scenario: Scenario,
    /// Each client's requests (at most 3 clients of 8 requests are used).
    sessions: Vec<Vec<Request>>,
}

#[derive(Arbitrary, Clone, Copy, Debug)]
enum Request {
    Set { key: u8, value: u16 },
    Get { key: u8 },
    Ping,
}

fuzz_target!(|input: Input| {
    // Fast without the transcript; a failing run is run again with it (the same input gives
    // the same run), for the report.
    if run(&input, false).is_err() {
        let Err(report) = run(&input, true) else {
            panic!("a run failed, and passed when run again: not deterministic\n{input:#?}");
        };
        panic!("{report}");
    }
});

/// One run; `Err` says what broke (with the whole transcript when `record`).
fn run(input: &Input, record: bool) -> Result<(), String> {
    let core = Config::default()
        .connect_timeout(Duration::from_secs(5))
        .close_timeout(Duration::from_secs(5));
    let config = SimConfig::default()
        .core(core)
        .time_limit(Duration::from_secs(600))
        .step_limit(200_000)
        .record(record);
    let mut sim = Sim::with_config(input.scenario.seed, config);
    let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
    let client = sim
        .add_host("client.test", &[ip("127.0.0.1")])
        .expect("client");
    let server = sim.add_host("kv.test", &[ip("127.0.0.2")]).expect("server");
    // Links first (a connection keeps the link it was made with), then the app.
    let mut run = input.scenario.start(&mut sim, &[client, server]);
    let mut world = World::new(client, server, input);
    world.start(&mut sim, &mut run);
    let stopped = run.drive(&mut sim, |sim, run, step| world.on_step(sim, run, step));
    world.check(&sim, stopped).map_err(|what| {
        // The whole story of the run: reproduce it with `cargo fuzz run user_protocol
        // <artifact>` (see the recipe in sockstate::sim::Scenario).
        format!(
            "{what}\n{input:#?}\n--- transcript ---\n{}",
            sim.transcript_text()
        )
    })
}

// ---- the app, as a user writes it: against `Sockets`, so that it runs unchanged on the
// ---- simulator, under the checker and on the real driver; its timers are deadlines it asks for

/// Deadlines an app asks for: (when, its token).
type Timers = Vec<(Instant, u64)>;

/// The key-value server.
#[derive(Default)]
struct Server {
    store: BTreeMap<Vec<u8>, Vec<u8>>,
    conns: BTreeMap<TcpId, Served>,
    next_slot: u64,
}

/// One connection of the server.
#[derive(Clone, Debug, Default)]
struct Served {
    /// Names its idle timer.
    slot: u64,
    partial: Vec<u8>,
    last_activity: Option<Instant>,
    closing: bool,
    // What the checks read: bytes received and sent; (filled by the harness) its connection,
    // how it ended.
    got: usize,
    sent: usize,
    conn: Option<ConnId>,
    error: bool,
    crashed: bool,
}

impl Server {
    fn listen(&mut self, net: &mut impl Sockets) {
        let options = ServerOptions::default()
            .local_port(Some(PORT))
            .binary_type(BinaryType::ArrayBuffer);
        let _ = net.server_listen(options);
    }

    fn on_event(&mut self, net: &mut impl Sockets, timers: &mut Timers, event: Event) {
        match event {
            Event::Connect { socket, .. } => {
                self.next_slot += 1;
                let served = Served {
                    slot: self.next_slot,
                    last_activity: Some(net.now()),
                    ..Served::default()
                };
                timers.push((net.now() + IDLE_TIMEOUT, served.slot));
                self.conns.insert(socket, served);
            }
            Event::Data {
                id,
                data: Data::Bytes(bytes),
            } => {
                let Some(s) = self.conns.get_mut(&id) else {
                    return;
                };
                s.got += bytes.len();
                if s.closing {
                    return;
                }
                s.last_activity = Some(net.now());
                s.partial.extend_from_slice(&bytes);
                let mut out = Vec::new();
                while let Some(line) = take_line(&mut s.partial) {
                    out.extend_from_slice(&answer(&mut self.store, &line));
                    out.push(b'\n');
                }
                let n = out.len();
                if n > 0 && net.tcp_send(id, out).is_ok() {
                    s.sent += n;
                }
                if s.partial.len() > MAX_LINE {
                    s.closing = true;
                    let _ = net.tcp_close(id);
                }
            }
            Event::Error {
                id: SocketId::TcpId(id),
                ..
            } => {
                if let Some(s) = self.conns.get_mut(&id) {
                    s.error = true;
                }
            }
            _ => {}
        }
    }

    /// The idle timer of connection `slot`: closes it if it was idle for `IDLE_TIMEOUT`, else
    /// waits for the rest.
    fn on_timer(&mut self, net: &mut impl Sockets, timers: &mut Timers, slot: u64) {
        let Some((&id, s)) = self.conns.iter_mut().find(|(_, s)| s.slot == slot) else {
            return;
        };
        let Some(last) = s.last_activity.filter(|_| !s.closing) else {
            return;
        };
        if net.now() >= last + IDLE_TIMEOUT {
            s.closing = true;
            let _ = net.tcp_close(id);
        } else {
            timers.push((last + IDLE_TIMEOUT, slot));
        }
    }
}

/// The clients: each session one connection.
#[derive(Default)]
struct Clients {
    sessions: Vec<Session>,
}

/// One client connection.
#[derive(Debug, Default)]
struct Session {
    requests: Vec<Request>,
    id: Option<TcpId>,
    /// The answer each request sent must get (computed from what this session set: each
    /// session has keys of its own).
    expected: Vec<Vec<u8>>,
    model: BTreeMap<u8, u16>,
    answers: usize,
    partial: Vec<u8>,
    mismatch: Option<String>,
    closing: bool,
    gave_up: bool,
    /// Progress counter, for the request timeout.
    progress: u64,
    // What the checks read: bytes received and sent; (filled by the harness) its connection,
    // how it ended.
    got: usize,
    sent: usize,
    conn: Option<ConnId>,
    error: bool,
    closed: bool,
    crashed: bool,
}

/// Timer tokens of the clients: what, and for which session.
const START: u64 = 0;
const SEND: u64 = 1;
const GIVE_UP: u64 = 2;

fn token(kind: u64, session: usize, serial: u64) -> u64 {
    kind | (session as u64) << 8 | serial << 16
}

impl Clients {
    fn on_timer(&mut self, net: &mut impl Sockets, timers: &mut Timers, pauses: &Scenario, t: u64) {
        let (kind, i, serial) = (t & 0xff, (t >> 8 & 0xff) as usize, t >> 16);
        let Some(s) = self.sessions.get_mut(i) else {
            return;
        };
        match kind {
            START if s.id.is_none() && !s.crashed => {
                let options = TcpOptions::default().binary_type(BinaryType::ArrayBuffer);
                if let Ok(id) = net.tcp_open("kv.test", PORT, options) {
                    s.id = Some(id);
                    s.arm_give_up(net, timers, i);
                }
            }
            SEND => {
                let (Some(id), false) = (s.id, s.closing || s.closed) else {
                    return;
                };
                let k = s.expected.len();
                let Some(&request) = s.requests.get(k) else {
                    return;
                };
                let (line, answer) = s.request(i, request);
                s.expected.push(answer);
                let n = line.len();
                if net.tcp_send(id, line).is_ok() {
                    s.sent += n;
                }
                if k + 1 < s.requests.len() {
                    timers.push((net.now() + pause(pauses, i + k + 1), token(SEND, i, 0)));
                }
                s.arm_give_up(net, timers, i);
            }
            GIVE_UP if serial == s.progress && !s.closed => {
                if let Some(id) = s.id {
                    s.gave_up = true;
                    let _ = net.tcp_close_immediately(id);
                }
            }
            _ => {}
        }
    }

    /// The session of a socket.
    fn of(&self, id: SocketId) -> Option<usize> {
        self.sessions
            .iter()
            .position(|s| s.id.map(SocketId::from) == Some(id))
    }

    fn on_event(&mut self, net: &mut impl Sockets, timers: &mut Timers, i: usize, event: Event) {
        let s = &mut self.sessions[i];
        match event {
            Event::Open { .. } => {
                s.arm_give_up(net, timers, i);
                if s.requests.is_empty() {
                    s.close(net);
                } else {
                    timers.push((net.now(), token(SEND, i, 0)));
                }
            }
            Event::Data {
                data: Data::Bytes(bytes),
                ..
            } => {
                s.got += bytes.len();
                s.partial.extend_from_slice(&bytes);
                s.arm_give_up(net, timers, i);
                while let Some(line) = take_line(&mut s.partial) {
                    let Some(want) = s.expected.get(s.answers) else {
                        s.mismatch
                            .get_or_insert(format!("an answer to no request: {line:?}"));
                        break;
                    };
                    if line != *want && s.mismatch.is_none() {
                        s.mismatch = Some(format!(
                            "answer {} is {:?}, expected {:?}",
                            s.answers,
                            String::from_utf8_lossy(&line),
                            String::from_utf8_lossy(want)
                        ));
                    }
                    s.answers += 1;
                }
                if s.partial.len() > MAX_LINE {
                    s.mismatch.get_or_insert("an answer line too long".into());
                    s.partial.clear();
                }
                if s.answers == s.requests.len() {
                    s.close(net);
                }
            }
            Event::Error { .. } => s.error = true,
            Event::Close { .. } => s.closed = true,
            _ => {}
        }
    }
}

impl Session {
    /// The line of a request and the answer it must get.
    fn request(&mut self, session: usize, request: Request) -> (Vec<u8>, Vec<u8>) {
        match request {
            Request::Set { key, value } => {
                self.model.insert(key % 4, value);
                let line = format!("SET s{session}k{} {value}\n", key % 4);
                (line.into_bytes(), b"OK".to_vec())
            }
            Request::Get { key } => {
                let answer = match self.model.get(&(key % 4)) {
                    Some(v) => format!("VALUE {v}"),
                    None => "NONE".into(),
                };
                let line = format!("GET s{session}k{}\n", key % 4);
                (line.into_bytes(), answer.into_bytes())
            }
            Request::Ping => (b"PING\n".to_vec(), b"PONG".to_vec()),
        }
    }

    /// Gives up `REQUEST_TIMEOUT` from now unless something happens before.
    fn arm_give_up(&mut self, net: &impl Sockets, timers: &mut Timers, i: usize) {
        self.progress += 1;
        timers.push((
            net.now() + REQUEST_TIMEOUT,
            token(GIVE_UP, i, self.progress),
        ));
    }

    fn close(&mut self, net: &mut impl Sockets) {
        if let (Some(id), false) = (self.id, self.closing) {
            self.closing = true;
            let _ = net.tcp_close(id);
        }
    }
}

/// The scenario's `i`th timing, at most 2 s (think times stay well under the timeouts).
fn pause(scenario: &Scenario, i: usize) -> Duration {
    scenario.timing(i).min(Duration::from_secs(2))
}

/// The server's answer to one request line.
fn answer(store: &mut BTreeMap<Vec<u8>, Vec<u8>>, line: &[u8]) -> Vec<u8> {
    let words: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
    match words[..] {
        [b"SET", key, value] => {
            store.insert(key.to_vec(), value.to_vec());
            b"OK".to_vec()
        }
        [b"GET", key] => match store.get(key) {
            Some(v) => [b"VALUE ", &v[..]].concat(),
            None => b"NONE".to_vec(),
        },
        [b"PING"] => b"PONG".to_vec(),
        _ => b"ERR".to_vec(),
    }
}

/// Takes one `\n`-terminated line off the front of `buf`.
fn take_line(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let end = buf.iter().position(|b| *b == b'\n')?;
    let mut line: Vec<u8> = buf.drain(..=end).collect();
    line.pop();
    Some(line)
}

// ---- the harness: runs the app on two hosts of the simulator, keeps what the checks need ---

struct World {
    scenario: Scenario,
    client: HostId,
    server: HostId,
    clients: Clients,
    kv: Server,
    /// The server's connections that ended, by connection.
    server_log: BTreeMap<ConnId, Served>,
}

impl World {
    fn new(client: HostId, server: HostId, input: &Input) -> World {
        let sessions = input.sessions.iter().take(3).map(|r| Session {
            requests: r.iter().take(8).copied().collect(),
            ..Session::default()
        });
        World {
            scenario: input.scenario.clone(),
            client,
            server,
            clients: Clients {
                sessions: sessions.collect(),
            },
            kv: Server::default(),
            server_log: BTreeMap::new(),
        }
    }

    fn start(&mut self, sim: &mut Sim, run: &mut ScenarioRun) {
        if let Ok(mut net) = sim.host(self.server) {
            self.kv.listen(&mut net);
        }
        for i in 0..self.clients.sessions.len() {
            let at = sim.now() + pause(&self.scenario, i);
            run.wake_at(self.client, at, token(START, i, 0));
        }
    }

    fn on_step(&mut self, sim: &mut Sim, run: &mut ScenarioRun, step: Step) {
        let mut timers = Timers::new();
        let host = match step {
            Step::Event { host, event } => {
                let Ok(mut net) = sim.host(host) else { return };
                if host == self.server {
                    let closed = match event {
                        Event::Close {
                            id: SocketId::TcpId(id),
                        } => Some(id),
                        _ => None,
                    };
                    let accepted = match event {
                        Event::Connect { socket, .. } => Some(socket),
                        _ => None,
                    };
                    self.kv.on_event(&mut net, &mut timers, event);
                    if let Some(id) = accepted {
                        let conn = sim.conn_of(host, id);
                        if let Some(s) = self.kv.conns.get_mut(&id) {
                            s.conn = conn;
                        }
                    }
                    if let Some(s) = closed.and_then(|id| self.kv.conns.remove(&id)) {
                        self.log(s);
                    }
                } else {
                    let socket = match &event {
                        Event::Open { id } | Event::Error { id, .. } | Event::Close { id } => *id,
                        Event::Data { id, .. } | Event::HalfClose { id } => SocketId::from(*id),
                        _ => return,
                    };
                    let Some(i) = self.clients.of(socket) else {
                        return;
                    };
                    self.clients.on_event(&mut net, &mut timers, i, event);
                    let s = &mut self.clients.sessions[i];
                    if s.conn.is_none() {
                        s.conn = s.id.and_then(|id| sim.conn_of(host, id));
                    }
                }
                host
            }
            Step::Wake { host, token } => {
                let Ok(mut net) = sim.host(host) else { return };
                if host == self.server {
                    self.kv.on_timer(&mut net, &mut timers, token);
                } else {
                    self.clients
                        .on_timer(&mut net, &mut timers, &self.scenario, token);
                }
                host
            }
            Step::Crashed { host } if host == self.server => {
                self.kv.store.clear();
                for (_, mut s) in std::mem::take(&mut self.kv.conns) {
                    s.crashed = true;
                    self.log(s);
                }
                return;
            }
            Step::Crashed { .. } => {
                for s in &mut self.clients.sessions {
                    s.crashed |= s.id.is_some() && !s.closed;
                    s.id = None;
                }
                return;
            }
            Step::Restarted { host } if host == self.server => {
                if let Ok(mut net) = sim.host(host) {
                    self.kv.listen(&mut net);
                }
                return;
            }
            _ => return,
        };
        // The app's deadlines, on the run's clock (virtual time since the start).
        let start = sim.instant() - sim.now();
        for (at, token) in timers {
            run.wake_at(host, at - start, token);
        }
    }

    fn log(&mut self, s: Served) {
        if let Some(conn) = s.conn {
            self.server_log.insert(conn, s);
        }
    }

    // ---- the invariants ----------------------------------------------------------------

    fn check(&self, sim: &Sim, stopped: Option<Stop>) -> Result<(), String> {
        if let Some(stop) = stopped.or(sim.stopped()) {
            return Err(format!("the run did not end by itself: {stop:?}"));
        }
        let violations = sim.violations();
        if !violations.is_empty() {
            return Err(format!("the checker found: {violations:#?}"));
        }
        for host in [self.client, self.server] {
            let left: Vec<TcpId> = sim
                .core(host)
                .map(|c| c.tcp_ids().collect())
                .unwrap_or_default();
            if !left.is_empty() {
                return Err(format!("connections never ended on {host}: {left:?}"));
            }
        }
        // Without faults (and flipped bits), every session completes: all its answers, and a
        // clean close.
        let flips = self.scenario.links.iter().any(|l| l.link.flip_rate > 0.0);
        let calm = self.scenario.faults.is_empty() && !flips;
        for (i, s) in self.clients.sessions.iter().enumerate() {
            let done = s.answers == s.requests.len() && s.closed && !s.error && !s.gave_up;
            if calm && !done {
                return Err(format!(
                    "session {i} did not complete without faults: {s:?}"
                ));
            }
            let Some(conn) = s.conn else { continue };
            // A flipped bit on any connection may have changed a request that wrote to the
            // store (a key of another session): then no answer is sure.
            let store_hit = flips && sim.conns().any(|c| sim.faulted(c));
            if let (Some(m), false) = (&s.mismatch, sim.faulted(conn) || store_hit) {
                return Err(format!("session {i} on {conn}: {m}"));
            }
            let Some(served) = self.server_log.get(&conn) else {
                continue;
            };
            if s.error || s.crashed || s.gave_up || served.error || served.crashed {
                continue;
            }
            // Both ends closed without an error: nothing was lost either way (counted in
            // bytes: a flipped bit may change the lines, never the count).
            if s.got != served.sent {
                return Err(format!(
                    "session {i} on {conn}: clean close, but the client got {} bytes of the {} \
                     the server sent",
                    s.got, served.sent
                ));
            }
            if s.closing && !served.closing && served.got != s.sent {
                return Err(format!(
                    "session {i} on {conn}: clean close, but the server got {} bytes of the {} \
                     the client sent",
                    served.got, s.sent
                ));
            }
        }
        Ok(())
    }
}
