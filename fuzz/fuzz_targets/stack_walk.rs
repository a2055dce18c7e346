//! Stack walking: walking and signing arbitrary bytes as a minidump (no symbol sources)
//! never panics and always yields a signature.
#![no_main]

use cerfs_analysis::{AnalysisSettings, Walker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A walker per input: one kept across inputs would remember every random module.
    let walker = Walker::new(&AnalysisSettings::default()).expect("the default rules compile");
    let row = walker.walk("fuzz.dmp", data);
    assert!(!row.signature.is_empty());
});
