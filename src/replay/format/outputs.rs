//! Outputs: a poll record holds the kind of what `poll_output` returned and a digest of it.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::{Encoder, POLL_KINDS, TAG_POLL};
use crate::id::SocketId;
use crate::io::{Action, ConnectOptions, Event, MulticastInterface, Output, SocketSettings};
use crate::payload::Data;

impl Encoder {
    /// One `poll_output` and what it returned (its kind and digest).
    #[inline]
    pub fn polled(&mut self, output: &Output) {
        let (kind, digest) = digest(output, self.epoch, self.kept, self.structural);
        self.steps += 1;
        self.out.push(TAG_POLL + kind);
        self.out.extend_from_slice(&digest.to_le_bytes());
    }
}

/// Bytes of a payload that enter its output's digest (with its length).
pub(super) const DIGEST_PREFIX: usize = 16;

/// A small, fixed hash over words (stable across builds and platforms: it is part of the
/// format).
pub(super) struct Hash(u64);

impl Hash {
    #[inline]
    pub(super) fn u(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    pub(super) fn id(&mut self, id: SocketId) {
        let (kind, serial) = match id {
            SocketId::TcpId(i) => (1, i.serial),
            SocketId::ServerId(i) => (2, i.serial),
            SocketId::UdpId(i) => (3, i.serial),
        };
        self.u(kind);
        self.u(serial);
    }
    pub(super) fn ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(ip) => self.u(u64::from(u32::from(ip))),
            IpAddr::V6(ip) => {
                let v = u128::from(ip);
                self.u(v as u64);
                self.u((v >> 64) as u64);
            }
        }
    }
    pub(super) fn addr(&mut self, addr: SocketAddr) {
        self.ip(addr.ip());
        self.u(u64::from(addr.port()));
    }
    pub(super) fn payload(&mut self, data: &[u8], kept: u64) {
        self.u(data.len() as u64);
        let n = data.len().min(DIGEST_PREFIX).min(kept as usize);
        for chunk in data[..n].chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.u(u64::from_le_bytes(word));
        }
    }
    pub(super) fn str(&mut self, s: &str) {
        self.u(s.len() as u64);
        for chunk in s.as_bytes().chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.u(u64::from_le_bytes(word));
        }
    }
    pub(super) fn settings(&mut self, s: &SocketSettings) {
        let SocketSettings {
            send_buffer,
            receive_buffer,
            ipv6_only,
            broadcast,
            multicast_ttl,
            multicast_interface,
        } = s;
        self.u(send_buffer.map_or(u64::MAX, u64::from));
        self.u(receive_buffer.map_or(u64::MAX, u64::from));
        self.u(u64::from(*ipv6_only) | u64::from(*broadcast) << 1);
        self.u(multicast_ttl.map_or(u64::MAX, u64::from));
        match multicast_interface {
            None => self.u(u64::MAX),
            Some(MulticastInterface::V4(ip)) => self.u(u64::from(u32::from(*ip))),
            Some(MulticastInterface::V6(index)) => self.u(u64::from(*index) | 1 << 32),
        }
    }
    pub(super) fn finish(&self) -> u32 {
        (self.0 ^ (self.0 >> 32)) as u32
    }
}

/// The names of the output kinds of poll records, by kind.
pub(crate) fn kind_name(kind: u8) -> &'static str {
    const NAMES: [&str; 23] = [
        "Action::Resolve",
        "Action::Connect",
        "Action::AbortConnect",
        "Action::SetReading",
        "Action::Write",
        "Action::Shutdown",
        "Action::QueryUnacked",
        "Action::Release",
        "Action::Listen",
        "Action::Bind",
        "Action::SendTo (version 2)",
        "Action::JoinMulticast",
        "Action::LeaveMulticast",
        "Event::Open",
        "Event::Data",
        "Event::Drain",
        "Event::Connect",
        "Event::HalfClose",
        "Event::Error",
        "Event::Close",
        "Event::Message",
        "Timeout",
        "Action::SendDatagrams",
    ];
    NAMES.get(kind as usize).copied().unwrap_or("?")
}

