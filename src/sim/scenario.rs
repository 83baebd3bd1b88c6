//! Scenarios: the network settings, faults at virtual times and app timings of one [`Sim`] run
//! as one value, which the feature `arbitrary` lets a fuzzer generate (bounded, so that every
//! run stays short). Applied by a [`ScenarioRun`] as the run proceeds.
//!
//! The recipe for fuzzing a protocol of your own with them is in [`Scenario`]'s docs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{ConnId, HostId, Link, Sim, Stop};
use crate::{DnsName, Event, ResolveError};

#[cfg(feature = "arbitrary")]
mod generate;

crate::options_struct! {
    /// What happens to the network during one [`Sim`] run: the links between hosts, faults at
    /// virtual times, timings for the app to use, and the seed. Hosts are named by their
    /// index in the list given to [`Scenario::start`] (taken modulo its length), so one
    /// scenario fits any set of hosts; connections by how recent they are.
    ///
    /// With the feature `arbitrary` a fuzzer generates scenarios (its `Arbitrary` keeps every
    /// count and time under the caps below, whatever the bytes), alone or inside an input type
    /// of your own with `#[derive(Arbitrary)]`. The checker of every host
    /// ([`CheckedCore`](super::CheckedCore), [`Sim::violations`]) is then the oracle, with
    /// your app's own invariants. The recipe, step by step:
    #[doc = include_str!("fuzzing.md")]
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Scenario {
        /// The simulator's seed (pass it to [`Sim::new`] or [`Sim::with_config`]).
        pub seed: u64,
        /// Links set before the app starts, in order (a later rule for the same two hosts
        /// wins).
        pub links: Vec<LinkRule>,
        /// Faults, each at a virtual time from the start of the run (applied in time order;
        /// equal times in list order).
        pub faults: Vec<Timed>,
        /// Durations for the app to use as it likes (think times, request spacing, timeouts):
        /// see [`Scenario::timing`].
        pub timings: Vec<Duration>,
        /// How long after the last fault every lasting fault the run made is undone (see
        /// [`ScenarioRun`]), so that the app can finish.
        pub heal_after: Duration,
    }
}

/// The link between two of a [`Scenario`]'s hosts (both directions; `a == b` is the link
/// between one host's own addresses).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkRule {
    /// One host (an index into the scenario's hosts).
    pub a: usize,
    /// The other host.
    pub b: usize,
    /// The link.
    pub link: Link,
}

/// A fault and when it happens.
#[derive(Clone, Debug, PartialEq)]
pub struct Timed {
    /// Virtual time from the start of the run.
    pub at: Duration,
    /// What happens.
    pub fault: Fault,
}

/// A fault of a [`Scenario`]. Hosts are indices into the scenario's hosts; `conn` counts back
/// from the newest connection of the whole network (0: the newest) at the time of the fault,
/// taken modulo their number (nothing happens while there is none).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// [`Sim::reset`]: a reset in the network, in any state of the connection.
    Reset {
        /// Which connection.
        conn: usize,
    },
    /// [`Sim::fail`]: the OS fails the connection's core ends with `error`.
    Fail {
        /// Which connection.
        conn: usize,
        /// The OS error.
        error: io::ErrorKind,
    },
    /// [`Sim::silence`]: the connection goes silent for good (not undone: the app's timers
    /// decide).
    Silence {
        /// Which connection.
        conn: usize,
    },
    /// [`Sim::partition`] (or [`Sim::partition_oneway`] from `a` to `b`).
    Partition {
        /// One host.
        a: usize,
        /// The other.
        b: usize,
        /// Only what `a` sends to `b` is cut.
        oneway: bool,
    },
    /// [`Sim::repair`]: undoes partitions between the two, both ways.
    Repair {
        /// One host.
        a: usize,
        /// The other.
        b: usize,
    },
    /// [`Sim::hold`] (or [`Sim::hold_oneway`] from `a` to `b`).
    Hold {
        /// One host.
        a: usize,
        /// The other.
        b: usize,
        /// Only what `a` sends to `b` waits.
        oneway: bool,
    },
    /// [`Sim::release`]: undoes holds between the two, both ways.
    Release {
        /// One host.
        a: usize,
        /// The other.
        b: usize,
    },
    /// [`Sim::crash`] (a host already down stays down): [`Step::Crashed`] tells the app.
    Crash {
        /// Which host.
        host: usize,
    },
    /// [`Sim::restart`] of a host this run crashed: [`Step::Restarted`] tells the app.
    Restart {
        /// Which host.
        host: usize,
    },
    /// [`Sim::black_hole`] on every address of the host.
    BlackHole {
        /// Which host.
        host: usize,
    },
    /// [`Sim::heal`] every address of the host (black holes and refusals).
    Heal {
        /// Which host.
        host: usize,
    },
    /// [`Sim::refuse`] connections to one of the addresses listening now (scripted peers'
    /// and cores' servers, in address order; `listener` taken modulo their number), until
    /// healed.
    Refuse {
        /// Which listening address.
        listener: usize,
    },
    /// [`Sim::dns_fail`] for the host's name.
    DnsFail {
        /// Which host.
        host: usize,
        /// How resolving fails.
        why: ResolveError,
    },
    /// Undoes [`Fault::DnsFail`]: the host's name resolves as before.
    DnsRestore {
        /// Which host.
        host: usize,
    },
}

