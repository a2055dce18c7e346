//! The NT create vocabulary WinFsp hands over (dispositions, create options, access
//! rights, file attributes, cleanup flags), and Windows paths. Values from the Windows
//! SDK (`winternl.h`, `winnt.h`) and WinFsp's `fsctl.h`.

use cerfs_fs_core::OpenFlags;

use crate::ntstatus::{NtError, NtResult, STATUS_OBJECT_NAME_INVALID};

/// What to do when the file exists or not: the high byte of WinFsp's `CreateOptions`
/// (`(create_options >> 24) & 0xff`), NtCreateFile's `CreateDisposition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// FILE_SUPERSEDE (0): replace if it exists, else create.
    Supersede,
    /// FILE_OPEN (1): open, fail if missing.
    Open,
    /// FILE_CREATE (2): create, fail if it exists.
    Create,
    /// FILE_OPEN_IF (3): open, else create.
    OpenIf,
    /// FILE_OVERWRITE (4): open and truncate, fail if missing.
    Overwrite,
    /// FILE_OVERWRITE_IF (5): open and truncate, else create.
    OverwriteIf,
}

impl Disposition {
    /// The disposition packed in WinFsp's `create_options`, if valid.
    pub fn from_create_options(create_options: u32) -> Option<Self> {
        Some(match (create_options >> 24) & 0xff {
            0 => Disposition::Supersede,
            1 => Disposition::Open,
            2 => Disposition::Create,
            3 => Disposition::OpenIf,
            4 => Disposition::Overwrite,
            5 => Disposition::OverwriteIf,
            _ => return None,
        })
    }

    /// `create_options` as WinFsp packs them: disposition in the high byte.
    pub fn pack(self, options: u32) -> u32 {
        let d = match self {
            Disposition::Supersede => 0,
            Disposition::Open => 1,
            Disposition::Create => 2,
            Disposition::OpenIf => 3,
            Disposition::Overwrite => 4,
            Disposition::OverwriteIf => 5,
        };
        (d << 24) | (options & 0x00ff_ffff)
    }
}

/// FILE_DIRECTORY_FILE: the object must be (or is created as) a directory.
pub const FILE_DIRECTORY_FILE: u32 = 0x0000_0001;
/// FILE_NON_DIRECTORY_FILE: the object must not be a directory.
pub const FILE_NON_DIRECTORY_FILE: u32 = 0x0000_0040;
/// FILE_DELETE_ON_CLOSE: delete the object at its last close.
pub const FILE_DELETE_ON_CLOSE: u32 = 0x0000_1000;

/// FILE_READ_DATA (FILE_LIST_DIRECTORY on directories).
pub const FILE_READ_DATA: u32 = 0x0000_0001;
/// FILE_WRITE_DATA (FILE_ADD_FILE on directories).
pub const FILE_WRITE_DATA: u32 = 0x0000_0002;
/// FILE_APPEND_DATA (FILE_ADD_SUBDIRECTORY on directories).
pub const FILE_APPEND_DATA: u32 = 0x0000_0004;
/// DELETE.
pub const DELETE: u32 = 0x0001_0000;
/// MAXIMUM_ALLOWED (WinFsp normally resolves it before we see the granted access).
pub const MAXIMUM_ALLOWED: u32 = 0x0200_0000;
/// GENERIC_ALL.
pub const GENERIC_ALL: u32 = 0x1000_0000;
/// GENERIC_WRITE.
pub const GENERIC_WRITE: u32 = 0x4000_0000;
/// GENERIC_READ.
pub const GENERIC_READ: u32 = 0x8000_0000;

/// FILE_ATTRIBUTE_READONLY: committed cabs and other files without write permission.
pub const FILE_ATTRIBUTE_READONLY: u32 = 0x0000_0001;
/// FILE_ATTRIBUTE_DIRECTORY.
pub const FILE_ATTRIBUTE_DIRECTORY: u32 = 0x0000_0010;
/// FILE_ATTRIBUTE_NORMAL: a file with no other attribute.
pub const FILE_ATTRIBUTE_NORMAL: u32 = 0x0000_0080;

/// WinFsp's `FspCleanupDelete` cleanup flag: the file was marked for deletion
/// (FILE_DELETE_ON_CLOSE or a disposition set through `set_delete`).
pub const FSP_CLEANUP_DELETE: u32 = 0x01;

