//! status.txt (MS-CER 2.2.5): parse never panics; the accepted pairs
//! render and parse back to themselves with nothing refused.
#![no_main]

use cerfs_fs_core::settings_file::{parse, render, Scope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = parse(Scope::Status, data);
    let again = parse(Scope::Status, &render(&parsed.pairs));
    assert!(again.rejected.is_empty(), "{:?}", again.rejected);
    assert_eq!(again.pairs, parsed.pairs);
});