/// What a [`ScenarioRun`] hands the app next.
#[derive(Debug)]
#[non_exhaustive]
pub enum Step {
    /// An event of a host's core, as [`Sim::next_event`] gives it.
    Event {
        /// The host.
        host: HostId,
        /// The event.
        event: Event,
    },
    /// A wake-up the app asked for with [`ScenarioRun::wake_at`], now due.
    Wake {
        /// The host it was asked for.
        host: HostId,
        /// The app's token.
        token: u64,
    },
    /// The host crashed: its core, sockets and pending wake-ups are gone, no `Close` comes
    /// for them; its calls fail until it restarts.
    Crashed {
        /// The host.
        host: HostId,
    },
    /// The host is back with a fresh core and no sockets (listen again).
    Restarted {
        /// The host.
        host: HostId,
    },
}

impl Scenario {
    /// The most [`links`](Scenario::links) a generated scenario has.
    pub const MAX_LINKS: usize = 8;
    /// The most [`faults`](Scenario::faults) a generated scenario has.
    pub const MAX_FAULTS: usize = 16;
    /// The latest a generated fault happens.
    pub const MAX_FAULT_AT: Duration = Duration::from_secs(60);
    /// The most [`timings`](Scenario::timings) a generated scenario has.
    pub const MAX_TIMINGS: usize = 16;
    /// The longest generated timing.
    pub const MAX_TIMING: Duration = Duration::from_secs(10);
    /// The longest generated [`heal_after`](Scenario::heal_after).
    pub const MAX_HEAL_AFTER: Duration = Duration::from_secs(60);

    /// The `i`th timing, cycling through [`timings`](Scenario::timings); zero when there is
    /// none.
    pub fn timing(&self, i: usize) -> Duration {
        match self.timings.len() {
            0 => Duration::ZERO,
            n => self.timings[i % n],
        }
    }

    /// When every lasting fault is undone, from the start of the run: `heal_after` past the
    /// last fault (`None` without faults).
    pub fn heal_at(&self) -> Option<Duration> {
        let last = self.faults.iter().map(|t| t.at).max()?;
        Some(last.saturating_add(self.heal_after))
    }

    /// Starts applying the scenario to `sim` with these hosts (the scenario's host indices
    /// name them): the links are set now, so call it before the app's first call (a
    /// connection keeps the link it was made with); the faults come as the returned run
    /// proceeds.
    pub fn start(&self, sim: &mut Sim, hosts: &[HostId]) -> ScenarioRun {
        if !hosts.is_empty() {
            for rule in &self.links {
                let (a, b) = (hosts[rule.a % hosts.len()], hosts[rule.b % hosts.len()]);
                sim.set_link(a, b, rule.link.clone());
            }
        }
        let base = sim.now();
        let mut faults: Vec<Timed> = self.faults.clone();
        faults.sort_by_key(|t| t.at); // stable: equal times keep their order
        ScenarioRun {
            hosts: hosts.to_vec(),
            faults: faults
                .into_iter()
                .map(|t| (base.saturating_add(t.at), t.fault))
                .collect(),
            heal_at: self.heal_at().map(|at| base.saturating_add(at)),
            lasting: Lasting::default(),
            wakes: BTreeMap::new(),
            seq: 0,
            pending: VecDeque::new(),
            steps: 0,
            stop: None,
            done: false,
        }
    }
}

