//! Fuzzing a protocol of your own over the simulated network: the example of the recipe in
//! `sockstate::sim::Scenario` (src/sim/fuzzing.md).
//!
//! The protocol: a key-value store over lines. A client sends `SET k v`, `GET k` or `PING`,
//! each ending in `\n`, and the server answers each request, in order, with one line: `OK`,
//! `VALUE v` or `NONE`, `PONG` (`ERR` to anything else). Clients pipeline their requests,
//! spaced by the scenario's timings, and close once every answer is in; they give up after
//! `REQUEST_TIMEOUT` without progress. The server closes connections idle for `IDLE_TIMEOUT`.
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
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sockstate::sim::{Call, ConnId, HostId, Returned, Scenario, ScenarioRun, Sim, SimConfig, Step};
use sockstate::{BinaryType, Config, Data, Event, ServerOptions, SocketId, TcpId, TcpOptions};

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
    let mut app = App::new(client, server, input);
    app.start(&mut sim, &mut run);
    let stopped = run.drive(&mut sim, |sim, run, step| app.on_step(sim, run, step));
    app.check(&sim, stopped).map_err(|what| {
        // The whole story of the run: reproduce it with `cargo fuzz run user_protocol
        // <artifact>` (see the recipe in sockstate::sim::Scenario).
        format!(
            "{what}\n{input:#?}\n--- transcript ---\n{}",
            sim.transcript_text()
        )
    })
}

/// The app: a server and the clients, as a user writes them (calls through `Sim::call`).
struct App {
    timings: Scenario,
    client: HostId,
    server: HostId,
    sessions: Vec<Session>,
    /// The server's store (lost when its host crashes) and its connections.
    store: BTreeMap<Vec<u8>, Vec<u8>>,
    served: BTreeMap<TcpId, Served>,
    /// Everything the server's connections saw, by connection, for the final checks.
    server_log: BTreeMap<ConnId, Served>,
    /// Numbers the server's connections, for their idle timers.
    next_slot: u64,
}

/// One client connection.
#[derive(Debug, Default)]
struct Session {
    requests: Vec<Request>,
    id: Option<TcpId>,
    conn: Option<ConnId>,
    /// Requests sent so far, and the answer each must get (computed from what this session
    /// set: each session has keys of its own).
    expected: Vec<Vec<u8>>,
    model: BTreeMap<u8, u16>,
    answers: usize,
    partial: Vec<u8>,
    mismatch: Option<String>,
    /// How it ended.
    closed_by_me: bool,
    gave_up: bool,
    error: bool,
    closed: bool,
    crashed: bool,
    /// Progress counter, for the request timeout.
    progress: u64,
}

/// One server connection.
#[derive(Clone, Debug, Default)]
struct Served {
    slot: u64,
    conn: Option<ConnId>,
    partial: Vec<u8>,
    requests: usize,
    answers: usize,
    last_activity: Duration,
    closed_by_me: bool,
    error: bool,
    closed: bool,
    crashed: bool,
}

/// Wake-up tokens: what to do, and for which session or server socket.
const START: u64 = 0;
const SEND: u64 = 1;
const GIVE_UP: u64 = 2;
const IDLE: u64 = 3;

fn token(kind: u64, index: usize, serial: u64) -> u64 {
    kind | (index as u64) << 8 | serial << 16
}

fn untoken(token: u64) -> (u64, usize, u64) {
    (token & 0xff, (token >> 8 & 0xff) as usize, token >> 16)
}

impl App {
    fn new(client: HostId, server: HostId, input: &Input) -> App {
        let sessions = input.sessions.iter().take(3);
        App {
            timings: input.scenario.clone(),
            client,
            server,
            sessions: sessions
                .map(|r| Session {
                    requests: r.iter().take(8).copied().collect(),
                    ..Session::default()
                })
                .collect(),
            store: BTreeMap::new(),
            served: BTreeMap::new(),
            server_log: BTreeMap::new(),
            next_slot: 0,
        }
    }

    fn start(&mut self, sim: &mut Sim, run: &mut ScenarioRun) {
        self.listen(sim);
        for i in 0..self.sessions.len() {
            run.wake_after(sim, self.client, self.timing(i), token(START, i, 0));
        }
    }

    /// The scenario's `i`th timing, at most 2 s (think times stay well under the timeouts).
    fn timing(&self, i: usize) -> Duration {
        self.timings.timing(i).min(Duration::from_secs(2))
    }

    fn listen(&mut self, sim: &mut Sim) {
        let options = ServerOptions::default()
            .local_port(Some(PORT))
            .binary_type(BinaryType::ArrayBuffer);
        let _ = sim.call(self.server, Call::ServerListen { options });
    }

