//! Two of our own sockets talking through one core, no OS: a client socket and the socket a
//! server accepted, joined by an in-memory pipe. Direct TLS and STARTTLS from either side
//! ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) TLS rules, §2 secure server).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::testkit::tls::{server_config, Ca};
use crate::testkit::*;
use crate::*;

/// The app's reaction to data, run as soon as the data is delivered.
type OnData = Box<dyn FnMut(&mut Harness, TcpId, &[u8])>;

/// The in-memory network between the two ends of one connection.
#[derive(Default)]
struct Pipe {
    on_data: Option<OnData>,
    /// The other end of each socket.
    peer: HashMap<TcpId, TcpId>,
    /// Bytes in flight to each socket, and whether its peer's FIN follows them.
    inbox: HashMap<TcpId, (VecDeque<Bytes>, bool)>,
    reading: HashMap<TcpId, bool>,
    /// Everything each socket wrote, in order.
    wire: HashMap<TcpId, Vec<u8>>,
    events: Vec<Event>,
    server: Option<ServerId>,
    client: Option<TcpId>,
    accepted: Option<TcpId>,
}

impl Pipe {
    fn run(&mut self, h: &mut Harness) {
        let mut pending: VecDeque<Output> = h.drain().into();
        for _ in 0..100_000 {
            while let Some(out) = pending.pop_front() {
                self.act(h, out, &mut pending);
            }
            let ready = self
                .inbox
                .iter()
                .find(|(id, (q, fin))| {
                    self.reading.get(id) == Some(&true) && (!q.is_empty() || *fin)
                })
                .map(|(id, _)| *id);
            let Some(id) = ready else { return };
            let (queue, fin) = self.inbox.get_mut(&id).unwrap();
            let input = match queue.pop_front() {
                Some(data) => Input::Received { id, data },
                None => {
                    *fin = false;
                    self.reading.insert(id, false);
                    Input::Eof { id }
                }
            };
            pending.extend(h.input(input));
        }
        panic!("the pipe did not settle");
    }

    fn act(&mut self, h: &mut Harness, out: Output, pending: &mut VecDeque<Output>) {
        match out {
            Output::Action(Action::Listen { id, local, .. }) => {
                self.server = Some(id);
                pending.extend(h.input(Input::Listening { id, local }));
            }
            Output::Action(Action::Connect {
                id,
                attempt,
                remote,
                ..
            }) => {
                let server = self.server.expect("a server listens");
                let client_local = addr("127.0.0.1:50000");
                let accepted = match h
                    .core
                    .handle_accepted(h.now, server, remote, client_local)
                    .unwrap()
                {
                    Accepted::Socket(s) => s,
                    Accepted::Refused => panic!("refused"),
                };
                self.peer.insert(id, accepted);
                self.peer.insert(accepted, id);
                self.client = Some(id);
                self.accepted = Some(accepted);
                pending.extend(h.drain());
                pending.extend(h.input(Input::Connected {
                    id,
                    attempt,
                    local: client_local,
                }));
            }
            Output::Action(Action::SetReading {
                id: SocketId::TcpId(id),
                enabled,
            }) => {
                self.reading.insert(id, enabled);
            }
            Output::Action(Action::Write { id, data }) => {
                self.wire.entry(id).or_default().extend_from_slice(&data);
                let to = self.peer[&id];
                self.inbox.entry(to).or_default().0.push_back(data.clone());
                pending.extend(h.input(Input::Written {
                    id,
                    len: data.len(),
                }));
            }
            Output::Action(Action::Shutdown { id }) => {
                self.inbox.entry(self.peer[&id]).or_default().1 = true;
            }
            // A write is in the other core's inbox at once: acknowledged.
            Output::Action(Action::QueryUnacked { id }) => {
                pending.extend(h.input(crate::testkit::unacked(id, 0)));
            }
            Output::Action(_) => {}
            Output::Event(event) => {
                if let (Event::Data { id, data }, Some(hook)) = (&event, &mut self.on_data) {
                    hook(h, *id, data.as_bytes());
                    pending.extend(h.drain());
                }
                self.events.push(event);
            }
            Output::Timeout(_) => unreachable!(),
        }
    }