/// Lasting faults a run made, to be undone when it heals.
#[derive(Debug, Default)]
struct Lasting {
    partitions: BTreeSet<(HostId, HostId)>,
    holds: BTreeSet<(HostId, HostId)>,
    /// Black-holed or refusing addresses (one [`Sim::heal`] undoes both).
    addresses: BTreeSet<IpAddr>,
    crashed: BTreeSet<HostId>,
    /// Names whose resolution failed, with what they resolved to before.
    names: BTreeMap<String, Option<Result<Vec<IpAddr>, ResolveError>>>,
}

/// A [`Scenario`] being applied to a [`Sim`]: the app's loop takes [`Step`]s from it
/// ([`ScenarioRun::next`]) instead of events from the sim, and the run applies each fault when
/// the virtual clock reaches its time, then, [`Scenario::heal_after`] past the last one,
/// undoes every lasting fault it made (repairs, releases, heals, restarts crashed hosts,
/// restores names; a silenced connection stays silent).
///
/// It also keeps the app's own timers ([`ScenarioRun::wake_at`]), which die with their host.
/// It ends when nothing more can happen, or at the sim's time or step limit
/// ([`ScenarioRun::stopped`]).
#[derive(Debug)]
pub struct ScenarioRun {
    hosts: Vec<HostId>,
    faults: VecDeque<(Duration, Fault)>,
    heal_at: Option<Duration>,
    lasting: Lasting,
    /// (when, order) -> (host, token).
    wakes: BTreeMap<(Duration, u64), (HostId, u64)>,
    seq: u64,
    pending: VecDeque<Step>,
    steps: u64,
    stop: Option<Stop>,
    done: bool,
}

impl ScenarioRun {
    /// The hosts the scenario's indices name.
    pub fn hosts(&self) -> &[HostId] {
        &self.hosts
    }

    /// Asks for [`Step::Wake`] with `token` for `host` once the virtual clock reads `at` (from
    /// the start of the sim), or at once if it is past. Dropped if the host crashes first.
    pub fn wake_at(&mut self, host: HostId, at: Duration, token: u64) {
        self.seq += 1;
        self.wakes.insert((at, self.seq), (host, token));
    }

    /// [`wake_at`](ScenarioRun::wake_at) `after` from now.
    pub fn wake_after(&mut self, sim: &Sim, host: HostId, after: Duration, token: u64) {
        self.wake_at(host, sim.now().saturating_add(after), token);
    }

    /// Whether any fault of the scenario is still to come, or its healing.
    pub fn faults_pending(&self) -> bool {
        !self.faults.is_empty() || self.heal_at.is_some()
    }

    /// Why the run stopped early: the sim's limit, or the run's own at the same limits (the
    /// clock would pass [`SimConfig::time_limit`](super::SimConfig::time_limit) for a fault or
    /// wake-up, or [`SimConfig::step_limit`](super::SimConfig::step_limit) steps were
    /// handed out).
    pub fn stopped(&self) -> Option<Stop> {
        self.stop
    }

    /// The next step: the next event of any host, or a due wake-up, crash or restart, applying
    /// the faults that fall due on the way. `None` when nothing more can happen (or a limit
    /// stopped the run).
    #[allow(clippy::should_implement_trait)] // it takes the sim, so it is no Iterator
    pub fn next(&mut self, sim: &mut Sim) -> Option<Step> {
        loop {
            if self.done {
                return None;
            }
            if let Some(step) = self.pending.pop_front() {
                return self.hand_out(sim, step);
            }
            let fault = self.faults.front().map(|(at, _)| *at);
            let heal = self.heal_at.filter(|_| fault.is_none());
            let wake = self.wakes.keys().next().map(|(at, _)| *at);
            let due = [fault, heal, wake].into_iter().flatten().min();
            let Some(due) = due else {
                return match sim.next_event() {
                    Some((host, event)) => self.hand_out(sim, Step::Event { host, event }),
                    None => self.end(sim.stopped()),
                };
            };
            if due > sim.config().time_limit {
                // As the sim would stop on its own clock.
                if let Some((host, event)) = sim.next_event() {
                    return self.hand_out(sim, Step::Event { host, event });
                }
                return self.end(sim.stopped().or(Some(Stop::TimeLimit)));
            }
            let now = sim.now();
            if due > now {
                if let Some((host, event)) = sim.next_event_within(due - now) {
                    return self.hand_out(sim, Step::Event { host, event });
                }
                if sim.stopped().is_some() || sim.now() < due {
                    return self.end(sim.stopped());
                }
            }
            self.fall_due(sim, due);
        }
    }

