//! A simulated run's host recording (issue 16): a run that failed (a reset mid-stream, a
//! refused connect) replays on a fresh core, offline, to the same events in the same order.

use std::time::Instant;

use sockstate::replay::Replay;
use sockstate::sim::{Call, Peer, Returned, Sim};
use sockstate::{ErrorCode, Event, TcpOptions};

#[test]
fn a_failing_sim_run_replays_from_the_hosts_recording() {
    let mut sim = Sim::new(7);
    let client = sim
        .add_host("client", &["127.0.0.1".parse().unwrap()])
        .unwrap();
    sim.record_host(client);
    sim.add_host("server", &["127.0.0.2".parse().unwrap()])
        .unwrap();
    sim.listen("127.0.0.2:7".parse().unwrap(), Peer::echo())
        .unwrap();
    sim.refuse("127.0.0.2:8".parse().unwrap());
    let open = |port| Call::TcpOpen {
        host: "server".into(),
        port,
        options: TcpOptions::default(),
    };
    let Ok(Returned::Opened(id)) = sim.call(client, open(7)) else {
        panic!()
    };
    let Ok(Returned::Opened(_)) = sim.call(client, open(8)) else {
        panic!()
    };
    let mut live = Vec::new();
    while let Some((host, event)) = sim.next_event() {
        assert_eq!(host, client);
        match &event {
            Event::Open { .. } => {
                let send = Call::TcpSend {
                    id,
                    data: "half of it, then a reset".into(),
                };
                sim.call(client, send).unwrap();
            }
            Event::Data { .. } => {
                let conn = sim.conn_of(client, id).unwrap();
                sim.reset(conn).unwrap();
            }
            _ => {}
        }
        live.push(event);
    }
    let errors: Vec<ErrorCode> = (live.iter())
        .filter_map(|e| match e {
            Event::Error { error, .. } => Some(error.code),
            _ => None,
        })
        .collect();
    assert_eq!(
        errors,
        [ErrorCode::ConnectionRefused, ErrorCode::NetworkInterrupt],
        "{live:?}"
    );
    let recording = sim.recording(client).unwrap();
    #[allow(clippy::disallowed_methods)] // only offsets from it matter
    let base = Instant::now();
    let (replayed, summary) = Replay::events(recording, base).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replayed, live);
    assert!(summary.complete(), "{summary}");
}
