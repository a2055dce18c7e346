//! Progress bars of long operations, drawn on stderr only when it is a terminal (scripts
//! and logs get the final line alone).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting bytes out of `total` (0: unknown, a spinner).
pub fn bytes(what: &str, total: u64) -> ProgressBar {
    let bar = if total == 0 {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::new(total)
    };
    let template = if total == 0 {
        "{spinner} {msg} {bytes} ({bytes_per_sec})"
    } else {
        "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// A bar counting items (cabs) out of `total` (0: unknown).
pub fn items(what: &str, total: u64) -> ProgressBar {
    let bar = if total == 0 {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::new(total)
    };
    let template = if total == 0 {
        "{spinner} {msg} {pos}"
    } else {
        "{msg} [{bar:40}] {pos}/{len} ({eta})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}
