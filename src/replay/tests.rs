use std::time::{Duration, Instant};

use super::*;

/// The one real reading of the clock; only offsets matter.
#[allow(clippy::disallowed_methods)]
fn clock() -> Instant {
    Instant::now()
}
use crate::{Action, SocketId, TcpOptions, UdpOptions};

/// Records a session on one core: a UDP socket that binds and gets a datagram, a TCP client
/// that connects, sends, reads and is reset.
pub(super) fn session(payloads: PayloadLimit) -> (Vec<u8>, Vec<Event>) {
    session_holding(payloads, None)
}

/// [`session`], the encoder holding payloads of at least `hold` bytes by reference (taken as
/// buffers and joined).
fn session_holding(payloads: PayloadLimit, hold: Option<usize>) -> (Vec<u8>, Vec<Event>) {
    let t0 = clock();
    let mut core = Core::new(Config::default());
    let mut rec = Encoder::new(core.config(), payloads, t0);
    if let Some(from) = hold {
        rec.hold_payloads(from);
    }
    let mut events = Vec::new();
    let mut actions = Vec::new();
    let mut poll = |core: &mut Core, rec: &mut Encoder, events: &mut Vec<Event>| loop {
        let out = core.poll_output();
        rec.polled(&out);
        match out {
            Output::Timeout(_) => break,
            Output::Event(e) => events.push(e),
            Output::Action(a) => actions.push(a),
        }
    };
    let call = |core: &mut Core, rec: &mut Encoder, at: Instant, call: Call| {
        rec.call(at, &call);
        let result = call.apply(core, at);
        rec.call_result(&result);
        result
    };
    let input = |core: &mut Core, rec: &mut Encoder, at: Instant, input: Input| {
        rec.input(at, &input);
        let result = core.handle_input(at, input);
        rec.input_result(&result);
    };
    let options = UdpOptions::default();
    let Ok(Returned::Bound(udp)) = call(&mut core, &mut rec, t0, Call::UdpOpen { options }) else {
        panic!()
    };
    poll(&mut core, &mut rec, &mut events);
    let t1 = t0 + Duration::from_millis(1);
    let local = "0.0.0.0:4000".parse().unwrap();
    input(&mut core, &mut rec, t1, Input::Bound { id: udp, local });
    let remote = "127.0.0.1:9".parse().unwrap();
    let data = Bytes::from_static(b"a datagram of some length");
    input(
        &mut core,
        &mut rec,
        t1,
        Input::Datagram {
            id: udp,
            data,
            remote,
        },
    );
    poll(&mut core, &mut rec, &mut events);
    // A UDP socket whose default destination is a name: its `Resolved` names a `UdpId`.
    let options = UdpOptions::default()
        .remote_host(Some("example.org".into()))
        .remote_port(Some(53))
        .dns_query_type(Some(crate::DnsQueryType::Ipv4));
    let Ok(Returned::Bound(named)) = call(&mut core, &mut rec, t1, Call::UdpOpen { options })
    else {
        panic!()
    };
    poll(&mut core, &mut rec, &mut events);
    let result = Ok(vec![
        "2001:db8::1".parse().unwrap(),
        "192.0.2.1".parse().unwrap(),
    ]);
    let resolved = Input::Resolved {
        id: named.into(),
        result,
    };
    input(&mut core, &mut rec, t1, resolved);
    poll(&mut core, &mut rec, &mut events);
    let open = Call::TcpOpen {
        host: "127.0.0.1".into(),
        port: 7,
        options: TcpOptions::default(),
    };
    let Ok(Returned::Opened(tcp)) = call(&mut core, &mut rec, t1, open) else {
        panic!()
    };
    poll(&mut core, &mut rec, &mut events);
    let local = "127.0.0.1:5000".parse().unwrap();
    input(
        &mut core,
        &mut rec,
        t1,
        Input::Connected {
            id: tcp,
            attempt: 0,
            local,
        },
    );
    poll(&mut core, &mut rec, &mut events);
    let send = Call::TcpSend {
        id: tcp,
        data: Bytes::from_static(b"hello there, peer"),
    };
    assert_eq!(
        call(&mut core, &mut rec, t1, send),
        Ok(Returned::Sent(true))
    );
    // A source-specific membership, recorded with its result, whatever it is.
    let ssm = Call::UdpAddSource {
        id: udp,
        source: "127.0.0.9".parse().unwrap(),
        group: "232.1.2.3".parse().unwrap(),
    };
    let _ = call(&mut core, &mut rec, t1, ssm);
    // A misuse is recorded with its error.
    let bad = Call::UdpJoin {
        id: udp,
        group: "127.0.0.1".parse().unwrap(),
    };
    assert!(call(&mut core, &mut rec, t1, bad).is_err());
    poll(&mut core, &mut rec, &mut events);
    input(&mut core, &mut rec, t1, Input::Written { id: tcp, len: 17 });
    let data = Bytes::from_static(b"general kenobi");
    input(&mut core, &mut rec, t1, Input::Received { id: tcp, data });
    // An input the core refuses is recorded with its refusal.
    input(&mut core, &mut rec, t1, Input::Written { id: tcp, len: 17 });
    poll(&mut core, &mut rec, &mut events);
    let t2 = t1 + Duration::from_secs(3);
    rec.timeout(t2);
    core.handle_timeout(t2);
    input(
        &mut core,
        &mut rec,
        t2,
        Input::Failed {
            id: tcp,
            error: std::io::ErrorKind::ConnectionReset,
        },
    );
    poll(&mut core, &mut rec, &mut events);
    rec.end(true);
    assert!(actions.iter().any(|a| matches!(a, Action::Write { .. })));
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Bind { id, local, .. } if *id == named && local.is_ipv4()
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Close {
            id: SocketId::TcpId(_)
        }
    )));
    if hold.is_none() {
        return (rec.take(), events);
    }
    let joined = rec.bytes().into_owned();
    let mut buffers = Vec::new();
    rec.take_buffers(&mut buffers);
    let file: Vec<u8> = buffers.iter().flat_map(|b| b.iter().copied()).collect();
    assert_eq!(file, joined, "bytes() and take_buffers() agree");
    assert_eq!(rec.pending(), 0);
    (file, events)
}