/// The fs-core open flags for the access WinFsp granted: FILE_READ_DATA → read,
/// FILE_WRITE_DATA → write, FILE_APPEND_DATA alone → append (every write at the end);
/// generic rights count too, in case they reach us unmapped.
pub fn open_flags(granted_access: u32) -> OpenFlags {
    let all = granted_access & (GENERIC_ALL | MAXIMUM_ALLOWED) != 0;
    let read = all || granted_access & (FILE_READ_DATA | GENERIC_READ) != 0;
    let write = all || granted_access & (FILE_WRITE_DATA | GENERIC_WRITE) != 0;
    let append = !write && granted_access & FILE_APPEND_DATA != 0;
    OpenFlags {
        read,
        write,
        truncate: false,
        append,
    }
}

/// A path below the volume root, as WinFsp passes it (`\counts\blue\count.txt`), split
/// into its components. The root is the empty path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WinPath {
    parts: Vec<String>,
}

impl WinPath {
    /// Parses a WinFsp file name: `\`-separated (`/` accepted too), leading separator
    /// optional. Empty components are skipped; `.`, `..`, a stream suffix (`name:stream`)
    /// or an embedded NUL are refused with STATUS_OBJECT_NAME_INVALID.
    pub fn parse(name: &str) -> NtResult<Self> {
        let mut parts = Vec::new();
        for part in name.split(['\\', '/']).filter(|p| !p.is_empty()) {
            if part == "." || part == ".." || part.contains(['\0', ':']) {
                return Err(NtError::new(
                    STATUS_OBJECT_NAME_INVALID,
                    format!("path component {part:?} in {name:?}"),
                ));
            }
            parts.push(part.to_owned());
        }
        Ok(WinPath { parts })
    }

    /// The components, root first.
    pub fn parts(&self) -> &[String] {
        &self.parts
    }

    /// Whether this is the volume root.
    pub fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    /// The parent path and the last component (`None` for the root).
    pub fn split_last(&self) -> Option<(WinPath, &str)> {
        let (last, parent) = self.parts.split_last()?;
        Some((
            WinPath {
                parts: parent.to_vec(),
            },
            last.as_str(),
        ))
    }

    /// The path in Windows form (`\a\b`; `\` for the root).
    pub fn to_windows(&self) -> String {
        if self.parts.is_empty() {
            return "\\".to_owned();
        }
        self.parts.iter().map(|p| format!("\\{p}")).collect()
    }
}

impl std::fmt::Display for WinPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_windows())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_round_trip_through_create_options() {
        for d in [
            Disposition::Supersede,
            Disposition::Open,
            Disposition::Create,
            Disposition::OpenIf,
            Disposition::Overwrite,
            Disposition::OverwriteIf,
        ] {
            let packed = d.pack(FILE_NON_DIRECTORY_FILE);
            assert_eq!(Disposition::from_create_options(packed), Some(d));
            assert_eq!(packed & 0x00ff_ffff, FILE_NON_DIRECTORY_FILE);
        }
        assert_eq!(Disposition::from_create_options(9 << 24), None);
    }

    #[test]
    fn access_maps_to_open_flags() {
        let f = open_flags(FILE_READ_DATA);
        assert!(f.read && !f.write && !f.append);
        let f = open_flags(FILE_READ_DATA | FILE_WRITE_DATA | FILE_APPEND_DATA);
        assert!(f.read && f.write && !f.append, "write wins over append");
        let f = open_flags(FILE_APPEND_DATA);
        assert!(!f.read && !f.write && f.append);
        let f = open_flags(GENERIC_READ | GENERIC_WRITE);
        assert!(f.read && f.write);
        let f = open_flags(DELETE);
        assert!(!f.read && !f.write && !f.append && !f.truncate);
    }

    #[test]
    fn paths_split_into_parent_and_name() {
        let p = WinPath::parse("\\counts\\blue\\count.txt").expect("parse");
        assert_eq!(p.parts(), ["counts", "blue", "count.txt"]);
        let (parent, name) = p.split_last().expect("not root");
        assert_eq!(parent.to_windows(), "\\counts\\blue");
        assert_eq!(name, "count.txt");
        assert!(WinPath::parse("\\").expect("root").is_root());
        assert_eq!(WinPath::parse("").expect("root").to_windows(), "\\");
        for bad in ["\\a\\..\\b", "\\x.cab:Zone.Identifier", "\\.\\a"] {
            let e = WinPath::parse(bad).expect_err(bad);
            assert_eq!(e.status, STATUS_OBJECT_NAME_INVALID, "{bad}");
        }
    }
}
