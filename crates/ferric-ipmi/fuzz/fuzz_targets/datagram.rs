//! Feeds arbitrary datagrams to every decoder, to a fresh BMC session layer, and to both ends
//! of an established session (raw, and sealed with its keys); nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferric_ipmi::fuzz::fuzz_entry(data);
});
