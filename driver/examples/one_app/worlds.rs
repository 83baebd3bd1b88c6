//! The four worlds the app of `app.rs` runs in, unchanged: a `Core` driven by hand, the same
//! under `CheckedCore`, two hosts of the simulated network, and the driver on loopback
//! against peers written with `std::net` alone. Each returns what the app logged.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use sockstate::sim::{CheckedCore, HostId, Link, Sim, SimConfig, Violation};
use sockstate::{Action, Config, Core, Event, Input, InputError, Output, SocketId, Sockets};
use sockstate_driver::Driver;

use super::app::PingPong;

/// What a run ended with, in the app's terms.
#[derive(Debug, Default, PartialEq)]
pub struct Logs {
    /// The client app's log.
    pub client: Vec<String>,
    /// The server's log: the server app's, or the scripted peer's when the server is a script.
    pub server: Vec<String>,
}

/// Most steps a hand-driven run may take: a run that does not end is a failure, not a hang.
const MAX_STEPS: usize = 100_000;

// ---- 1 and 2: a core driven by hand --------------------------------------------------------

/// What the hand-driven loop needs of a core: [`Core`] and [`CheckedCore`] alike.
pub trait ByHand {
    /// The core as [`Sockets`] at `now`.
    fn net(&mut self, now: Instant) -> impl Sockets + '_;
    /// `poll_output`.
    fn poll(&mut self) -> Output;
    /// `handle_input`.
    fn input(&mut self, now: Instant, input: Input) -> Result<(), InputError>;
    /// `handle_timeout`.
    fn timeout(&mut self, now: Instant);
}

/// The same four methods, by the same names, on both kinds of core.
macro_rules! by_hand {
    ($core:ty) => {
        impl ByHand for $core {
            fn net(&mut self, now: Instant) -> impl Sockets + '_ {
                self.at(now)
            }
            fn poll(&mut self) -> Output {
                self.poll_output()
            }
            fn input(&mut self, now: Instant, input: Input) -> Result<(), InputError> {
                self.handle_input(now, input)
            }
            fn timeout(&mut self, now: Instant) {
                self.handle_timeout(now);
            }
        }
    };
}
by_hand!(Core);
by_hand!(CheckedCore);

