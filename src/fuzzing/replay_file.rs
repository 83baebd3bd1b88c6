//! [`replay_file`]: the recording parser and replay over arbitrary bytes.

use std::time::Instant;

use crate::replay::{End, Replay};

/// Reads `data` as a recording and replays it to its end or its first error. Any damage is
/// an error, never a panic; and a replay that ends without an error has read the whole file
/// (its end record, or the end of the file between two records).
pub fn replay_file(data: &[u8]) {
    #[allow(clippy::disallowed_methods)] // only offsets from it matter
    let base = Instant::now();
    let Ok(mut replay) = Replay::new(data.to_vec(), base) else {
        return;
    };
    loop {
        match replay.next_step() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            // Errors render, and the replay stays stopped.
            Err(e) => {
                assert!(!e.to_string().is_empty());
                assert_eq!(replay.next_step(), Ok(None));
                return;
            }
        }
    }
    assert!(matches!(
        replay.summary().end,
        End::Complete | End::Stopped | End::Cut
    ));
}
