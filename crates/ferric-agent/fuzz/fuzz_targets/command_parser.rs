//! Fuzzes the command parser: the first line of the input is the query
//! string, the rest the request body (see `ferric_agent::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ferric_agent::fuzzing::parse_input(data);
});
