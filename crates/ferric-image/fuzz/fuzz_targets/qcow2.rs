//! Feeds arbitrary bytes to the streaming qcow2 reader (and its second-fetch phase); the
//! reader must never panic, and on success must have emitted every guest byte once.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferric_image::qcow2::fuzz_entry(data);
});
