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