    fn on_step(&mut self, sim: &mut Sim, run: &mut ScenarioRun, step: Step) {
        match step {
            Step::Event { host, event } if host == self.server => {
                self.server_event(sim, run, event)
            }
            Step::Event { event, .. } => self.client_event(sim, run, event),
            Step::Wake { token, .. } => self.wake(sim, run, token),
            Step::Crashed { host } if host == self.server => {
                self.store.clear();
                for (_, mut s) in std::mem::take(&mut self.served) {
                    s.crashed = true;
                    self.log(s);
                }
            }
            Step::Crashed { .. } => {
                for s in &mut self.sessions {
                    s.crashed |= s.id.is_some() && !s.closed;
                    s.id = None;
                }
            }
            Step::Restarted { host } if host == self.server => self.listen(sim),
            _ => {}
        }
    }

    // ---- the client --------------------------------------------------------------------

    fn wake(&mut self, sim: &mut Sim, run: &mut ScenarioRun, wake: u64) {
        let (kind, i, serial) = untoken(wake);
        if kind == IDLE {
            return self.idle_check(sim, run, serial);
        }
        let client = self.client;
        // The pause before this session's next request.
        let k = self.sessions.get(i).map_or(0, |s| s.expected.len());
        let pause = self.timing(i + k + 1);
        let Some(s) = self.sessions.get_mut(i) else {
            return;
        };
        match kind {
            START if s.id.is_none() && !s.crashed => {
                let options = TcpOptions::default().binary_type(BinaryType::ArrayBuffer);
                let open = Call::TcpOpen {
                    host: "kv.test".into(),
                    port: PORT,
                    options,
                };
                if let Ok(Returned::Opened(id)) = sim.call(client, open) {
                    s.id = Some(id);
                    s.arm_give_up(sim, run, client, i);
                }
            }
            SEND => {
                let (Some(id), false) = (s.id, s.closed) else {
                    return;
                };
                let Some(&request) = s.requests.get(k) else {
                    return;
                };
                let (line, answer) = s.request(i, request);
                s.expected.push(answer);
                let _ = sim.call(
                    client,
                    Call::TcpSend {
                        id,
                        data: line.into(),
                    },
                );
                if k + 1 < s.requests.len() {
                    run.wake_after(sim, client, pause, token(SEND, i, 0));
                }
                s.arm_give_up(sim, run, client, i);
            }
            GIVE_UP if serial == s.progress && !s.closed => {
                if let Some(id) = s.id {
                    s.gave_up = true;
                    let _ = sim.call(client, Call::TcpCloseImmediately { id });
                }
            }
            _ => {}
        }
    }