    /// Runs the app's `step` on every step until the run ends; returns why it stopped early,
    /// if it did (as [`stopped`](ScenarioRun::stopped)).
    pub fn drive(
        mut self,
        sim: &mut Sim,
        mut step: impl FnMut(&mut Sim, &mut ScenarioRun, Step),
    ) -> Option<Stop> {
        while let Some(s) = self.next(sim) {
            step(sim, &mut self, s);
        }
        self.stop
    }

    fn hand_out(&mut self, sim: &Sim, step: Step) -> Option<Step> {
        self.steps += 1;
        if self.steps > sim.config().step_limit {
            return self.end(Some(Stop::StepLimit));
        }
        Some(step)
    }

    fn end(&mut self, stop: Option<Stop>) -> Option<Step> {
        self.done = true;
        self.stop = stop;
        None
    }

    /// Applies what is due at `at` (the clock reads it): faults, then the healing, then
    /// wake-ups.
    fn fall_due(&mut self, sim: &mut Sim, at: Duration) {
        while self.faults.front().is_some_and(|(t, _)| *t <= at) {
            if let Some((_, fault)) = self.faults.pop_front() {
                self.apply(sim, &fault);
            }
        }
        if self.faults.is_empty() && self.heal_at.is_some_and(|h| h <= at) {
            self.heal_at = None;
            self.heal(sim);
        }
        while let Some(entry) = self.wakes.first_entry() {
            if entry.key().0 > at {
                break;
            }
            let (host, token) = entry.remove();
            self.pending.push_back(Step::Wake { host, token });
        }
    }

    fn host(&self, i: usize) -> Option<HostId> {
        (!self.hosts.is_empty()).then(|| self.hosts[i % self.hosts.len()])
    }

    /// The `n`th connection counting back from the newest.
    fn conn(sim: &Sim, n: usize) -> Option<ConnId> {
        let all: Vec<ConnId> = sim.conns().collect();
        (!all.is_empty()).then(|| all[all.len() - 1 - n % all.len()])
    }

