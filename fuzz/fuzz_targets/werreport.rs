//! WERREPORT XML (MS-CER2 level 1, UTF-8 or UTF-16): parse never panics, and a parsed
//! report maps to a bucket whose components are valid R3 names.
#![no_main]

use cerfs_fs_core::share_path::check_component;
use cerfs_http::{map_report, parse_report};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = parse_report(data) {
        let mapping = map_report(&report);
        assert!(!mapping.components.is_empty());
        for c in &mapping.components {
            assert!(check_component(c.as_bytes()).is_ok(), "{c:?}");
        }
        let _ = mapping.dump_path("01234567-89ab-cdef-0123-456789abcdef");
    }
});
