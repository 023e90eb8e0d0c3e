#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| meshmux_fuzz::gateway::check(data));
