//! `sockcat replay FILE`: a recording's event transcript, replayed offline on a fresh core.

use std::path::Path;
use std::time::Instant;

use sockstate_driver::sockstate::replay::{Replay, Step};
use sockstate_driver::sockstate::{Call, Output};
use sockstate_driver::{Event, SocketId};

use crate::pipe::{describe, tls_details, upgraded};

/// Prints what `-v` printed of the session (on stdout): each event, what a TLS handshake
/// agreed on, each `upgradeToSecure()`; then the summary. `Err` names the first step that
/// differs, or what is wrong with the file.
///
/// TLS sessions replay whole when sockcat recorded them: their configs are rebuilt from the
/// recording (its draws, verdicts and certificate chains; no key or trust store needed).
pub fn run(file: &Path) -> Result<(), String> {
    let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut replay =
        Replay::new(data, Instant::now()).map_err(|e| format!("{}: {e}", file.display()))?;
    loop {
        match replay.next_step() {
            Ok(Some(Step::Output(Output::Event(event)))) => {
                println!("sockcat: {}", describe(replay.core(), &event));
                if let Event::Open {
                    id: SocketId::TcpId(id),
                } = event
                {
                    for line in tls_details(replay.core(), id) {
                        println!("{line}");
                    }
                }
            }
            Ok(Some(Step::Call {
                call: Call::TcpUpgradeToSecure { id },
                result: Ok(_),
            })) => println!("{}", upgraded(id)),
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                println!("sockcat: replay: {}", replay.summary());
                return Err(format!("{}: {e}", file.display()));
            }
        }
    }
    println!("sockcat: replay: {}", replay.summary());
    Ok(())
}