#[test]
fn payloads_held_by_reference_make_the_same_file() {
    let (copied, events) = session(PayloadLimit::Full);
    for from in [1, 15, 4096] {
        let (held, held_events) = session_holding(PayloadLimit::Full, Some(from));
        assert_eq!(held, copied, "holding from {from} bytes");
        assert_eq!(held_events, events);
    }
    // Limited payloads are copied (what is kept of them) whatever the encoder holds.
    let (limited, _) = session(PayloadLimit::FirstBytes(4));
    let (held, _) = session_holding(PayloadLimit::FirstBytes(4), Some(1));
    assert_eq!(held, limited);
}

fn replay_all(file: &[u8]) -> Result<(Vec<Event>, Summary), ReplayError> {
    Replay::events(file.to_vec(), clock())
}

#[test]
fn a_session_replays_to_the_same_events() {
    let (file, events) = session(PayloadLimit::Full);
    let (replayed, summary) = replay_all(&file).unwrap();
    assert_eq!(replayed, events);
    assert!(summary.complete(), "{summary}");
    assert_eq!(summary.calls, 6);
    assert_eq!(summary.inputs, 8);
    assert_eq!(summary.timeouts, 1);
    assert_eq!(summary.duration, Duration::from_millis(3001));
}

#[test]
fn limited_payloads_replay_the_structure() {
    let (full, events) = session(PayloadLimit::Full);
    for n in [0, 4, 64] {
        let (file, _) = session(PayloadLimit::FirstBytes(n));
        if n < 16 {
            assert!(file.len() < full.len());
        }
        let (replayed, summary) = replay_all(&file).unwrap();
        assert!(summary.complete());
        assert_eq!(replayed.len(), events.len());
        for (a, b) in replayed.iter().zip(&events) {
            assert_eq!(std::mem::discriminant(a), std::mem::discriminant(b));
        }
    }
}

#[test]
fn a_file_that_is_not_a_recording_is_named_so() {
    let err = replay_all(b"GIF89a, not a recording at all").unwrap_err();
    assert_eq!(err, ReplayError::Format(FormatError::NotARecording));
    assert!(err.to_string().contains("not a sockstate recording"));
    assert_eq!(
        replay_all(b"").unwrap_err(),
        ReplayError::Format(FormatError::Truncated {
            offset: 0,
            reading: "the header"
        })
    );
}

#[test]
fn another_version_is_refused_by_number() {
    let (mut file, _) = session(PayloadLimit::Full);
    file[8..10].copy_from_slice(&7u16.to_le_bytes());
    let err = replay_all(&file).unwrap_err();
    assert_eq!(
        err,
        ReplayError::Format(FormatError::UnsupportedVersion {
            found: 7,
            supported: VERSION
        })
    );
    assert!(
        err.to_string().contains("version 7 is not supported"),
        "{err}"
    );
}