/// An output's kind ([`kind_name`]) and its digest: the kind, the ids, addresses, flags,
/// deadlines (relative to `epoch`), error codes and messages, and of each payload its length
/// and first bytes (at most 16, at most `kept`). `structural`: text is digested by nothing but
/// its socket (its length depends on bytes the recording did not keep).
pub(crate) fn digest(output: &Output, epoch: Instant, kept: u64, structural: bool) -> (u8, u32) {
    let mut h = Hash(0);
    let kind = match output {
        Output::Action(action) => match action {
            Action::Resolve { id, name } => {
                h.id(*id);
                h.str(name.as_str());
                0
            }
            Action::Connect {
                id,
                attempt,
                remote,
                options,
            } => {
                let ConnectOptions {
                    local,
                    no_delay,
                    keep_alive,
                    settings,
                } = &**options;
                h.settings(settings);
                h.id((*id).into());
                h.u(u64::from(*attempt));
                h.addr(*remote);
                if let Some(local) = local {
                    h.addr(*local);
                }
                h.u(u64::from(*no_delay));
                h.u(keep_alive.map_or(u64::MAX, |d| d.as_nanos() as u64));
                1
            }
            Action::AbortConnect { id, attempt } => {
                h.id((*id).into());
                h.u(u64::from(*attempt));
                2
            }
            Action::SetReading { id, enabled } => {
                h.id(*id);
                h.u(u64::from(*enabled));
                3
            }
            Action::Write { id, data } => {
                h.id((*id).into());
                h.payload(data, kept);
                4
            }
            Action::Shutdown { id } => {
                h.id((*id).into());
                5
            }
            Action::QueryUnacked { id } => {
                h.id((*id).into());
                6
            }
            Action::Release { id } => {
                h.id(*id);
                7
            }
            Action::Listen {
                id,
                local,
                backlog,
                reuse_address,
                settings,
            } => {
                h.settings(settings);
                h.id((*id).into());
                h.addr(*local);
                h.u(u64::from(*backlog));
                h.u(u64::from(*reuse_address));
                8
            }
            Action::Bind {
                id,
                local,
                reuse_address,
                loopback,
                settings,
            } => {
                h.settings(settings);
                h.id((*id).into());
                h.addr(*local);
                h.u(u64::from(*reuse_address));
                h.u(u64::from(*loopback));
                9
            }
            Action::SendDatagrams { id, datagrams } => {
                h.id((*id).into());
                h.u(datagrams.len() as u64);
                for (data, remote) in datagrams {
                    h.addr(*remote);
                    h.payload(data, kept);
                }
                22
            }
            Action::JoinMulticast { id, group, source } => {
                h.id((*id).into());
                h.ip(*group);
                if let Some(source) = source {
                    h.ip(*source);
                }
                11
            }
            Action::LeaveMulticast { id, group, source } => {
                h.id((*id).into());
                h.ip(*group);
                if let Some(source) = source {
                    h.ip(*source);
                }
                12
            }
        },
        Output::Event(event) => match event {
            Event::Open { id } => {
                h.id(*id);
                13
            }
            Event::Data { id, data } => {
                h.id((*id).into());
                match data {
                    Data::Bytes(b) => h.payload(b, kept),
                    Data::Text(t) if !structural => h.payload(t.as_bytes(), kept),
                    Data::Text(_) => {}
                }
                14
            }
            Event::Drain { id } => {
                h.id(*id);
                15
            }
            Event::Connect { server, socket } => {
                h.id((*server).into());
                h.id((*socket).into());
                16
            }
            Event::HalfClose { id } => {
                h.id((*id).into());
                17
            }
            Event::Error { id, error } => {
                h.id(*id);
                h.str(error.code.name());
                h.str(&error.message);
                18
            }
            Event::Close { id } => {
                h.id(*id);
                19
            }
            Event::Message { id, data, remote } => {
                h.id((*id).into());
                h.addr(*remote);
                h.payload(data, kept);
                20
            }
        },
        Output::Timeout(at) => {
            match at {
                None => h.u(u64::MAX),
                Some(at) => match at.checked_duration_since(epoch) {
                    Some(d) => h.u(d.as_nanos() as u64),
                    None => h.u((epoch - *at).as_nanos() as u64 ^ (1 << 63)),
                },
            }
            21
        }
    };
    debug_assert!(kind < POLL_KINDS);
    (kind, h.finish())
}