/// Runs a client app for `count` pings on `core`, this function playing the I/O layer and the
/// server: it connects at once, takes every write whole, answers each line as the protocol
/// says (each answer in two reads, so the app must join them), sends FIN after `BYE`, and
/// reports every byte acknowledged. Time moves only to the core's or the app's deadlines.
pub fn by_hand(core: &mut impl ByHand, count: u32) -> Result<Logs, String> {
    let mut now = Instant::now();
    let mut app = PingPong::client("127.0.0.1", 7000, count);
    app.start(&mut core.net(now)).map_err(|e| e.to_string())?;
    let mut peer = Vec::new();
    let mut peer_log = Vec::new();
    let mut inbox: VecDeque<Input> = VecDeque::new();
    for _ in 0..MAX_STEPS {
        match core.poll() {
            Output::Action(Action::Connect { id, attempt, .. }) => {
                let local = "127.0.0.1:50000".parse().expect("an address");
                inbox.push_back(Input::Connected { id, attempt, local });
            }
            Output::Action(Action::Write { id, data }) => {
                inbox.push_back(Input::Written {
                    id,
                    len: data.len(),
                });
                peer.extend_from_slice(&data);
                while let Some(end) = peer.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = peer.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line[..end]).into_owned();
                    let answer = match line.split_once(' ') {
                        Some(("PING", n)) => format!("PONG {n}\n"),
                        None if line == "QUIT" => "BYE\n".into(),
                        _ => return Err(format!("the peer got {line:?}")),
                    };
                    peer_log.push(line);
                    let (a, b) = answer.split_at(2);
                    for part in [a, b] {
                        let data = part.to_owned().into();
                        inbox.push_back(Input::Received { id, data });
                    }
                    if answer == "BYE\n" {
                        inbox.push_back(Input::Eof { id });
                    }
                }
            }
            Output::Action(Action::QueryUnacked { id }) => {
                inbox.push_back(Input::Unacked { id, bytes: Some(0) });
            }
            Output::Action(Action::Shutdown { .. }) => peer_log.push("closed".into()),
            // Reading is never turned off by this app; nothing to do for the rest.
            Output::Action(_) => {}
            Output::Event(event) => {
                (app.on_event(&mut core.net(now), &event)).map_err(|e| e.to_string())?;
            }
            Output::Timeout(deadline) => {
                if let Some(input) = inbox.pop_front() {
                    core.input(now, input).map_err(|e| e.to_string())?;
                    continue;
                }
                // Nothing more from the peer: time moves to the core's or the app's deadline.
                let Some(at) = deadline.into_iter().chain(app.deadline()).min() else {
                    return Ok(Logs {
                        client: app.log,
                        server: peer_log,
                    });
                };
                now = now.max(at);
                core.timeout(now);
                app.on_timeout(&mut core.net(now))
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    Err(format!("no end after {MAX_STEPS} steps"))
}

/// [`by_hand`] on a plain core.
pub fn on_core(count: u32) -> Result<Logs, String> {
    by_hand(&mut Core::new(Config::default()), count)
}

/// [`by_hand`] under the checker, with what it found broken.
pub fn on_checked_core(count: u32) -> Result<(Logs, Vec<Violation>), String> {
    let mut core = CheckedCore::new(Core::new(Config::default()));
    let logs = by_hand(&mut core, count)?;
    core.check_all_closed();
    Ok((logs, core.violations().to_vec()))
}

// ---- 3: the simulated network ----------------------------------------------------------------

/// A fault the sim injects once the apps have seen `after` events (a reset: the first
/// moment after that when there is a connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// None.
    Nothing,
    /// The connection is reset (both ends get a reset).
    Reset { after: usize },
    /// Nothing passes between the hosts for `millis`, then the partition is repaired (TCP
    /// holds what was in flight and retransmits it: nothing is lost).
    Partition { after: usize, millis: u64 },
    /// The server host crashes and restarts `millis` later: the client's next segment then
    /// meets a reset.
    Crash { after: usize, millis: u64 },
}

/// A fault chosen by the seed, so that a range of seeds covers every kind and moment.
pub fn fault_of(seed: u64) -> Fault {
    let after = 1 + (seed / 4 % 24) as usize;
    let millis = 1 + seed % 500;
    match seed % 4 {
        0 => Fault::Nothing,
        1 => Fault::Reset { after },
        2 => Fault::Partition { after, millis },
        _ => Fault::Crash { after, millis },
    }
}

/// What a sim run gave: the logs, the checker's findings, the transcript.
#[derive(Debug)]
pub struct SimRun {
    /// The apps' logs.
    pub logs: Logs,
    /// Every broken invariant on either host.
    pub violations: Vec<Violation>,
    /// Whether the fault happened (not one that came after the end of the run).
    pub injected: bool,
    /// The run, step by step (for a failing seed).
    pub transcript: String,
}

