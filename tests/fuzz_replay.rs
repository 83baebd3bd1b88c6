//! Replays the checked-in fuzz corpus (`tests/fuzz_corpus/<target>/*`) through the fuzz
//! harnesses, which panic on any broken invariant. New findings become files here (with a
//! name saying what they caught) once fixed.

use std::path::Path;

#[test]
fn every_corpus_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus");
    for (target, _) in sockstate::fuzzing::TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a corpus entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for {target}");
        for file in files {
            let data = std::fs::read(&file).expect("a corpus file");
            let name = file.display().to_string();
            let result = std::panic::catch_unwind(|| sockstate::fuzzing::run(target, &data));
            match result {
                Ok(true) => {}
                Ok(false) => panic!("no target {target}"),
                Err(_) => panic!("{name} fails {target} (its panic message is above)"),
            }
        }
    }
}

/// The seeds of `replay_file` are real recordings (of a core, of the driver on loopback,
/// and of sockcat's TLS 1.3 client with a client certificate against `openssl s_server`,
/// replayed with configs built from the recording alone): each replays to its end with no
/// divergence, so a change of the core's behaviour or of the format shows here as the step
/// that differs.
#[test]
fn the_seed_recordings_replay_completely() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/replay_file");
    for name in [
        "core_session_full",
        "core_session_first4",
        "driver_udp_open_close",
        "sockcat_tls13_client",
    ] {
        let data = std::fs::read(dir.join(name)).expect("a seed recording");
        #[allow(clippy::disallowed_methods)] // only offsets from it matter
        let base = std::time::Instant::now();
        let (events, summary) =
            sockstate::replay::Replay::events(data, base).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(summary.complete(), "{name}: {summary}");
        assert!(!events.is_empty(), "{name}");
    }
}