    fn data(&mut self, id: TcpId) -> Vec<u8> {
        let mut out = Vec::new();
        self.events.retain(|e| match e {
            Event::Data { id: i, data } if *i == id => {
                out.extend_from_slice(data.as_bytes());
                false
            }
            _ => true,
        });
        out
    }

    fn wire_has(&self, id: TcpId, needle: &[u8]) -> bool {
        self.wire
            .get(&id)
            .is_some_and(|w| w.windows(needle.len()).any(|x| x == needle))
    }
}

fn listen(h: &mut Harness, secure: bool, tls: Option<Arc<crate::tls::ServerConfig>>) -> ServerId {
    let options = ServerOptions {
        local_address: Some("127.0.0.1".parse().unwrap()),
        local_port: Some(4000),
        use_secure_transport: secure,
        tls_config: tls,
        ..ServerOptions::default()
    };
    h.core.server_listen(h.now, options).unwrap()
}

fn client_options(ca: &Ca, secure: bool) -> TcpOptions {
    TcpOptions {
        use_secure_transport: secure,
        tls_config: Some(ca.client_config()),
        ..TcpOptions::default()
    }
}

#[test]
fn a_secure_client_and_a_secure_server_of_ours() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let server = listen(
        &mut h,
        true,
        Some(server_config(ca.leaf(&["127.0.0.1"], 2035))),
    );
    let client = h
        .core
        .tcp_open(h.now, "127.0.0.1", 4000, client_options(&ca, true))
        .unwrap();
    let mut pipe = Pipe::default();
    pipe.run(&mut h);
    let accepted = pipe.accepted.unwrap();
    // TLS 1.3: the client's handshake completes first (on the server's Finished), the
    // server's on the client's Finished.
    assert_eq!(
        pipe.events,
        [
            Event::Open { id: server.into() },
            Event::Open { id: client.into() },
            Event::Connect {
                server,
                socket: accepted
            },
        ]
    );
    assert!(h.core.tcp(accepted).unwrap().ssl());
    pipe.events.clear();
    h.core.tcp_send(client, "ping").unwrap();
    h.core.tcp_send(accepted, "pong").unwrap();
    pipe.run(&mut h);
    assert_eq!(pipe.data(accepted), b"ping");
    assert_eq!(pipe.data(client), b"pong");
    assert!(!pipe.wire_has(client, b"ping") && !pipe.wire_has(accepted, b"pong"));
    // A graceful close from the client: close_notify and FIN reach the server's socket,
    // which closes too (allowHalfOpen is off), and both end with Close.
    h.core.tcp_close(h.now, client).unwrap();
    pipe.run(&mut h);
    assert!(
        pipe.events.contains(&Event::Close {
            id: accepted.into()
        }),
        "{:?}",
        pipe.events
    );
    assert!(
        pipe.events.contains(&Event::Close { id: client.into() }),
        "{:?}",
        pipe.events
    );
    assert!(
        !pipe.events.iter().any(|e| matches!(e, Event::Error { .. })),
        "{:?}",
        pipe.events
    );
}

/// A plain client and the socket a plain server (holding a certificate) accepted.
fn plain_pair(h: &mut Harness, ca: &Ca) -> (TcpId, TcpId, Pipe) {
    listen(h, false, Some(server_config(ca.leaf(&["127.0.0.1"], 2035))));
    let client = h
        .core
        .tcp_open(h.now, "127.0.0.1", 4000, client_options(ca, false))
        .unwrap();
    let mut pipe = Pipe::default();
    pipe.run(h);
    let accepted = pipe.accepted.unwrap();
    pipe.events.clear();
    (client, accepted, pipe)
}

fn no_failure(pipe: &Pipe) {
    assert!(
        !pipe
            .events
            .iter()
            .any(|e| matches!(e, Event::Error { .. } | Event::Close { .. })),
        "{:?}",
        pipe.events
    );
}

