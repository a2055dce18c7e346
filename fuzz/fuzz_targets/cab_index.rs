//! Cab indexing: members, minidumps and text files of an arbitrary cabinet, in process,
//! with small limits.
//!
//! `index_cab` catches panics of the cab and minidump readers and turns them into an
//! error on the cab (the production worker relies on that), so this target replaces
//! libFuzzer's abort-on-panic hook with one that only notes the panic: a panic that escapes
//! `index_cab` still aborts (libfuzzer-sys aborts on an unwinding input), and a caught one
//! must leave an error in the index. Panics inside the readers themselves are listed by
//! running with `CERFS_FUZZ_STRICT_PANICS=1`, which keeps the aborting hook.
#![no_main]

use std::cell::Cell;
use std::sync::Once;

use cerfs_index::{index_cab, Limits};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static PANICKED: Cell<bool> = const { Cell::new(false) };
}

fn note_panics_instead_of_aborting() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        if std::env::var_os("CERFS_FUZZ_STRICT_PANICS").is_none() {
            std::panic::set_hook(Box::new(|_| PANICKED.with(|p| p.set(true))));
        }
    });
}

fuzz_target!(|data: &[u8]| {
    note_panics_instead_of_aborting();
    PANICKED.with(|p| p.set(false));
    let limits = Limits {
        max_members: 64,
        max_dump_bytes: 4 << 20,
        max_text_bytes: 64 << 10,
        max_total_text: 256 << 10,
        max_facts: 200,
        max_total_read: 16 << 20,
        ..Limits::default()
    };
    let index = index_cab(std::io::Cursor::new(data), &limits);
    if PANICKED.with(Cell::get) {
        let flagged = index.error.is_some() || index.members.iter().any(|m| m.error.is_some());
        assert!(
            flagged,
            "a reader panicked but the index reports no error: {index:?}"
        );
    }
});
