//! Minidump facts: parsing arbitrary bytes as a minidump never panics.
#![no_main]

use cerfs_index::parse_minidump;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_minidump("fuzz.dmp", data);
});
