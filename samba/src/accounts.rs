//! The private state tree of a cerfs Samba and its accounts: the admin account is unix root
//! in a private passdb (mapped from the admin name by the username map); guests are nobody.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::{Result, SambaConfig, SambaError, SambaTools};

/// The unix account the admin account is mapped to: the only uid cerfs lets change
/// policy.txt and status.txt.
pub const ADMIN_UNIX_USER: &str = "root";

/// The unix account guests act as.
pub const GUEST_UNIX_USER: &str = "nobody";

/// Subdirectories of the state tree, with their modes.
const STATE_SUBDIRS: [(&str, u32); 8] = [
    ("lock", 0o755),
    ("state", 0o755),
    ("cache", 0o755),
    ("run", 0o755),
    ("private", 0o700),
    ("ncalrpc", 0o755),
    ("bind-dns", 0o700),
    ("usershares", 0o755),
];

/// Creates the state tree of `config` (missing directories only; an existing passdb is
/// kept) and writes smb.conf and the username map afresh. Returns the smb.conf path.
///
/// # Errors
/// The configuration is invalid, or a directory or file cannot be written.
pub fn prepare_state_dir(config: &SambaConfig) -> Result<PathBuf> {
    let conf = config.render()?;
    create_dir(&config.state_dir, 0o755)?;
    for (name, mode) in STATE_SUBDIRS {
        create_dir(&config.state_dir.join(name), mode)?;
    }
    let map = match &config.admin_user {
        Some(admin) => format!(
            "# Written by cerfs: the admin account acts as unix {ADMIN_UNIX_USER}.\n\
             {ADMIN_UNIX_USER} = {admin}\n"
        ),
        None => String::new(),
    };
    write_file(&config.username_map_path(), &map)?;
    let conf_path = config.conf_path();
    write_file(&conf_path, &conf)?;
    Ok(conf_path)
}

/// Gives the admin account (unix root in the private passdb) `password`, or, with `None`,
/// removes it so that nobody can act as root over SMB.
///
/// # Errors
/// The password cannot be passed to smbpasswd (empty, or holds a line break), or
/// smbpasswd/pdbedit failed.
pub fn set_admin_password(
    tools: &SambaTools,
    config: &SambaConfig,
    password: Option<&str>,
) -> Result<()> {
    let conf = config.conf_path();
    match password {
        Some(password) => {
            if password.is_empty() || password.contains(['\n', '\r', '\0']) {
                return Err(SambaError::Invalid(
                    "the admin password must be one non-empty line".to_owned(),
                ));
            }
            let input = format!("{password}\n{password}\n");
            let out = run(
                Command::new(&tools.smbpasswd).arg("-c").arg(&conf).args([
                    "-s",
                    "-a",
                    ADMIN_UNIX_USER,
                ]),
                Some(&input),
                "smbpasswd (setting the admin password)",
            )?;
            check(out, "smbpasswd -a root (setting the admin password)")
        }
        None => {
            let listed = run(
                Command::new(&tools.pdbedit).arg("-s").arg(&conf).arg("-L"),
                None,
                "pdbedit -L",
            )?;
            let has_root = String::from_utf8_lossy(&listed.stdout)
                .lines()
                .any(|line| line.split(':').next() == Some(ADMIN_UNIX_USER));
            if !has_root {
                return Ok(());
            }
            let out = run(
                Command::new(&tools.pdbedit).arg("-s").arg(&conf).args([
                    "-x",
                    "-u",
                    ADMIN_UNIX_USER,
                ]),
                None,
                "pdbedit -x root",
            )?;
            check(out, "pdbedit -x root (removing the admin account)")
        }
    }
}

fn run(command: &mut Command, input: Option<&str>, what: &str) -> Result<Output> {
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SambaError::io(format!("cannot run {what}"), e))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| SambaError::io(format!("cannot feed {what}"), e))?;
    }
    child
        .wait_with_output()
        .map_err(|e| SambaError::io(format!("cannot wait for {what}"), e))
}

fn check(out: Output, what: &str) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    Err(SambaError::Command {
        what: what.to_owned(),
        status: out.status.to_string(),
        output: text.trim().to_owned(),
    })
}

