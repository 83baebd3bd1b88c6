//! `sockcat replay FILE`: a recording's event transcript, replayed offline on a fresh core.

use std::path::Path;
use std::time::Instant;

use sockstate_driver::sockstate::replay::Replay;

use crate::pipe::describe;

/// Prints each event as `-v` does (on stdout), then the summary; `Err` names the first step
/// that differs, or what is wrong with the file.
pub fn run(file: &Path) -> Result<(), String> {
    let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut replay =
        Replay::new(data, Instant::now()).map_err(|e| format!("{}: {e}", file.display()))?;
    loop {
        match replay.next_event() {
            Ok(Some(event)) => println!("sockcat: {}", describe(replay.core(), &event)),
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