    /// Applies one fault now.
    fn apply(&mut self, sim: &mut Sim, fault: &Fault) {
        sim.note(None, format!("scenario: {fault:?}"));
        let pair = |run: &Self, a: usize, b: usize| Some((run.host(a)?, run.host(b)?));
        match *fault {
            Fault::Reset { conn } => {
                if let Some(c) = Self::conn(sim, conn) {
                    let _ = sim.reset(c);
                }
            }
            Fault::Fail { conn, error } => {
                if let Some(c) = Self::conn(sim, conn) {
                    let _ = sim.fail(c, error);
                }
            }
            Fault::Silence { conn } => {
                if let Some(c) = Self::conn(sim, conn) {
                    let _ = sim.silence(c);
                }
            }
            Fault::Partition { a, b, oneway } => {
                if let Some((a, b)) = pair(self, a, b) {
                    sim.partition_oneway(a, b);
                    self.lasting.partitions.insert((a, b));
                    if !oneway {
                        sim.partition_oneway(b, a);
                        self.lasting.partitions.insert((b, a));
                    }
                }
            }
            Fault::Repair { a, b } => {
                if let Some((a, b)) = pair(self, a, b) {
                    sim.repair(a, b);
                    self.lasting.partitions.remove(&(a, b));
                    self.lasting.partitions.remove(&(b, a));
                }
            }
            Fault::Hold { a, b, oneway } => {
                if let Some((a, b)) = pair(self, a, b) {
                    sim.hold_oneway(a, b);
                    self.lasting.holds.insert((a, b));
                    if !oneway {
                        sim.hold_oneway(b, a);
                        self.lasting.holds.insert((b, a));
                    }
                }
            }
            Fault::Release { a, b } => {
                if let Some((a, b)) = pair(self, a, b) {
                    sim.release(a, b);
                    self.lasting.holds.remove(&(a, b));
                    self.lasting.holds.remove(&(b, a));
                }
            }
            Fault::Crash { host } => {
                let Some(h) = self.host(host) else { return };
                if !self.lasting.crashed.contains(&h) && sim.crash(h).is_ok() {
                    self.lasting.crashed.insert(h);
                    self.wakes.retain(|_, (w, _)| *w != h);
                    self.pending
                        .retain(|s| !matches!(s, Step::Wake { host, .. } if *host == h));
                    self.pending.push_back(Step::Crashed { host: h });
                }
            }
            Fault::Restart { host } => {
                if let Some(h) = self.host(host) {
                    self.restart(sim, h);
                }
            }
            Fault::BlackHole { host } => {
                for ip in self.host(host).map(|h| sim.host_ips(h)).unwrap_or_default() {
                    sim.black_hole(ip);
                    self.lasting.addresses.insert(ip);
                }
            }
            Fault::Heal { host } => {
                for ip in self.host(host).map(|h| sim.host_ips(h)).unwrap_or_default() {
                    sim.heal(ip);
                    self.lasting.addresses.remove(&ip);
                }
            }
            Fault::Refuse { listener } => {
                let all = sim.listening();
                if !all.is_empty() {
                    let addr = all[listener % all.len()];
                    sim.refuse(addr);
                    self.lasting.addresses.insert(addr.ip());
                }
            }
            Fault::DnsFail { host, why } => {
                let Some(name) = self.host(host).and_then(|h| sim.host_name(h)) else {
                    return;
                };
                let name = name.to_owned();
                let Some(key) = dns_key(&name) else { return };
                let before = sim.dns.get(&key).cloned();
                self.lasting.names.entry(key).or_insert(before);
                let _ = sim.dns_fail(&name, why);
            }
            Fault::DnsRestore { host } => {
                let Some(name) = self.host(host).and_then(|h| sim.host_name(h)) else {
                    return;
                };
                if let Some(key) = dns_key(name) {
                    if let Some(before) = self.lasting.names.remove(&key) {
                        restore_name(sim, key, before);
                    }
                }
            }
        }
    }

    fn restart(&mut self, sim: &mut Sim, h: HostId) {
        if self.lasting.crashed.remove(&h) && sim.restart(h).is_ok() {
            self.pending.push_back(Step::Restarted { host: h });
        }
    }

    /// Undoes every lasting fault this run made.
    fn heal(&mut self, sim: &mut Sim) {
        sim.note(None, "scenario: heal everything".into());
        let lasting = std::mem::take(&mut self.lasting);
        for (a, b) in lasting.partitions {
            sim.repair_oneway(a, b);
        }
        for (a, b) in lasting.holds {
            sim.release_oneway(a, b);
        }
        for ip in lasting.addresses {
            sim.heal(ip);
        }
        for (key, before) in lasting.names {
            restore_name(sim, key, before);
        }
        self.lasting.crashed = lasting.crashed.clone();
        for h in lasting.crashed {
            self.restart(sim, h);
        }
    }
}

/// The name table's key for `name`.
fn dns_key(name: &str) -> Option<String> {
    Some(DnsName::new(name).ok()?.as_str().to_ascii_lowercase())
}

fn restore_name(sim: &mut Sim, key: String, before: Option<Result<Vec<IpAddr>, ResolveError>>) {
    match before {
        Some(answer) => {
            sim.dns.insert(key, answer);
        }
        None => {
            sim.dns.remove(&key);
        }
    }
}

impl Sim {
    /// The addresses of a host.
    fn host_ips(&self, host: HostId) -> Vec<IpAddr> {
        self.hosts
            .get(host.0 as usize)
            .map(|h| h.ips.clone())
            .unwrap_or_default()
    }

    /// Every address listening now: scripted peers' and cores' servers (a server on an
    /// unspecified address listens on each of its host's addresses of that family), in order.
    fn listening(&self) -> Vec<SocketAddr> {
        let mut all: BTreeSet<SocketAddr> = self.listeners.keys().copied().collect();
        for h in &self.hosts {
            for s in h.servers.values() {
                if s.local.ip().is_unspecified() {
                    let family = h.ips.iter().filter(|ip| ip.is_ipv4() == s.local.is_ipv4());
                    all.extend(family.map(|ip| SocketAddr::new(*ip, s.local.port())));
                } else {
                    all.insert(s.local);
                }
            }
        }
        all.into_iter().collect()
    }
}
