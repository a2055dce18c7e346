//! crash.log / hits.log lines (MS-CER 2.2.2): parse never panics, an accepted line renders
//! to its very bytes, and what the store keeps (`to_log_line`) loses nothing.
#![no_main]

use cerfs_fs_core::log_line::{parse, render, split_lines, to_log_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (lines, tail) = split_lines(data);
    let mut joined = lines.concat();
    joined.extend_from_slice(tail);
    assert_eq!(joined, data);
    for line in lines.iter().copied().chain(std::iter::once(tail)) {
        if let Ok(fields) = parse(line) {
            assert_eq!(render(&fields), line);
        }
        let kept = to_log_line(line);
        assert!(kept.fields.is_some() || kept.bytes.starts_with(line));
    }
});
