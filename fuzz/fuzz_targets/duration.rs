//! Fuzzes `konductor_server::fuzzing::duration` (its doc says what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| konductor_server::fuzzing::duration(data));
