//! Runs Samba in front of a cerfs share: the smb.conf of a FUSE-backed MS-CER share
//! ([`SambaConfig`], rendered from `samba-config/smb.conf.in`), its private state tree and
//! accounts ([`prepare_state_dir`], [`set_admin_password`]), and a supervised `smbd` with
//! its `samba-dcerpcd` in one process group ([`Samba`]).
//!
//! Nothing here knows about FUSE or the store: `cerfs serve` mounts the share, then uses this
//! crate to export the mount; the tests use it as well to run a plain Samba share over a plain
//! directory for comparison.

mod accounts;
mod config;
mod error;
mod server;
mod tools;

pub use accounts::{
    apply_lockout, ensure_unix_account, prepare_state_dir, set_admin_password, Lockout,
    DEFAULT_ADMIN_UNIX_USER, GUEST_UNIX_USER,
};
pub use config::{
    share_stanza, validate_share_name, validate_user_name, SambaConfig, DEFAULT_PORT, TEMPLATE,
};
pub use error::SambaError;
pub use server::{port_available, ExitWatch, Samba};
pub use tools::SambaTools;

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, SambaError>;
