//! One app, every world: a PING/PONG line protocol written once against
//! `sockstate::Sockets` (`app.rs`) runs unchanged on a `Core` driven by hand, under the
//! invariant checker, on the simulated network with seeded faults, and on the driver over
//! loopback against peers written with `std::net` (`worlds.rs`). `driver/tests/one_app.rs`
//! runs the same and compares the results.
//!
//! `cargo run -p sockstate-driver --example one_app [SEED]`: prints what the app logged in each
//! world, then the sim run of `SEED` (default 1, a reset) with its transcript.

mod app;
mod worlds;

use std::process::ExitCode;

fn main() -> ExitCode {
    let count = 3;
    let seed = match std::env::args().nth(1).map(|s| s.parse::<u64>()) {
        None => 1,
        Some(Ok(seed)) => seed,
        Some(Err(e)) => {
            eprintln!("usage: one_app [SEED] ({e})");
            return ExitCode::FAILURE;
        }
    };
    let worlds: [(&str, Result<worlds::Logs, String>); 4] = [
        ("Core by hand", worlds::on_core(count)),
        (
            "CheckedCore by hand",
            worlds::on_checked_core(count).and_then(|(logs, violations)| match violations[..] {
                [] => Ok(logs),
                _ => Err(format!("violations: {violations:?}")),
            }),
        ),
        (
            "sim, no fault",
            worlds::on_sim(0, count, worlds::Fault::Nothing).map(|run| run.logs),
        ),
        ("driver on loopback", worlds::on_driver(count)),
    ];
    let mut failed = false;
    for (world, logs) in worlds {
        match logs {
            Ok(logs) => println!(
                "{world:>20}: client {:?}\n{:>20}  server {:?}",
                logs.client, "", logs.server
            ),
            Err(e) => {
                failed = true;
                println!("{world:>20}: FAILED: {e}");
            }
        }
    }
    let fault = worlds::fault_of(seed);
    match worlds::on_sim(seed, count, fault) {
        Ok(run) => {
            let happened = if run.injected {
                "injected"
            } else {
                "never happened"
            };
            println!(
                "\nsim seed {seed}, {fault:?} ({happened}): {} violations",
                run.violations.len()
            );
            println!(
                "client {:?}\nserver {:?}\n\n{}",
                run.logs.client, run.logs.server, run.transcript
            );
        }
        Err(e) => {
            failed = true;
            println!("sim seed {seed}: FAILED: {e}");
        }
    }
    match failed {
        true => ExitCode::FAILURE,
        false => ExitCode::SUCCESS,
    }
}
