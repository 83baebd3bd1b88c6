//! The simulated network's hosts, their names and addresses, scripted listeners, and the
//! links between hosts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use super::{CheckedCore, Host, HostId, Link, Peer, Sim, SimError};
use crate::{Core, DnsName, ResolveError};

impl Sim {
    /// Adds a host running a core made from [`SimConfig::core`](super::SimConfig::core).
    /// `name` resolves to `ips`.
    pub fn add_host(&mut self, name: &str, ips: &[IpAddr]) -> Result<HostId, SimError> {
        let core = Core::new(self.cfg.core.clone());
        self.add_host_with(name, ips, core)
    }

    /// Adds a host running `core` (which must have no socket yet to be checked), e.g. one made
    /// with [`Core::with_policy`]. `name` resolves to `ips`.
    pub fn add_host_with(
        &mut self,
        name: &str,
        ips: &[IpAddr],
        core: Core,
    ) -> Result<HostId, SimError> {
        for ip in ips {
            if self.host_of(*ip).is_some() {
                return Err(SimError::AddressTaken(*ip));
            }
        }
        self.dns(name, ips)?;
        let mut core = CheckedCore::new(core);
        if !self.cfg.check {
            core.core_mut();
        }
        let id = HostId(self.hosts.len() as u32);
        self.hosts.push(Host {
            name: name.to_owned(),
            ips: ips.to_vec(),
            core,
            deadline: None,
            dirty: false,
            socks: BTreeMap::new(),
            servers: BTreeMap::new(),
            udps: BTreeMap::new(),
            udp_resolving: BTreeSet::new(),
            opening: BTreeSet::new(),
            next_port: *self.cfg.ephemeral_ports.start(),
            rcvbuf_errors: 0,
            down: false,
        });
        Ok(id)
    }

    /// The host's name.
    pub fn host_name(&self, host: HostId) -> Option<&str> {
        self.hosts.get(host.0 as usize).map(|h| h.name.as_str())
    }

    /// The host that has `ip`.
    pub fn host_of(&self, ip: IpAddr) -> Option<HostId> {
        self.hosts
            .iter()
            .position(|h| h.ips.contains(&ip))
            .map(|i| HostId(i as u32))
    }

    /// The host's core (checked), for reading attributes.
    pub fn core(&self, host: HostId) -> Option<&Core> {
        self.hosts.get(host.0 as usize).map(|h| h.core.core())
    }

    /// The host's core, for calls the simulator does not see: from now on its invariants are
    /// not checked. Prefer [`Sim::call`].
    pub fn core_mut(&mut self, host: HostId) -> Option<&mut Core> {
        let h = self.hosts.get_mut(host.0 as usize)?;
        h.dirty = true;
        Some(h.core.core_mut())
    }

    /// Records from now on what reaches `host`'s core (call it right after adding the host):
    /// [`recording`](Sim::recording) then replays on a fresh core with
    /// [`replay::Replay`](crate::replay::Replay), e.g. to debug a failing run step by step.
    pub fn record_host(&mut self, host: HostId) {
        let start = self.start;
        if let Some(h) = self.hosts.get_mut(host.0 as usize) {
            h.core.record(start);
        }
    }

    /// `host`'s recording so far (see [`record_host`](Sim::record_host)).
    pub fn recording(&self, host: HostId) -> Option<Vec<u8>> {
        self.hosts.get(host.0 as usize)?.core.recording()
    }

    /// The host's checked core, for its [`Outcome`](super::Outcome)s and streams.
    pub fn checked(&self, host: HostId) -> Option<&CheckedCore> {
        self.hosts.get(host.0 as usize).map(|h| &h.core)
    }

    /// Makes `name` resolve to `ips` (in this order), replacing what it resolved to.
    pub fn dns(&mut self, name: &str, ips: &[IpAddr]) -> Result<(), SimError> {
        self.dns_answer(name, Ok(ips.to_vec()))
    }

    /// Makes resolving `name` fail with `why` (a name never entered fails with `NotFound`).
    pub fn dns_fail(&mut self, name: &str, why: ResolveError) -> Result<(), SimError> {
        self.dns_answer(name, Err(why))
    }

    fn dns_answer(
        &mut self,
        name: &str,
        answer: Result<Vec<IpAddr>, ResolveError>,
    ) -> Result<(), SimError> {
        let key = DnsName::new(name)
            .map_err(|_| SimError::BadName(name.to_owned()))?
            .as_str()
            .to_ascii_lowercase();
        self.dns.insert(key, answer);
        Ok(())
    }

    /// Runs `peer` on every connection accepted at `addr`, an address of a host.
    pub fn listen(&mut self, addr: SocketAddr, peer: Peer) -> Result<(), SimError> {
        if addr.port() == 0 {
            return Err(SimError::PortZero);
        }
        if self.host_of(addr.ip()).is_none() {
            return Err(SimError::NoSuchAddress(addr.ip()));
        }
        if self.listeners.contains_key(&addr) {
            return Err(SimError::AddressInUse(addr));
        }
        self.listeners.insert(addr, peer);
        Ok(())
    }

    /// Stops listening at `addr` (connections already accepted go on).
    pub fn unlisten(&mut self, addr: SocketAddr) {
        self.listeners.remove(&addr);
    }

    /// Turns [`SimConfig::udp_batches`] on or off, before any datagram is sent (the fuzz
    /// targets draw it from their case).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn set_udp_batches(&mut self, on: bool) {
        self.cfg.udp_batches = on;
    }

    /// The link between `a` and `b` (both directions) from now on; connections already made
    /// keep theirs.
    pub fn set_link(&mut self, a: HostId, b: HostId, link: Link) {
        self.links.insert((a.min(b), a.max(b)), link);
    }

    pub(super) fn link(&self, a: HostId, b: HostId) -> Link {
        self.links
            .get(&(a.min(b), a.max(b)))
            .unwrap_or(&self.cfg.link)
            .clone()
    }
}
