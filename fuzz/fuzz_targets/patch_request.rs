//! Fuzzes `konductor_server::fuzzing::patch_request` (its doc says what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| konductor_server::fuzzing::patch_request(data));
