#![no_main]
// The harness lives in sockstate::fuzzing.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sockstate::fuzzing::replay_file(data));