fn create_dir(dir: &Path, mode: u32) -> Result<()> {
    match fs::DirBuilder::new().recursive(true).mode(mode).create(dir) {
        Ok(()) => {}
        Err(e) => {
            return Err(SambaError::io(
                format!("cannot create {}", dir.display()),
                e,
            ))
        }
    }
    // An existing directory keeps whatever mode it had: set ours.
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(|e| SambaError::io(format!("cannot chmod {}", dir.display()), e))
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|e| SambaError::io(format!("cannot write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn prepares_the_tree_and_the_map() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = SambaConfig {
            share: "cer".to_owned(),
            path: PathBuf::from("/srv/cer"),
            state_dir: dir.path().join("samba"),
            listen: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            port: 14400,
            guest: true,
            admin_user: Some("ceradmin".to_owned()),
            smb1: false,
            log_level: 1,
        };
        let conf = prepare_state_dir(&config).expect("prepare");
        assert_eq!(conf, config.state_dir.join("smb.conf"));
        for (name, mode) in STATE_SUBDIRS {
            let meta = fs::metadata(config.state_dir.join(name)).expect(name);
            assert_eq!(meta.permissions().mode() & 0o777, mode, "{name}");
        }
        let map = fs::read_to_string(config.username_map_path()).expect("map");
        assert!(map.lines().any(|l| l == "root = ceradmin"), "{map}");
        // A second start rewrites the files and keeps the tree.
        let config = SambaConfig {
            admin_user: None,
            ..config
        };
        prepare_state_dir(&config).expect("prepare again");
        let map = fs::read_to_string(config.username_map_path()).expect("map");
        assert_eq!(map, "");
    }

    /// testparm (from samba-common-bin) must read the generated file without a complaint:
    /// no unknown parameter, no global parameter in the share section, no missing directory.
    #[test]
    fn testparm_accepts_the_generated_conf() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = SambaConfig {
            share: "cer".to_owned(),
            path: dir.path().to_path_buf(),
            state_dir: dir.path().join("samba"),
            listen: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            port: 14400,
            guest: true,
            admin_user: Some("ceradmin".to_owned()),
            smb1: true,
            log_level: 1,
        };
        let conf = prepare_state_dir(&config).expect("prepare");
        let out = match Command::new("testparm")
            .args(["-s", "--suppress-prompt"])
            .arg(&conf)
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                if std::env::var_os("CERFS_REQUIRE_FUSE").is_some_and(|v| v == "1") {
                    panic!("CERFS_REQUIRE_FUSE=1 but testparm cannot run: {e}");
                }
                eprintln!("skipping: testparm cannot run ({e}): apt-get install samba");
                return;
            }
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        for complaint in [
            "Unknown parameter",
            "Ignoring",
            "found in service section",
            "ERROR",
            "WARNING",
        ] {
            assert!(
                !stderr.contains(complaint),
                "testparm: {complaint}:\n{stderr}"
            );
        }
    }

    /// The admin account is root in the private passdb while a password is given, and is
    /// removed again when cerfs starts without one.
    #[test]
    fn admin_account_comes_and_goes_with_the_password() {
        let tools = match SambaTools::find() {
            Ok(tools) => tools,
            Err(e) => {
                if std::env::var_os("CERFS_REQUIRE_FUSE").is_some_and(|v| v == "1") {
                    panic!("CERFS_REQUIRE_FUSE=1 but Samba is missing: {e}");
                }
                eprintln!("skipping: {e}");
                return;
            }
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let config = SambaConfig {
            share: "cer".to_owned(),
            path: dir.path().to_path_buf(),
            state_dir: dir.path().join("samba"),
            listen: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            port: 14400,
            guest: true,
            admin_user: Some("ceradmin".to_owned()),
            smb1: false,
            log_level: 1,
        };
        let accounts = |config: &SambaConfig| {
            let out = Command::new(&tools.pdbedit)
                .arg("-s")
                .arg(config.conf_path())
                .arg("-L")
                .output()
                .expect("pdbedit -L");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        prepare_state_dir(&config).expect("prepare");
        set_admin_password(&tools, &config, Some("first pw")).expect("add root");
        set_admin_password(&tools, &config, Some("second pw")).expect("change root's password");
        assert!(accounts(&config).lines().any(|l| l.starts_with("root:")));
        assert!(set_admin_password(&tools, &config, Some("two\nlines")).is_err());
        let config = SambaConfig {
            admin_user: None,
            ..config
        };
        prepare_state_dir(&config).expect("prepare again");
        set_admin_password(&tools, &config, None).expect("remove root");
        assert!(!accounts(&config).lines().any(|l| l.starts_with("root:")));
        set_admin_password(&tools, &config, None).expect("nothing to remove");
    }
}
