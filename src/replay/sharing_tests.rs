//! A replay feeds the core every received buffer as a part of the recording (shared), where
//! the live I/O layer often handed it a buffer nobody else held (the driver copies reads of at
//! most 4 KiB): the core's events must not depend on that. Here a TLS session is recorded on
//! one core with every read sole-owned and cut so that records straddle reads, then replayed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::io::Action;
use crate::testkit::tls::{server_config, Ca, FixedTime, Peer};
use crate::{BinaryType, Data, TcpOptions};

/// The one real reading of the clock; only offsets matter.
#[allow(clippy::disallowed_methods)]
fn clock() -> Instant {
    Instant::now()
}

/// Read sizes, used in turn: none above the driver's 4 KiB copy limit, most cutting records.
const SMALL_READS: [usize; 10] = [1, 5, 6, 700, 4096, 2, 3000, 1500, 4000, 17];
/// Reads as large as the driver's, whose plaintext the core gathers in its kept blocks.
const LARGE_READS: [usize; 3] = [64 << 10, 70_000, 37_000];

/// The plaintext the peer sends after the handshake, one `send` each (a `send` of more than
/// 16 KiB makes several records): `small` ones, read in small reads, then large ones.
fn messages(small: bool) -> Vec<Vec<u8>> {
    let sizes: &[usize] = match small {
        true => &[1, 300, 5000, 20_000, 3, 4096, 9000],
        false => &[100_000, 7, 250_000, 65_536],
    };
    (sizes.iter().enumerate())
        .map(|(i, &n)| (0..n).map(|j| (i * 31 + j % 251) as u8).collect())
        .collect()
}

/// One core recording a TLS client session against a rustls server driven by hand.
struct Session {
    core: Core,
    rec: Encoder,
    draws: TlsDraws,
    peer: Peer,
    id: crate::TcpId,
    now: Instant,
    events: Vec<Event>,
    /// Ciphertext on its way to us.
    to_us: Vec<u8>,
    reading: bool,
    reads: usize,
    /// Everything delivered, and where each read ended in it.
    wire: Vec<u8>,
    cuts: Vec<usize>,
}

impl Session {
    fn input(&mut self, input: Input) {
        self.rec.input(self.now, &input);
        let result = self.core.handle_input(self.now, input);
        self.rec.input_result(&result);
        self.rec.draws(&self.draws);
        result.unwrap();
    }

