//! Recordings of batched datagrams (format version 3) and version 2 recordings.

use std::time::{Duration, Instant};

use super::format::{TAG_END, TAG_POLL};
use super::*;
use crate::UdpOptions;

/// Records a UDP session with the batched shapes: `send_all`, one `SendDatagrams`, `Sent`
/// with a count, a `Datagrams` run and a plain `Datagram`.
/// The one real reading of the clock; only offsets matter.
#[allow(clippy::disallowed_methods)]
fn clock() -> Instant {
    Instant::now()
}

fn batched_session() -> (Vec<u8>, Vec<Event>) {
    let t0 = clock();
    let mut core = Core::new(Config::default());
    let mut rec = Encoder::new(core.config(), PayloadLimit::Full, t0);
    let mut events = Vec::new();
    let mut poll = |core: &mut Core, rec: &mut Encoder| loop {
        let out = core.poll_output();
        rec.polled(&out);
        match out {
            Output::Timeout(_) => break,
            Output::Event(e) => events.push(e),
            Output::Action(_) => {}
        }
    };
    let call = |core: &mut Core, rec: &mut Encoder, call: Call| {
        rec.call(t0, &call);
        let result = call.apply(core, t0);
        rec.call_result(&result);
        result
    };
    let input = |core: &mut Core, rec: &mut Encoder, at: Instant, input: Input| {
        rec.input(at, &input);
        let result = core.handle_input(at, input);
        rec.input_result(&result);
        result
    };
    let options = UdpOptions::default();
    let Ok(Returned::Bound(id)) = call(&mut core, &mut rec, Call::UdpOpen { options }) else {
        panic!()
    };
    poll(&mut core, &mut rec);
    let t1 = t0 + Duration::from_millis(1);
    let local = "0.0.0.0:4000".parse().unwrap();
    input(&mut core, &mut rec, t1, Input::Bound { id, local }).unwrap();
    poll(&mut core, &mut rec);
    let to = Some("127.0.0.1:9".parse().unwrap());
    for data in ["one", "two", "three"] {
        let data = Bytes::from_static(data.as_bytes());
        call(&mut core, &mut rec, Call::UdpSend { id, data, to }).unwrap();
    }
    poll(&mut core, &mut rec);
    let bad = input(&mut core, &mut rec, t1, Input::Sent { id, count: 4 });
    assert!(bad.is_err(), "recorded with its error");
    input(&mut core, &mut rec, t1, Input::Sent { id, count: 2 }).unwrap();
    input(&mut core, &mut rec, t1, Input::Sent { id, count: 1 }).unwrap();
    let remote = "127.0.0.1:9".parse().unwrap();
    let data = Bytes::from_static(b"aabbc");
    let run = Input::Datagrams {
        id,
        data,
        segment_size: 2,
        remote,
    };
    input(&mut core, &mut rec, t1, run).unwrap();
    let data = Bytes::from_static(b"d");
    input(
        &mut core,
        &mut rec,
        t1,
        Input::Datagram { id, data, remote },
    )
    .unwrap();
    poll(&mut core, &mut rec);
    rec.end(true);
    (rec.take(), events)
}

#[test]
fn batched_sends_and_runs_replay_to_the_same_events() {
    let (file, events) = batched_session();
    let messages = (events.iter())
        .filter(|e| matches!(e, Event::Message { .. }))
        .count();
    assert_eq!(messages, 4, "{events:?}");
    let (replayed, summary) = Replay::events(file, clock()).unwrap();
    assert_eq!(replayed, events);
    assert!(summary.complete(), "{summary}");
}

#[test]
fn a_version_2_recording_replays_up_to_its_first_udp_send() {
    // A session without UDP sends is the same in both versions.
    let (mut file, events) = super::tests::session(PayloadLimit::Full);
    file[8..10].copy_from_slice(&2u16.to_le_bytes());
    let (replayed, _) = Replay::events(file.clone(), clock()).unwrap();
    assert_eq!(replayed, events);
    // Version 2's per-datagram `SendTo` (poll kind 10) is a version error where it comes.
    // The end record: its tag, `complete` and a one-byte count of records.
    let end = file.len() - 3;
    assert_eq!(file[end], TAG_END);
    file.truncate(end);
    file.extend_from_slice(&[TAG_POLL + 10, 0, 0, 0, 0]);
    let err = Replay::events(file, clock()).unwrap_err();
    assert_eq!(
        err,
        ReplayError::Format(FormatError::UnsupportedVersion {
            found: 2,
            supported: VERSION
        })
    );
    assert!(
        err.to_string().contains("up to its first UDP send"),
        "{err}"
    );
}
