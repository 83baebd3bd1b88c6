//! Tests of the checker itself: TLS and STARTTLS runs pass, a violation under TLS is caught.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::CheckedCore;
use crate::sim::{Call, Returned};
use crate::testkit::tls::{server_config, Ca, Peer};
use crate::{Action, BinaryType, Config, Core, Event, Input, Output, TcpId, TcpOptions};

/// A TLS client and a rustls server joined by hand: every write taken in two parts (a
/// partial write first), the server echoing what it decrypts. `plain` counts the bytes
/// that go to the server in plaintext before its TLS starts (STARTTLS).
struct Link {
    core: CheckedCore,
    peer: Peer,
    id: TcpId,
    now: Instant,
    plain: usize,
    prelude: Vec<u8>,
    events: Vec<Event>,
}

impl Link {
    fn open(secure: bool) -> Link {
        let ca = Ca::new("test CA");
        let peer = Peer::server(server_config(ca.leaf(&["localhost"], 2035)));
        let mut core = CheckedCore::new(Core::new(Config::default()));
        #[allow(clippy::disallowed_methods)] // the one real reading; only offsets matter
        let now = Instant::now();
        let options = TcpOptions {
            use_secure_transport: secure,
            tls_config: Some(ca.client_config()),
            binary_type: BinaryType::ArrayBuffer,
            ..TcpOptions::default()
        };
        let call = Call::TcpOpen {
            host: "localhost".into(),
            port: 443,
            options,
        };
        let Ok(Returned::Opened(id)) = core.call(now, &call) else {
            panic!()
        };
        let mut link = Link {
            core,
            peer,
            id,
            now,
            plain: 0,
            prelude: Vec::new(),
            events: Vec::new(),
        };
        link.pump();
        assert!(link.events.contains(&Event::Open { id: id.into() }));
        link
    }

    fn call(&mut self, call: Call) -> Returned {
        self.core.call(self.now, &call).unwrap()
    }

    /// Carries out the core's actions until nothing moves.
    fn pump(&mut self) {
        let id = self.id;
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        loop {
            let mut inputs = Vec::new();
            loop {
                match self.core.poll_output() {
                    Output::Timeout(_) => break,
                    Output::Event(e) => self.events.push(e),
                    Output::Action(Action::Resolve { .. }) => inputs.push(Input::Resolved {
                        id: id.into(),
                        result: Ok(vec![local.ip()]),
                    }),
                    Output::Action(Action::Connect { attempt, .. }) => {
                        inputs.push(Input::Connected { id, attempt, local })
                    }
                    Output::Action(Action::Write { data, .. }) => {
                        let len = data.len().div_ceil(2);
                        let (plain, tls) = data[..len].split_at(self.plain.min(len));
                        self.plain -= plain.len();
                        self.prelude.extend_from_slice(plain);
                        self.peer.feed(tls).unwrap();
                        inputs.push(Input::Written { id, len });
                    }
                    Output::Action(Action::Shutdown { .. }) => inputs.push(Input::Eof { id }),
                    Output::Action(Action::QueryUnacked { .. }) => {
                        inputs.push(Input::Unacked { id, bytes: Some(0) })
                    }
                    Output::Action(_) => {}
                }
            }
            let echo = std::mem::take(&mut self.peer.plain);
            if !echo.is_empty() {
                self.peer.send(&echo);
            }
            let ciphertext = self.peer.take();
            if !ciphertext.is_empty() && self.core.core().tcp(id).is_some() {
                inputs.push(Input::Received {
                    id,
                    data: ciphertext.into(),
                });
            }
            if inputs.is_empty() {
                return;
            }
            for input in inputs {
                self.core.handle_input(self.now, input).unwrap();
            }
        }
    }

    fn got(&self) -> Vec<u8> {
        let data = self.events.iter().filter_map(|e| match e {
            Event::Data { data, .. } => Some(data.as_bytes()),
            _ => None,
        });
        data.flatten().copied().collect()
    }
}

#[test]
fn a_tls_run_has_no_violation() {
    let mut link = Link::open(true);
    let id = link.id;
    let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    // Above the high-water mark: `Drain` armed, and fired only once every record is out.
    let sent = link.call(Call::TcpSend {
        id,
        data: data.clone().into(),
    });
    assert_eq!(sent, Returned::Sent(false));
    link.pump();
    assert_eq!(link.got(), data);
    assert!(link.events.contains(&Event::Drain { id: id.into() }));
    link.call(Call::TcpClose { id });
    link.pump();
    assert_eq!(link.events.last(), Some(&Event::Close { id: id.into() }));
    assert_eq!(link.core.violations(), []);
}

#[test]
fn a_starttls_run_has_no_violation() {
    let mut link = Link::open(false);
    let id = link.id;
    link.plain = 6;
    link.call(Call::TcpSend {
        id,
        data: "HELLO\n".into(),
    });
    link.call(Call::TcpUpgradeToSecure { id });
    link.call(Call::TcpSend {
        id,
        data: "secret".into(),
    });
    link.pump();
    assert_eq!(link.prelude, b"HELLO\n");
    assert_eq!(link.peer.plain, b"");
    assert_eq!(&link.got()[..], b"secret");
    assert_eq!(link.core.violations(), []);
}

#[test]
fn a_violation_on_a_tls_socket_is_still_caught() {
    let mut link = Link::open(true);
    let id = link.id;
    let write = Action::Write {
        id,
        data: Bytes::from_static(b"0123456789"),
    };
    link.core.action(&write);
    link.core.action(&write);
    link.core.accepted(&Input::Written { id, len: 11 });
    let found: Vec<_> = (link.core.violations().iter())
        .map(|v| v.what.as_str())
        .collect();
    assert_eq!(
        found,
        [
            "a second write while one is in flight",
            "Written(11) accepted for a write of 10"
        ]
    );
}