/// Both apps on two hosts of a sim seeded with `seed`: 2 ms latency with 3 ms of jitter,
/// seeded chunked reads and partial writes, and `fault`.
pub fn on_sim(seed: u64, count: u32, fault: Fault) -> Result<SimRun, String> {
    let link = Link::default()
        .latency(Duration::from_millis(2))
        .jitter(Duration::from_millis(3));
    let mut sim = Sim::with_config(seed, SimConfig::default().link(link));
    let err = |e: sockstate::sim::SimError| e.to_string();
    let client_host = sim.add_host("client", &[ip(10, 0, 0, 1)]).map_err(err)?;
    let server_host = sim.add_host("server", &[ip(10, 0, 0, 2)]).map_err(err)?;
    let mut client = PingPong::client("server", 7000, count);
    let mut server = PingPong::server(ip(10, 0, 0, 2), 7000);
    (server.start(&mut sim.host(server_host).map_err(err)?)).map_err(|e| e.to_string())?;

    let (mut seen, mut injected) = (0, false);
    let mut heal: Option<(Duration, HostId)> = None;
    while sim.stopped().is_none() {
        // The next event, or the moment the fault heals or the app's own timer is due.
        let app_due = client
            .deadline()
            .map(|at| at.saturating_duration_since(sim.instant()));
        let heal_due = heal.map(|(at, _)| at.saturating_sub(sim.now()));
        let next = match heal_due.into_iter().chain(app_due).min() {
            Some(span) => sim.next_event_within(span),
            None => sim.next_event(),
        };
        let Some((host, event)) = next else {
            match heal {
                None if app_due.is_none() => break,
                Some((at, crashed)) if at <= sim.now() => {
                    heal = None;
                    match crashed == server_host {
                        true => sim.restart(crashed).map_err(err)?,
                        false => sim.repair(client_host, server_host),
                    }
                }
                _ => {}
            }
            let mut net = sim.host(client_host).map_err(err)?;
            client.on_timeout(&mut net).map_err(|e| e.to_string())?;
            continue;
        };
        let mut net = sim.host(host).map_err(err)?;
        let app = if host == client_host {
            &mut client
        } else {
            &mut server
        };
        app.on_event(&mut net, &event).map_err(|e| e.to_string())?;
        if host == server_host
            && matches!(
                event,
                Event::Open {
                    id: SocketId::ServerId(_)
                }
            )
        {
            (client.start(&mut sim.host(client_host).map_err(err)?)).map_err(|e| e.to_string())?;
        }
        seen += 1;
        match fault {
            // Once there is a connection to reset (the first events may come before it).
            Fault::Reset { after } if seen >= after && !injected => {
                let conn = sim.conns().next();
                if let Some(conn) = conn {
                    sim.reset(conn).map_err(err)?;
                    injected = true;
                }
            }
            Fault::Partition { after, millis } if seen == after => {
                sim.partition(client_host, server_host);
                heal = Some((sim.now() + Duration::from_millis(millis), client_host));
                injected = true;
            }
            Fault::Crash { after, millis } if seen == after => {
                sim.crash(server_host).map_err(err)?;
                heal = Some((sim.now() + Duration::from_millis(millis), server_host));
                injected = true;
            }
            _ => {}
        }
    }
    if let Some(stop) = sim.stopped() {
        return Err(format!("the run stopped: {stop:?}"));
    }
    Ok(SimRun {
        logs: Logs {
            client: client.log,
            server: server.log,
        },
        violations: sim.violations(),
        injected,
        transcript: sim.transcript_text(),
    })
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

// ---- 4: the driver on loopback -----------------------------------------------------------------

/// How long a driver run may take before it counts as failed.
const DRIVER_LIMIT: Duration = Duration::from_secs(20);

/// The client app on a driver against a server written with `std::net`, then the server app
/// on a driver against a client written with `std::net`.
pub fn on_driver(count: u32) -> Result<Logs, String> {
    let client = driver_client(count)?;
    let server = driver_server(count)?;
    Ok(Logs { client, server })
}

/// Runs `app` on `driver` until `done` says so, within [`DRIVER_LIMIT`]; returns every event
/// the driver delivered.
pub fn run_driver(
    driver: &mut Driver,
    app: &mut PingPong,
    mut done: impl FnMut(&mut PingPong, &mut Driver) -> bool,
) -> Result<Vec<Event>, String> {
    let deadline = Instant::now() + DRIVER_LIMIT;
    let mut events = Vec::new();
    app.start(driver).map_err(|e| e.to_string())?;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let app_due = app
            .deadline()
            .map(|at| at.saturating_duration_since(Instant::now()));
        if let Some(event) = driver.next_event(Some(app_due.map_or(left, |due| due.min(left)))) {
            app.on_event(driver, &event).map_err(|e| e.to_string())?;
            events.push(event);
        }
        app.on_timeout(driver).map_err(|e| e.to_string())?;
        if done(app, driver) {
            return Ok(events);
        }
    }
    Err(format!("no end within {DRIVER_LIMIT:?}: {:?}", app.log))
}