#[test]
fn every_truncation_is_an_error_or_a_cut_never_a_panic() {
    let (file, events) = session(PayloadLimit::Full);
    for len in 0..file.len() {
        match replay_all(&file[..len]) {
            // Cut between records: replays what it has, and says it was cut.
            Ok((replayed, summary)) => {
                assert_eq!(summary.end, End::Cut, "at {len}");
                assert!(events.starts_with(&replayed), "at {len}");
            }
            Err(ReplayError::Format(FormatError::Truncated { offset, .. })) => {
                assert_eq!(offset, len)
            }
            Err(e) => panic!("cut at {len}: {e}"),
        }
    }
}

#[test]
fn corrupt_bytes_are_errors_never_panics() {
    let (file, _) = session(PayloadLimit::Full);
    let mut errors = 0;
    for at in 0..file.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut bad = file.clone();
            bad[at] ^= flip;
            if replay_all(&bad).is_err() {
                errors += 1;
            }
        }
    }
    assert!(errors > file.len(), "most corruptions are caught: {errors}");
    // Anything after the end record is refused.
    let mut bad = file.clone();
    bad.push(0x04);
    let err = replay_all(&bad).unwrap_err();
    assert!(
        err.to_string().contains("bytes after the end record"),
        "{err}"
    );
    // An unknown record tag names itself and its offset.
    let mut decoder = Decoder::new(Bytes::from(file.clone()));
    decoder.header().unwrap();
    let mut bad = file[..decoder.offset()].to_vec();
    bad.push(0x3f);
    let err = replay_all(&bad).unwrap_err();
    let at = decoder.offset();
    assert!(
        err.to_string()
            .contains(&format!("corrupt at byte {at}: unknown record tag 0x3f")),
        "{err}"
    );
}

#[test]
fn a_changed_outcome_names_the_first_divergent_step() {
    let (mut file, _) = session(PayloadLimit::Full);
    // The first poll record's digest (after the header and the first call) is changed.
    let mut decoder = Decoder::new(Bytes::from(file.clone()));
    decoder.header().unwrap();
    decoder.record().unwrap().unwrap();
    let at = decoder.offset();
    assert_eq!(file[at], format::TAG_POLL + 9, "the Bind action's poll");
    file[at + 1] ^= 1;
    let err = replay_all(&file).unwrap_err();
    let ReplayError::Diverged(d) = &err else {
        panic!("{err}")
    };
    assert_eq!(d.step, 1);
    assert!(d.recorded.starts_with("Action::Bind"), "{err}");
    assert!(d.replayed.starts_with("Action(Bind"), "{err}");
    assert!(err.to_string().contains("diverged at step 1"), "{err}");
}

#[test]
fn a_recorded_policy_refusal_is_refused_again() {
    let t0 = clock();
    let mut core = Core::with_policy(Config::default(), crate::NoPrivilegedPorts);
    let mut rec = Encoder::new(core.config(), PayloadLimit::Full, t0);
    let options = UdpOptions {
        local_port: Some(80),
        ..Default::default()
    };
    let call = Call::UdpOpen { options };
    rec.call(t0, &call);
    let result = call.apply(&mut core, t0);
    assert_eq!(
        result.as_ref().unwrap_err().exception(),
        DomException::SecurityError
    );
    rec.call_result(&result);
    rec.end(true);
    let (events, summary) = replay_all(&rec.take()).unwrap();
    assert!(events.is_empty());
    assert_eq!(summary.calls, 1);
}

/// The core's seed recordings of the `replay_file` fuzz target are what this session records
/// now; after a change of the format, rewrite them with
/// `SOCKSTATE_WRITE_SEEDS=1 cargo test -p sockstate --lib seed_recordings` (as the driver's).
#[test]
fn seed_recordings_are_current() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz_corpus/replay_file");
    let seeds = [
        ("core_session_full", session(PayloadLimit::Full).0),
        (
            "core_session_first4",
            session(PayloadLimit::FirstBytes(4)).0,
        ),
    ];
    for (name, recording) in seeds {
        let path = format!("{dir}/{name}");
        if std::env::var_os("SOCKSTATE_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(&path, &recording).unwrap();
        }
        let stored = std::fs::read(&path).unwrap();
        assert!(
            stored == recording,
            "{path} is not what the session records now: rewrite it (see this test's docs)"
        );
    }
}
