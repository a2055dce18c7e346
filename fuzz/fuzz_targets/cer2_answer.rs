//! The MS-CER2 level-1 answer: parse never panics; an accepted answer (with BucketTable=)
//! renders and parses back to itself.
#![no_main]

use cerfs_http::Level1Answer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(answer) = Level1Answer::parse(data) {
        if answer.bucket_table != 0 {
            assert_eq!(Level1Answer::parse(&answer.render()), Ok(answer));
        }
    }
});
