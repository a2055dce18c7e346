//! The one skip rule: a test that cannot get FUSE, smbd or another real component it needs
//! says why and skips when run by a developer, and fails under `CERFS_REQUIRE_FUSE=1` (CI),
//! where every component is installed and a skip would hide a broken setup.

use std::path::Path;
use std::process::{Command, Stdio};

/// The variable CI sets: every real component must be there.
pub const REQUIRE_VAR: &str = "CERFS_REQUIRE_FUSE";

/// Whether real components are required (`CERFS_REQUIRE_FUSE=1`).
pub fn required() -> bool {
    std::env::var_os(REQUIRE_VAR).is_some_and(|v| v == "1")
}

/// A component the test needs is missing: returns `true` after printing
/// `skipping: <why>`, or panics when components are required. Use it as
/// `if unavailable(..) { return; }`.
///
/// # Panics
/// Under `CERFS_REQUIRE_FUSE=1`.
#[track_caller]
pub fn unavailable(why: &str) -> bool {
    assert!(
        !required(),
        "{REQUIRE_VAR}=1 but the test cannot run: {why}"
    );
    eprintln!("skipping: {why}");
    true
}

/// Whether FUSE can be used here; if not, [`unavailable`] with the reason (so `false` is
/// only ever returned when not required).
pub fn fuse_usable() -> bool {
    if Path::new("/dev/fuse").exists() {
        return true;
    }
    !unavailable("/dev/fuse does not exist (apt-get install fuse3; modprobe fuse)")
}

/// Whether the program `tool` is installed (in the usual system directories or on PATH);
/// if not, [`unavailable`] naming the Debian `package` that brings it.
pub fn tool_usable(tool: &str, package: &str) -> bool {
    if find_tool(tool).is_some() {
        return true;
    }
    !unavailable(&format!(
        "{tool} is not installed (apt-get install {package})"
    ))
}

/// Where `tool` is: the sbin and bin directories first (smbd is in /usr/sbin, which is not
/// always on a test's PATH), then PATH.
pub fn find_tool(tool: &str) -> Option<std::path::PathBuf> {
    let system = [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ];
    let path = std::env::var_os("PATH").unwrap_or_default();
    system
        .iter()
        .map(std::path::PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// Whether Python 3 can import `module`; if not, [`unavailable`] saying how to install it
/// (`pip`: the pip requirement).
pub fn python_module_usable(module: &str, pip: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok || !unavailable(&format!(
        "python3 with {module} is missing (pip install {pip})"
    ))
}
