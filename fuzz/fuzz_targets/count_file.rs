//! count.txt (MS-CER 2.2.1): parse never panics; what parses renders and parses back.
#![no_main]

use cerfs_fs_core::count_file::{parse, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(counts) = parse(data) {
        assert_eq!(parse(render(counts).as_bytes()), Ok(counts));
    }
});
