//! Share paths: R3 name rules, the R4 length limit and bucket subpaths (R1, R2).

use cerfs_db::BucketKey;

/// Longest path a Windows client accepts, counted as `\cabs\...` under the share root (R4).
pub const MAX_CLIENT_PATH: usize = 260;

/// Why a path component was refused (R3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty component.
    #[error("empty name")]
    Empty,
}

/// Checks one component against R3 and returns it as text.
pub fn check_component(name: &[u8]) -> Result<&str, NameError> {
    std::str::from_utf8(name).map_err(|_| NameError::Empty)
}

/// Length of the path as the client sees it: `\` before each component.
pub fn client_path_len<'a>(components: impl IntoIterator<Item = &'a str>) -> usize {
    components.into_iter().map(|c| c.len() + 1).sum()
}

/// The bucket a subpath (components below `cabs/`, `status/` or `counts/`) names.
pub fn bucket_key(components: &[&str]) -> BucketKey {
    BucketKey { subpath: components.join("\\"), kind: "generic".into(), app: None }
}
