//! On Windows, link winfsp-x64.dll with DELAYLOAD (winfsp-rs requires it); nothing elsewhere.

fn main() {
    #[cfg(windows)]
    winfsp::build::winfsp_link_delayload();
}
