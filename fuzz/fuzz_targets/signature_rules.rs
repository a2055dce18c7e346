//! Signature rules: any rule text either compiles or is refused with its line, and signing
//! any frames with rules that compile never panics and stays within MAX_SIGNATURE.
#![no_main]

use cerfs_analysis::{SignatureRules, Signer, MAX_SIGNATURE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first line is the irrelevant list, the second the prefix list (one rule each),
    // the rest frames.
    let mut lines = text.split('\n');
    let rules = SignatureRules {
        irrelevant: lines.next().unwrap_or_default().to_owned(),
        prefix: lines.next().unwrap_or_default().to_owned(),
        max_frames: data.len() % 12,
    };
    let Ok(signer) = Signer::new(&rules) else {
        return;
    };
    let frames: Vec<String> = lines.map(str::to_owned).collect();
    let signature = signer.sign(&frames);
    assert!(signature.len() <= MAX_SIGNATURE, "{signature}");
});
