//! The simulated network's speed for a user's own protocol test: seeds per second for the
//! PING/PONG app of `examples/one_app` (5 pings and a QUIT between two sim hosts, 2 ms latency
//! with 3 ms of jitter, seeded chunked reads and partial writes, and per seed one fault of four
//! kinds: none, a reset, a partition then repair, a crash then restart; every step checked by
//! `CheckedCore`, the transcript kept), against the same app on the driver over loopback
//! (client and server role, each against a `std::net` peer) in the same run: how many seeded
//! runs a test suite gets for one real one.
//!
//! Every run is checked as the test `one_app` checks it (no violation; a run without a fault
//! gives exactly the protocol's logs), so a fast but wrong sim cannot pass.
//!
//! `cargo bench -p sockstate-driver --bench sim [-- --smoke | --runs N]`.

mod common;

#[path = "../examples/one_app/app.rs"]
#[allow(dead_code)]
mod app;
#[path = "../examples/one_app/worlds.rs"]
#[allow(dead_code)]
mod worlds;

use std::time::{Duration, Instant};

use common::{interleaved, median, Args, Deadline, Report, Target};
use worlds::{fault_of, Fault, Logs};

/// Pings per session.
const COUNT: u32 = 5;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Imp {
    /// `seeds` seeded sim runs.
    Sim,
    /// One driver run of each role on loopback.
    Driver,
}

fn expected() -> Logs {
    Logs {
        client: app::expected_client_log(COUNT),
        server: app::expected_server_log(COUNT),
    }
}

/// Runs seeds `from..from + seeds` and checks each; returns the seconds taken.
fn sim_runs(from: u64, seeds: u64) -> f64 {
    let start = Instant::now();
    for seed in from..from + seeds {
        let fault = fault_of(seed);
        let run =
            worlds::on_sim(seed, COUNT, fault).unwrap_or_else(|e| panic!("sim seed {seed}: {e}"));
        assert_eq!(run.violations, [], "sim seed {seed}: violations");
        if matches!(fault, Fault::Nothing | Fault::Partition { .. }) {
            assert_eq!(run.logs, expected(), "sim seed {seed}: {fault:?}");
        }
    }
    start.elapsed().as_secs_f64()
}

fn driver_run() -> f64 {
    let start = Instant::now();
    let logs = worlds::on_driver(COUNT).unwrap_or_else(|e| panic!("driver: {e}"));
    assert_eq!(logs, expected(), "driver");
    start.elapsed().as_secs_f64()
}

fn main() {
    let args = Args::parse();
    let deadline = Deadline::new("sim", Duration::from_secs(240));
    let seeds: u64 = args.size(2_000, 20);
    let mut report = Report::new("the simulated network: a PING/PONG protocol test's seeds");
    let mut next_seed = 0;
    let samples = interleaved(args.runs, &[Imp::Sim, Imp::Driver], |imp, _| {
        deadline.check();
        match imp {
            Imp::Sim => {
                let secs = sim_runs(next_seed, seeds);
                next_seed += seeds;
                seeds as f64 / secs
            }
            Imp::Driver => 1.0 / driver_run(),
        }
    });
    let sim = median(&samples[0]);
    let driver = median(&samples[1]);
    report.value("driver runs/s (both roles, loopback)", "driver", driver);
    report.ratio(
        "seeds/s (both roles, a fault per seed)",
        "sim",
        sim,
        ("driver", driver),
        Target::None,
    );
    report.note(format!(
        "{seeds} seeds per sim sample (seeds 0..{next_seed} in all), each checked: no \
         violation, and the protocol's exact logs when the fault is none or a partition."
    ));
    report.print(&args);
}