    /// Polls until the timeout; answers actions as the network would.
    fn poll(&mut self) {
        loop {
            let out = self.core.poll_output();
            self.rec.polled(&out);
            self.rec.draws(&self.draws);
            match out {
                Output::Timeout(_) => return,
                Output::Event(e) => self.events.push(e),
                Output::Action(Action::Write { id, data }) => {
                    self.peer.feed(&data).unwrap();
                    let len = data.len();
                    self.input(Input::Written { id, len });
                }
                Output::Action(Action::SetReading { enabled, .. }) => self.reading = enabled,
                Output::Action(Action::QueryUnacked { id }) => {
                    self.input(Input::Unacked { id, bytes: Some(0) })
                }
                Output::Action(
                    Action::Connect { .. } | Action::Shutdown { .. } | Action::Release { .. },
                ) => {}
                Output::Action(other) => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Delivers what the peer has sent, in reads of the sizes of `reads` in turn, each a
    /// buffer of its own that nobody else holds.
    fn deliver(&mut self, reads: &[usize]) {
        self.to_us.extend(self.peer.take());
        while self.reading && !self.to_us.is_empty() {
            let n = reads[self.reads % reads.len()].min(self.to_us.len());
            self.reads += 1;
            let data = Bytes::from(self.to_us.drain(..n).collect::<Vec<u8>>());
            assert!(data.is_unique(), "a read nobody else holds");
            self.wire.extend_from_slice(&data);
            self.cuts.push(self.wire.len());
            self.now += Duration::from_micros(10);
            self.input(Input::Received { id: self.id, data });
            self.poll();
            self.to_us.extend(self.peer.take());
        }
    }
}

/// Records the session (the app keeping every `Data` it gets); returns the recording, the
/// live events, and the peer's ciphertext of the small messages with the offsets in it where
/// a read ended.
fn record() -> (Vec<u8>, Vec<Event>, Vec<u8>, Vec<usize>) {
    let t0 = clock();
    let mut core = Core::new(Config::default());
    let mut rec = Encoder::new(core.config(), PayloadLimit::Full, t0);
    let draws = TlsDraws::recording();
    let ca = Ca::new("sharing test CA");
    let client = crate::tls::client_config(crate::tls::ClientOptions {
        roots: Some(ca.roots()),
        time: Some(Arc::new(FixedTime)),
        draws: Some(draws.clone()),
        ..Default::default()
    })
    .unwrap();
    let open = Call::TcpOpen {
        host: "127.0.0.1".into(),
        port: 443,
        options: TcpOptions::default()
            .use_secure_transport(true)
            .tls_config(Some(client))
            .binary_type(BinaryType::ArrayBuffer),
    };
    rec.call(t0, &open);
    let result = open.apply(&mut core, t0);
    rec.call_result(&result);
    rec.draws(&draws);
    let Ok(Returned::Opened(id)) = result else {
        panic!("{result:?}")
    };
    let mut s = Session {
        core,
        rec,
        draws,
        peer: Peer::server(server_config(ca.leaf(&["127.0.0.1"], 2035))),
        id,
        now: t0,
        events: Vec::new(),
        to_us: Vec::new(),
        reading: false,
        reads: 0,
        wire: Vec::new(),
        cuts: Vec::new(),
    };
    s.poll();
    let local = "127.0.0.1:40000".parse().unwrap();
    s.input(Input::Connected {
        id,
        attempt: 0,
        local,
    });
    s.poll();
    s.deliver(&SMALL_READS);
    assert_eq!(s.events, [Event::Open { id: id.into() }]);
    let handshake = s.wire.len();
    for message in messages(true) {
        s.peer.send(&message);
    }
    s.deliver(&SMALL_READS);
    let small = s.wire.len();
    for message in messages(false) {
        s.peer.send(&message);
    }
    s.deliver(&LARGE_READS);
    s.peer.conn.send_close_notify();
    s.deliver(&SMALL_READS);
    s.input(Input::Eof { id });
    s.poll();
    assert_eq!(s.events.last(), Some(&Event::Close { id: id.into() }));
    s.rec.end(true);
    let cuts = (s.cuts.iter())
        .filter(|&&c| c > handshake && c <= small)
        .map(|c| c - handshake)
        .collect();
    s.wire.truncate(small);
    (s.rec.take(), s.events, s.wire.split_off(handshake), cuts)
}

/// `event`, its data copied, so that whoever consumes it holds none of the core's buffers.
fn detached(event: Event) -> Event {
    match event {
        Event::Data {
            id,
            data: Data::Bytes(b),
        } => Event::Data {
            id,
            data: Data::Bytes(Bytes::copy_from_slice(&b)),
        },
        other => other,
    }
}

/// Where each TLS record of `stream` ends.
fn record_ends(stream: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0;
    while at + 5 <= stream.len() {
        at += 5 + usize::from(u16::from_be_bytes([stream[at + 3], stream[at + 4]]));
        ends.push(at);
    }
    assert_eq!(at, stream.len(), "whole records");
    ends
}

#[test]
fn tls_records_straddling_sole_owned_reads_replay_from_shared_buffers_with_the_same_events() {
    let (file, live, stream, cuts) = record();
    // The premise: records straddle small reads (most end inside a record), and reads
    // complete several records at once too.
    let ends = record_ends(&stream);
    let inside = cuts.iter().filter(|c| !ends.contains(c)).count();
    assert!(inside > 10, "{inside} reads end inside a record");
    let data: Vec<&[u8]> = (live.iter())
        .filter_map(|e| match e {
            Event::Data { data, .. } => Some(data.as_bytes()),
            _ => None,
        })
        .collect();
    assert!(data.len() > 10, "{} data events", data.len());
    let all = [messages(true).concat(), messages(false).concat()].concat();
    assert!(data.concat() == all, "every byte, in order");
    // The replay hands the core parts of the recording, and its consumer drops what it is
    // given (the core's plaintext blocks are reclaimed, where the live app kept them): the
    // same events, split alike.
    let mut replay = Replay::new(file, clock()).unwrap();
    let mut replayed = Vec::new();
    while let Some(event) = replay.next_event().unwrap_or_else(|e| panic!("{e}")) {
        replayed.push(detached(event));
    }
    assert!(replay.summary().complete(), "{}", replay.summary());
    assert_eq!(replayed, live);
}
