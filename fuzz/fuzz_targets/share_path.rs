//! Share paths (R1-R4): a name check never panics and accepts only R3 names; a subpath of
//! accepted components maps to a bucket that keeps them.
#![no_main]

use cerfs_fs_core::share_path::{bucket_key, check_component, client_path_len, FORBIDDEN_CHARS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = Vec::new();
    for piece in data.split(|b| *b == b'\\') {
        if let Ok(name) = check_component(piece) {
            assert_eq!(name.as_bytes(), piece);
            assert!(name
                .bytes()
                .all(|b| b.is_ascii() && !b.is_ascii_control() && !FORBIDDEN_CHARS.contains(&b)));
            parts.push(name);
        }
    }
    if !parts.is_empty() {
        let key = bucket_key(&parts);
        assert_eq!(key.subpath, parts.join("\\"));
        assert_eq!(
            client_path_len(parts.iter().copied()),
            key.subpath.len() + 1
        );
        if let Some(app) = key.app {
            assert_eq!(app.to_vec(), parts);
        }
    }
});