#[test]
fn server_side_starttls_answers_in_plaintext_then_encrypts_what_follows() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let (client, accepted, mut pipe) = plain_pair(&mut h, &ca);
    // SMTP's way: the client asks and waits for the answer.
    h.core.tcp_send(client, "STARTTLS\r\n").unwrap();
    pipe.run(&mut h);
    assert_eq!(pipe.data(accepted), b"STARTTLS\r\n");
    // The server answers and upgrades with the answer still queued, then queues more.
    h.core.tcp_send(accepted, "220 go ahead\r\n").unwrap();
    h.core.tcp_upgrade_to_secure(accepted).unwrap();
    h.core.tcp_send(accepted, "server secret").unwrap();
    assert_eq!(h.core.tcp(accepted).unwrap().buffered_amount(), 14 + 13);
    // The server's TLS waits for a ClientHello: the client reads the answer in plaintext.
    pipe.run(&mut h);
    assert_eq!(pipe.data(client), b"220 go ahead\r\n");
    h.core.tcp_upgrade_to_secure(client).unwrap();
    h.core.tcp_send(client, "client secret").unwrap();
    pipe.run(&mut h);
    assert_eq!(pipe.data(client), b"server secret");
    assert_eq!(pipe.data(accepted), b"client secret");
    assert!(
        pipe.wire_has(accepted, b"220 go ahead\r\n"),
        "queued before the call: plaintext"
    );
    assert!(
        !pipe.wire_has(accepted, b"server secret"),
        "queued after the call: encrypted"
    );
    assert!(!pipe.wire_has(client, b"client secret"));
    assert_eq!(h.core.tcp(accepted).unwrap().buffered_amount(), 0);
    no_failure(&pipe);
}

#[test]
fn client_side_starttls_pipelined_writes_the_command_in_plaintext_then_the_handshake() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    let (client, accepted, mut pipe) = plain_pair(&mut h, &ca);
    // The server upgrades as soon as it reads the command, before reading on.
    pipe.on_data = Some(Box::new(move |h, id, data| {
        if id == accepted && data == b"STARTTLS\r\n" {
            h.core.tcp_upgrade_to_secure(accepted).unwrap();
            h.core.tcp_send(accepted, "server secret").unwrap();
        }
    }));
    // The client queues the command, upgrades and queues more, all in one turn.
    h.core.tcp_send(client, "STARTTLS\r\n").unwrap();
    h.core.tcp_upgrade_to_secure(client).unwrap();
    h.core.tcp_send(client, "client secret").unwrap();
    assert_eq!(h.core.tcp(client).unwrap().buffered_amount(), 10 + 13);
    pipe.run(&mut h);
    assert_eq!(pipe.data(accepted), b"STARTTLS\r\nclient secret");
    assert_eq!(pipe.data(client), b"server secret");
    let wire = &pipe.wire[&client];
    assert_eq!(&wire[..10], b"STARTTLS\r\n");
    assert_eq!(wire[10], 0x16, "the ClientHello follows the plaintext");
    assert!(!pipe.wire_has(client, b"client secret"));
    assert_eq!(h.core.tcp(client).unwrap().buffered_amount(), 0);
    no_failure(&pipe);
}

#[test]
fn upgrade_on_an_accepted_socket_needs_a_server_certificate() {
    let mut h = Harness::new();
    let ca = Ca::new("test CA");
    listen(&mut h, false, None);
    h.core
        .tcp_open(h.now, "127.0.0.1", 4000, client_options(&ca, false))
        .unwrap();
    let mut pipe = Pipe::default();
    pipe.run(&mut h);
    let accepted = pipe.accepted.unwrap();
    let err = h.core.tcp_upgrade_to_secure(accepted).unwrap_err();
    assert_eq!(err.exception(), DomException::InvalidStateError);
    assert!(!h.core.tcp(accepted).unwrap().ssl());
    assert_eq!(h.drain(), []);
}
