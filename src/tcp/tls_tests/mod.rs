//! TLS through the core with no sockets: our socket against a rustls peer driven by hand
//! ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) TLS rules, §4 Security* names).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::testkit::tls::{client_config_with, server_config, server_config_with, Ca, Peer};
use crate::testkit::*;
use crate::*;

/// Both ends of the wire between our socket and the peer, and what crossed it.
#[derive(Default)]
pub(super) struct Link {
    /// Bytes our socket writes that the peer reads as plaintext before its TLS starts
    /// (a STARTTLS server reading the command).
    pub(super) peer_plain_first: usize,
    pub(super) peer_plain: Vec<u8>,
    pub(super) peer_error: Option<rustls::Error>,
    /// Every write of ours, in order.
    pub(super) wire: Vec<u8>,
    /// Ciphertext (or plaintext) on its way to us.
    pub(super) to_us: VecDeque<u8>,
    /// Largest read handed to the core.
    pub(super) chunk: usize,
    pub(super) reading: bool,
    pub(super) fin_from_us: bool,
    pub(super) released: bool,
    pub(super) events: Vec<Event>,
    pub(super) buffered_at_drain: Vec<usize>,
}

impl Link {
    fn new() -> Link {
        Link {
            chunk: 16 << 10,
            ..Link::default()
        }
    }

    /// Plays the network until neither side has anything more to say.
    pub(super) fn run(&mut self, h: &mut Harness, id: TcpId, peer: &mut Peer, outs: Vec<Output>) {
        let mut pending: VecDeque<Output> = outs.into();
        for _ in 0..1_000_000 {
            while let Some(out) = pending.pop_front() {
                match out {
                    Output::Action(Action::Write { id: w, data }) if w == id => {
                        self.wire.extend_from_slice(&data);
                        let plain = self.peer_plain_first.min(data.len());
                        self.peer_plain_first -= plain;
                        self.peer_plain.extend_from_slice(&data[..plain]);
                        if self.peer_error.is_none() {
                            self.peer_error = peer.feed(&data[plain..]).err();
                        }
                        pending.extend(h.input(Input::Written {
                            id,
                            len: data.len(),
                        }));
                    }
                    Output::Action(Action::SetReading { enabled, .. }) => self.reading = enabled,
                    Output::Action(Action::Shutdown { .. }) => self.fin_from_us = true,
                    // The link delivers every write at once: the peer's TCP has it all.
                    Output::Action(Action::QueryUnacked { id }) => {
                        pending.extend(h.input(unacked(id, 0)));
                    }
                    Output::Action(Action::Release { .. }) => self.released = true,
                    Output::Action(other) => panic!("unexpected action {other:?}"),
                    Output::Event(event) => {
                        if let Event::Drain { .. } = event {
                            self.buffered_at_drain.push(buffered(h, id));
                        }
                        self.events.push(event);
                    }
                    Output::Timeout(_) => unreachable!(),
                }
            }
            // After its own error the peer still sends its alert.
            self.to_us.extend(peer.take());
            if self.reading && !self.released && !self.to_us.is_empty() {
                let n = self.chunk.min(self.to_us.len());
                let data: Vec<u8> = self.to_us.drain(..n).collect();
                pending.extend(h.input(Input::Received {
                    id,
                    data: data.into(),
                }));
                continue;
            }
            return;
        }
        panic!("the link did not settle");
    }

    /// The data events' bytes.
    pub(super) fn data(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.events {
            if let Event::Data { data, .. } = e {
                out.extend_from_slice(data.as_bytes());
            }
        }
        out
    }

    pub(super) fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

pub(super) fn buffered(h: &Harness, id: TcpId) -> usize {
    h.core.tcp(id).map_or(0, |s| s.buffered_amount())
}

pub(super) fn state(h: &Harness, id: TcpId) -> ReadyState {
    h.core.tcp(id).expect("live socket").ready_state()
}

fn ev_error(id: TcpId, code: ErrorCode) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Error { id: i, error } if *i == SocketId::from(id) && error.code == code)
}

/// Opens `host` (resolved to 127.0.0.1) and connects; returns the outputs after `Connected`.
pub(super) fn connect(h: &mut Harness, host: &str, options: TcpOptions) -> (TcpId, Vec<Output>) {
    let id = h.core.tcp_open(h.now, host, 443, options).unwrap();
    let out = h.drain();
    let attempt = match &out[..] {
        [Output::Action(Action::Resolve { .. })] => {
            let result = Ok(vec!["127.0.0.1".parse().unwrap()]);
            match &h.input(Input::Resolved {
                id: id.into(),
                result,
            })[..]
            {
                [Output::Action(Action::Connect { attempt, .. })] => *attempt,
                other => panic!("{other:?}"),
            }
        }
        [Output::Action(Action::Connect { attempt, .. })] => *attempt,
        other => panic!("{other:?}"),
    };
    let out = h.input(Input::Connected {
        id,
        attempt,
        local: addr("127.0.0.1:40000"),
    });
    (id, out)
}

pub(super) fn secure(config: std::sync::Arc<crate::tls::ClientConfig>) -> TcpOptions {
    TcpOptions {
        use_secure_transport: true,
        tls_config: Some(config),
        ..TcpOptions::default()
    }
}

/// A secure socket to "localhost", open, with its peer and link.
pub(super) fn secure_open(h: &mut Harness) -> (TcpId, Peer, Link) {
    secure_open_as(h, BinaryType::String)
}

fn secure_open_as(h: &mut Harness, binary_type: BinaryType) -> (TcpId, Peer, Link) {
    let ca = Ca::new("test CA");
    let mut peer = Peer::server(server_config(ca.leaf(&["localhost"], 2035)));
    let options = TcpOptions {
        binary_type,
        ..secure(ca.client_config())
    };
    let (id, out) = connect(h, "localhost", options);
    let mut link = Link::new();
    link.run(h, id, &mut peer, out);
    assert_eq!(link.take_events(), [Event::Open { id: id.into() }]);
    (id, peer, link)
}

// ---- upgradeToSecure (STARTTLS) ------------------------------------------------------------

/// A plain socket to 127.0.0.1, open, whose peer will start TLS as a server.
pub(super) fn plain_open(h: &mut Harness, ca: &Ca) -> (TcpId, Peer, Link) {
    let options = TcpOptions {
        tls_config: Some(ca.client_config()),
        ..TcpOptions::default()
    };
    let (id, out) = connect(h, "127.0.0.1", options);
    assert_eq!(out, [open(id), reading(id, true)]);
    let peer = Peer::server(server_config(ca.leaf(&["127.0.0.1"], 2035)));
    let mut link = Link::new();
    link.reading = true;
    (id, peer, link)
}

mod close;
mod data;
mod handshake;
mod starttls;
