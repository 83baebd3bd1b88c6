//! One app, every world (issue 15 point 4): the PING/PONG app of `examples/one_app`, written
//! once against `sockstate::Sockets`, gives the same results on a `Core` by hand, under the
//! checker, on the simulated network and on the driver over loopback; and on the sim, under
//! seeded faults, it always ends in a state the protocol allows, with no broken invariant.

#[path = "../examples/one_app/app.rs"]
#[allow(dead_code)]
mod app;
#[path = "../examples/one_app/worlds.rs"]
#[allow(dead_code)]
mod worlds;

use std::time::Instant;

use app::{expected_client_log, expected_server_log, PingPong};
use sockstate::replay::Replay;
use sockstate_driver::{Config, Driver, Recording};
use worlds::{fault_of, Fault, Logs};

const COUNT: u32 = 5;

fn expected() -> Logs {
    Logs {
        client: expected_client_log(COUNT),
        server: expected_server_log(COUNT),
    }
}

#[test]
fn the_app_gives_the_same_results_in_every_world() {
    assert_eq!(worlds::on_core(COUNT), Ok(expected()), "Core by hand");
    let (logs, violations) = worlds::on_checked_core(COUNT).expect("CheckedCore by hand");
    assert_eq!(
        (logs, violations),
        (expected(), vec![]),
        "CheckedCore by hand"
    );
    for seed in 0..20 {
        let run = worlds::on_sim(seed, COUNT, Fault::Nothing).expect("the sim");
        assert_eq!(run.violations, [], "sim seed {seed}");
        assert_eq!(run.logs, expected(), "sim seed {seed}:\n{}", run.transcript);
    }
    assert_eq!(worlds::on_driver(COUNT), Ok(expected()), "the driver");
}

/// Whether `log` is what the protocol allows after a fault: the expected lines up to some
/// point, then either the rest of them, or an error and the close; or, when `may_stop`, the
/// lines so far and nothing more (the app's host crashed).
fn allowed(log: &[String], expected: &[String], may_stop: bool) -> bool {
    let (lines, _closed) = expected.split_at(expected.len() - 1);
    let agreed = log.iter().zip(lines).take_while(|(a, b)| a == b).count();
    match &log[agreed..] {
        [] => may_stop,
        [closed] => agreed == lines.len() && closed == "closed",
        [error, closed] => error.starts_with("error ") && closed == "closed",
        _ => false,
    }
}

#[test]
fn faults_on_the_sim_end_in_states_the_protocol_allows() {
    let seeds = 0..400u64;
    let started = Instant::now();
    let (mut errors, mut timeouts) = (0, 0);
    for seed in seeds.clone() {
        let fault = fault_of(seed);
        let run = worlds::on_sim(seed, COUNT, fault).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let replay = format!(
            "seed {seed} ({fault:?}); replay: cargo run -p sockstate-driver --example one_app -- {seed}"
        );
        assert_eq!(run.violations, [], "{replay}");
        let expected = expected();
        match fault {
            // Nothing is lost while partitioned: TCP retransmits after the repair.
            Fault::Nothing => assert_eq!(run.logs, expected, "{replay}"),
            Fault::Partition { .. } => {
                assert!(run.injected, "{replay}: the fault never happened");
                assert_eq!(run.logs, expected, "{replay}");
            }
            Fault::Reset { .. } | Fault::Crash { .. } => {
                // A fault that silently does not happen would let broken code pass.
                assert!(run.injected, "{replay}: the fault never happened");
                // A crashed server's app is gone with its host: its log may just stop.
                let crash = matches!(fault, Fault::Crash { .. });
                assert!(
                    allowed(&run.logs.client, &expected.client, false),
                    "{replay}: {:?}",
                    run.logs
                );
                assert!(
                    allowed(&run.logs.server, &expected.server, crash),
                    "{replay}: {:?}",
                    run.logs
                );
                errors += usize::from(run.logs.client.iter().any(|l| l.starts_with("error ")));
                timeouts += usize::from(run.logs.client.iter().any(|l| l == "error timeout"));
            }
        }
    }
    // The faults happened: many runs ended in errors, and some crashes were noticed only by
    // the client's own timeout (without it, those clients would wait for good).
    assert!(errors > 50, "{errors} errors");
    assert!(timeouts > 0, "{timeouts} timeouts");
    eprintln!(
        "{} seeds in {:?}: {errors} client errors, {timeouts} of them timeouts",
        seeds.end,
        started.elapsed()
    );
}

/// Calls made through `Sockets` on the driver are recorded as its own methods record them:
/// the session replays, complete, to the events the app saw (a call the recorder missed
/// would make the replay diverge at the first output it caused).
#[test]
fn calls_through_the_trait_are_recorded_by_the_driver() {
    let path = std::env::temp_dir().join(format!("one_app-{}.sockrec", std::process::id()));
    let config = Config::default().record(Some(Recording::to_path(&path)));
    let mut driver = Driver::new(config).unwrap();
    let (port, peer) = worlds::std_server().unwrap();
    let mut app = PingPong::client("127.0.0.1", port, COUNT);
    let events = worlds::run_driver(&mut driver, &mut app, worlds::closed).unwrap();
    peer.join().unwrap().unwrap();
    assert_eq!(app.log, expected_client_log(COUNT));
    driver.finish_recording().unwrap();

    let recording = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let mut replay = Replay::new(recording, Instant::now()).unwrap();
    let mut replayed = Vec::new();
    while let Some(event) = replay.next_event().unwrap() {
        replayed.push(event);
    }
    assert_eq!(replayed, events);
    assert!(replay.summary().complete(), "{:?}", replay.summary());
}