/// Whether the app's (last) connection has closed.
pub fn closed(app: &mut PingPong, _: &mut Driver) -> bool {
    app.log.last().is_some_and(|l| l == "closed")
}

fn driver_client(count: u32) -> Result<Vec<String>, String> {
    let (port, peer) = std_server()?;
    let mut driver = Driver::new(sockstate_driver::Config::default()).map_err(|e| e.to_string())?;
    let mut app = PingPong::client("127.0.0.1", port, count);
    let ran = run_driver(&mut driver, &mut app, closed);
    let peer_log = peer.join().map_err(|_| "the peer panicked")?;
    ran?;
    let peer_log = peer_log.map_err(|e| e.to_string())?;
    if peer_log != super::app::expected_server_log(count) {
        return Err(format!("the std server logged {peer_log:?}"));
    }
    Ok(app.log)
}

/// A peer's thread, which returns what the peer logged.
pub type PeerThread = thread::JoinHandle<std::io::Result<Vec<String>>>;

/// A PING/PONG server written with `std::net`, for the client app: its port, and the thread
/// that serves one connection and returns what it logged.
pub fn std_server() -> Result<(u16, PeerThread), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let peer = thread::spawn(move || -> std::io::Result<Vec<String>> {
        let (stream, _) = listener.accept()?;
        stream.set_read_timeout(Some(DRIVER_LIMIT))?;
        let mut out = stream.try_clone()?;
        let mut log = Vec::new();
        for line in BufReader::new(stream).lines() {
            let line = line?;
            match line.split_once(' ') {
                Some(("PING", n)) => out.write_all(format!("PONG {n}\n").as_bytes())?,
                None if line == "QUIT" => {
                    out.write_all(b"BYE\n")?;
                    out.shutdown(Shutdown::Write)?;
                }
                _ => return Err(std::io::Error::other(format!("got {line:?}"))),
            }
            log.push(line);
        }
        log.push("closed".into());
        Ok(log)
    });
    Ok((port, peer))
}

fn driver_server(count: u32) -> Result<Vec<String>, String> {
    let mut driver = Driver::new(sockstate_driver::Config::default()).map_err(|e| e.to_string())?;
    let mut app = PingPong::server(ip(127, 0, 0, 1), 0);
    let mut peer = None;
    let ran = run_driver(&mut driver, &mut app, |app, driver| {
        if let (None, Some(port)) = (&peer, app.port(driver)) {
            peer = Some(thread::spawn(move || std_client(port, count)));
        }
        closed(app, driver)
    });
    let peer_log = peer.map(|p| p.join().map_err(|_| "the peer panicked"));
    ran?;
    match peer_log {
        Some(Ok(Ok(log))) if log == super::app::expected_client_log(count) => Ok(app.log),
        other => Err(format!("the std client logged {other:?}")),
    }
}

/// A PING/PONG client written with `std::net`, for the server app.
fn std_client(port: u16, count: u32) -> Result<Vec<String>, String> {
    let run = || -> std::io::Result<Vec<String>> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(DRIVER_LIMIT))?;
        let mut out = stream.try_clone()?;
        let mut lines = BufReader::new(stream).lines();
        let mut log = Vec::new();
        for n in 1..=count + 1 {
            match n <= count {
                true => out.write_all(format!("PING {n}\n").as_bytes())?,
                false => out.write_all(b"QUIT\n")?,
            }
            log.push(lines.next().ok_or(std::io::ErrorKind::UnexpectedEof)??);
        }
        // Then the server's FIN, and ours.
        log.extend(lines.collect::<Result<Vec<_>, _>>()?);
        log.push("closed".into());
        Ok(log)
    };
    run().map_err(|e| e.to_string())
}
