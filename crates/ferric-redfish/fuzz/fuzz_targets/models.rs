//! Feeds arbitrary bytes to every Redfish model parser (and the error body reader); none may
//! panic, and whatever parses must come back unchanged from its own serialization.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferric_redfish::model::fuzz_entry(data);
});
