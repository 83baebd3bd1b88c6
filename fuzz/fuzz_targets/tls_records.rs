#![no_main]
// The harness (and the invariants it asserts) lives in sockstate::fuzzing.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sockstate::fuzzing::tls_records(data));
