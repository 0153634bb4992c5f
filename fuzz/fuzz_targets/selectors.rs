//! Fuzzes `konductor_server::fuzzing::selectors` (its doc says what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| konductor_server::fuzzing::selectors(data));
