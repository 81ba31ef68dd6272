//! Reads arbitrary bytes as a stream of iSCSI PDUs under the login and full-feature wire
//! configurations, checks every decoded PDU re-encodes to itself, and feeds Login and
//! Text PDUs to fresh target and initiator login machines; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferric_iscsi::fuzz::fuzz_entry(data);
});