    fn client_event(&mut self, sim: &mut Sim, run: &mut ScenarioRun, event: Event) {
        let client = self.client;
        let socket = match &event {
            Event::Open { id } | Event::Error { id, .. } | Event::Close { id } => *id,
            Event::Data { id, .. } | Event::HalfClose { id } => SocketId::from(*id),
            _ => return,
        };
        let Some(i) = self
            .sessions
            .iter()
            .position(|s| s.id.map(SocketId::from) == Some(socket))
        else {
            return;
        };
        let s = &mut self.sessions[i];
        match event {
            Event::Open { .. } => {
                s.conn = s.id.and_then(|id| sim.conn_of(client, id));
                s.arm_give_up(sim, run, client, i);
                if s.requests.is_empty() {
                    s.close(sim, client);
                } else {
                    run.wake_after(sim, client, Duration::ZERO, token(SEND, i, 0));
                }
            }
            Event::Data { data, .. } => {
                let Data::Bytes(bytes) = data else { return };
                s.partial.extend_from_slice(&bytes);
                s.arm_give_up(sim, run, client, i);
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
                    s.close(sim, client);
                }
            }
            Event::Error { .. } => s.error = true,
            Event::Close { .. } => s.closed = true,
            _ => {}
        }
    }

    // ---- the server --------------------------------------------------------------------

    fn server_event(&mut self, sim: &mut Sim, run: &mut ScenarioRun, event: Event) {
        let server = self.server;
        match event {
            Event::Connect { socket, .. } => {
                self.next_slot += 1;
                let served = Served {
                    slot: self.next_slot,
                    conn: sim.conn_of(server, socket),
                    last_activity: sim.now(),
                    ..Served::default()
                };
                run.wake_after(sim, server, IDLE_TIMEOUT, token(IDLE, 0, served.slot));
                self.served.insert(socket, served);
            }
            Event::Data { id, data } => {
                let Data::Bytes(bytes) = data else { return };
                let Some(s) = self.served.get_mut(&id) else {
                    return;
                };
                if s.closed_by_me {
                    return;
                }
                s.last_activity = sim.now();
                s.partial.extend_from_slice(&bytes);
                let mut out = Vec::new();
                while let Some(line) = take_line(&mut s.partial) {
                    s.requests += 1;
                    s.answers += 1;
                    out.extend_from_slice(&answer(&mut self.store, &line));
                    out.push(b'\n');
                }
                if !out.is_empty() {
                    let _ = sim.call(
                        server,
                        Call::TcpSend {
                            id,
                            data: out.into(),
                        },
                    );
                }
                if s.partial.len() > MAX_LINE {
                    s.closed_by_me = true;
                    let _ = sim.call(server, Call::TcpClose { id });
                }
            }
            Event::Error {
                id: SocketId::TcpId(id),
                ..
            } => {
                if let Some(s) = self.served.get_mut(&id) {
                    s.error = true;
                }
            }
            Event::Close {
                id: SocketId::TcpId(id),
            } => {
                if let Some(mut s) = self.served.remove(&id) {
                    s.closed = true;
                    self.log(s);
                }
            }
            _ => {}
        }
    }

    /// The idle timer of the server's connection `slot`: closes it if it was idle for
    /// `IDLE_TIMEOUT`, else waits for the rest.
    fn idle_check(&mut self, sim: &mut Sim, run: &mut ScenarioRun, slot: u64) {
        let Some((&id, s)) = self.served.iter_mut().find(|(_, s)| s.slot == slot) else {
            return;
        };
        if s.closed_by_me {
            return;
        }
        let idle = sim.now().saturating_sub(s.last_activity);
        if idle >= IDLE_TIMEOUT {
            s.closed_by_me = true;
            let _ = sim.call(self.server, Call::TcpClose { id });
        } else {
            run.wake_after(sim, self.server, IDLE_TIMEOUT - idle, token(IDLE, 0, slot));
        }
    }

    fn log(&mut self, s: Served) {
        if let Some(conn) = s.conn {
            self.server_log.insert(conn, s);
        }
    }

    // ---- the invariants ----------------------------------------------------------------

    fn check(&self, sim: &Sim, stopped: Option<sockstate::sim::Stop>) -> Result<(), String> {
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
        for (i, s) in self.sessions.iter().enumerate() {
            let Some(conn) = s.conn else { continue };
            let faulted = sim.faulted(conn);
            if let (Some(m), false) = (&s.mismatch, faulted) {
                return Err(format!("session {i} on {conn}: {m}"));
            }
            let Some(served) = self.server_log.get(&conn) else {
                continue;
            };
            let clean = |error: bool, crashed: bool| !error && !crashed;
            if !(clean(s.error, s.crashed) && clean(served.error, served.crashed)) || s.gave_up {
                continue;
            }
            // Both ends closed without an error: nothing was lost either way.
            if s.answers != served.answers {
                return Err(format!(
                    "session {i} on {conn}: clean close, but the client got {} answers of the {} \
                     the server sent",
                    s.answers, served.answers
                ));
            }
            if s.closed_by_me && !served.closed_by_me && served.requests != s.expected.len() {
                return Err(format!(
                    "session {i} on {conn}: clean close, but the server got {} requests of the {} \
                     the client sent",
                    served.requests,
                    s.expected.len()
                ));
            }
        }
        Ok(())
    }
}

impl Session {
    /// The line of a request and the answer it must get.
    fn request(&mut self, session: usize, request: Request) -> (Vec<u8>, Vec<u8>) {
        match request {
            Request::Set { key, value } => {
                self.model.insert(key % 4, value);
                (
                    format!("SET s{session}k{} {value}\n", key % 4).into_bytes(),
                    b"OK".to_vec(),
                )
            }
            Request::Get { key } => {
                let answer = match self.model.get(&(key % 4)) {
                    Some(v) => format!("VALUE {v}"),
                    None => "NONE".into(),
                };
                (
                    format!("GET s{session}k{}\n", key % 4).into_bytes(),
                    answer.into_bytes(),
                )
            }
            Request::Ping => (b"PING\n".to_vec(), b"PONG".to_vec()),
        }
    }

    /// Gives up `REQUEST_TIMEOUT` from now unless something happens before.
    fn arm_give_up(&mut self, sim: &Sim, run: &mut ScenarioRun, client: HostId, i: usize) {
        self.progress += 1;
        run.wake_after(
            sim,
            client,
            REQUEST_TIMEOUT,
            token(GIVE_UP, i, self.progress),
        );
    }

    fn close(&mut self, sim: &mut Sim, client: HostId) {
        if let (Some(id), false) = (self.id, self.closed_by_me) {
            self.closed_by_me = true;
            let _ = sim.call(client, Call::TcpClose { id });
        }
    }
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
