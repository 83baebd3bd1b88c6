//! The checker and one host of the simulated network as [`Sockets`], so that app code written
//! once against the trait runs under both (and on a `Core` by hand, and on a real driver).

use std::time::Instant;

use super::{CheckedCore, HostId, Sim, SimError};
use crate::{ApiError, Call, Core, Returned, Sockets};

/// A [`CheckedCore`] at one instant, as [`Sockets`]: what [`CheckedCore::at`] returns. Calls
/// are checked as [`CheckedCore::call`] checks them.
#[derive(Debug)]
pub struct CheckedAt<'a> {
    core: &'a mut CheckedCore,
    now: Instant,
}

impl CheckedCore {
    /// The checked core as [`Sockets`], its calls made (and checked) at `now`.
    ///
    /// ```
    /// use std::time::Instant;
    /// use sockstate::sim::CheckedCore;
    /// use sockstate::{Config, Core, Output, Sockets, TcpOptions};
    ///
    /// let mut core = CheckedCore::new(Core::new(Config::default()));
    /// let now = Instant::now();
    /// let id = core.at(now).tcp_open("127.0.0.1", 7, TcpOptions::default()).unwrap();
    /// assert!(core.at(now).tcp_send(id, "too early").is_err());
    /// while !matches!(core.poll_output(), Output::Timeout(_)) {}
    /// assert_eq!(core.violations(), []);
    /// ```
    pub fn at(&mut self, now: Instant) -> CheckedAt<'_> {
        CheckedAt { core: self, now }
    }
}

impl Sockets for CheckedAt<'_> {
    fn call(&mut self, call: Call) -> Result<Returned, ApiError> {
        self.core.call(self.now, &call)
    }
    fn core(&self) -> &Core {
        self.core.core()
    }
    fn now(&self) -> Instant {
        self.now
    }
}

/// One host of a [`Sim`], as [`Sockets`]: what [`Sim::host`] returns. Calls are made on the
/// virtual clock, checked and recorded in the transcript, as [`Sim::call`] makes them; on a
/// crashed host they fail (`InvalidStateError`) until it restarts.
#[derive(Debug)]
pub struct SimHost<'a> {
    sim: &'a mut Sim,
    host: HostId,
}

impl Sim {
    /// The host as [`Sockets`], for app code written against the trait.
    ///
    /// ```
    /// use sockstate::sim::{Peer, Sim};
    /// use sockstate::{Event, Sockets, TcpOptions};
    ///
    /// let mut sim = Sim::new(1);
    /// let client = sim.add_host("client", &["10.0.0.1".parse().unwrap()]).unwrap();
    /// sim.add_host("server", &["10.0.0.2".parse().unwrap()]).unwrap();
    /// sim.listen("10.0.0.2:7".parse().unwrap(), Peer::echo()).unwrap();
    /// let id = sim.host(client).unwrap().tcp_open("server", 7, TcpOptions::default()).unwrap();
    /// while let Some((host, event)) = sim.next_event() {
    ///     let mut net = sim.host(host).unwrap();
    ///     match event {
    ///         Event::Open { .. } => _ = net.tcp_send(id, "hi").unwrap(),
    ///         Event::Data { .. } => net.tcp_close(id).unwrap(),
    ///         _ => {}
    ///     }
    /// }
    /// assert_eq!(sim.violations(), []);
    /// ```
    pub fn host(&mut self, host: HostId) -> Result<SimHost<'_>, SimError> {
        if self.hosts.len() <= host.0 as usize {
            return Err(SimError::UnknownHost(host));
        }
        Ok(SimHost { sim: self, host })
    }
}

impl SimHost<'_> {
    /// Which host this is.
    pub fn id(&self) -> HostId {
        self.host
    }
}

impl Sockets for SimHost<'_> {
    fn call(&mut self, call: Call) -> Result<Returned, ApiError> {
        self.sim.call(self.host, call)
    }
    fn core(&self) -> &Core {
        // Hosts are never removed (a crash replaces the core), and `Sim::host` checked this one.
        self.sim.hosts[self.host.0 as usize].core.core()
    }
    fn now(&self) -> Instant {
        self.sim.instant()
    }
}
