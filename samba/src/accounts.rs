//! The private state tree of a cerfs Samba and its accounts: the admin account is a
//! dedicated unix account (not root) in a private passdb, mapped from the admin name by
//! the username map; every other name, root's included, is a guest (unix nobody) or
//! refused; repeated wrong passwords lock the admin account for a while.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::{Result, SambaConfig, SambaError, SambaTools};

/// The unix account the admin account acts as by default (created as a system account
/// when missing): the uid cerfs lets change policy.txt and status.txt.
pub const DEFAULT_ADMIN_UNIX_USER: &str = "cerfs-admin";

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

/// How many wrong passwords lock an account, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// Wrong passwords in a row that lock the account (0: never).
    pub attempts: u32,
    /// Minutes the account stays locked (and after which the count of wrong passwords
    /// starts again).
    pub minutes: u32,
}

impl Default for Lockout {
    fn default() -> Self {
        Lockout {
            attempts: 5,
            minutes: 5,
        }
    }
}

/// Creates the state tree of `config` (missing directories only; an existing passdb is
/// kept) and writes smb.conf and the username map afresh. Returns the smb.conf path.
///
/// The state directory must be root's own: a real directory (not a symbolic link), owned
/// by root and writable by nobody else (readable by all: smbd needs that; the passdb is in
/// its 0700 `private/`), under parents nobody else can swap; otherwise it is
/// refused rather than repaired. Files are written under a new name and renamed into
/// place, never through a link someone planted.
///
/// # Errors
/// The configuration is invalid, the state directory is not safe, or a directory or file
/// cannot be written.
pub fn prepare_state_dir(config: &SambaConfig) -> Result<PathBuf> {
    let conf = config.render()?;
    // 0755, not 0700: smbd's per-client processes, acting as the client's unix user,
    // look up other smbd processes under lock/ (g_lock's holder checks); denied, they
    // take live locks for dead ones and corrupt the share mode database. What must stay
    // secret is in private/ (0700).
    secure_dir(&config.state_dir, 0o755)?;
    for (name, mode) in STATE_SUBDIRS {
        secure_dir(&config.state_dir.join(name), mode)?;
    }
    let map = username_map(config);
    write_file(&config.username_map_path(), &map)?;
    let conf_path = config.conf_path();
    write_file(&conf_path, &conf)?;
    Ok(conf_path)
}

/// The username map: the admin name acts as the admin unix account (and stops the map
/// there); root and the admin unix account's own name are mapped to the guest, so that
/// nobody logs in as them directly.
fn username_map(config: &SambaConfig) -> String {
    let unix = &config.admin_unix_user;
    let mut map = String::from(
        "# Written by cerfs at every start: edit `cerfs serve`'s options, not this file.\n",
    );
    if let Some(admin) = &config.admin_user {
        map.push_str(&format!("!{unix} = {admin}\n"));
    }
    map.push_str(&format!("{GUEST_UNIX_USER} = root {unix}\n"));
    map
}

/// The uid of unix account `name`, creating it as a system account (no home, no shell)
/// when it does not exist.
///
/// # Errors
/// The account database cannot be read, or useradd failed.
pub fn ensure_unix_account(name: &str) -> Result<u32> {
    if let Some(uid) = uid_of(name)? {
        return Ok(uid);
    }
    let out = run(
        Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            "--comment",
            "cerfs admin account (SMB)",
            name,
        ]),
        None,
        "useradd",
    )?;
    check(
        out,
        &format!("useradd {name} (creating the admin unix account)"),
    )?;
    tracing::info!(
        account = name,
        "created the system account the SMB admin acts as"
    );
    uid_of(name)?.ok_or_else(|| {
        SambaError::Invalid(format!(
            "account {name} was created but getent does not find it"
        ))
    })
}

/// The uid of unix account `name`, if it exists (`getent passwd`).
fn uid_of(name: &str) -> Result<Option<u32>> {
    let out = run(
        Command::new("getent").args(["passwd", name]),
        None,
        "getent passwd",
    )?;
    if !out.status.success() {
        return Ok(None);
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let uid = line
        .split(':')
        .nth(2)
        .and_then(|u| u.trim().parse().ok())
        .ok_or_else(|| SambaError::Invalid(format!("getent passwd {name} printed {line:?}")))?;
    if uid == 0 {
        return Err(SambaError::Invalid(format!(
            "account {name} is root (uid 0): the SMB admin must act as an account of its own"
        )));
    }
    Ok(Some(uid))
}

/// Gives the admin account (the admin unix account in the private passdb) `password`, or,
/// with `None`, removes it so that nobody can act as the admin over SMB. A `root` entry
/// an older cerfs left in the passdb is removed either way.
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
    let unix = config.admin_unix_user.as_str();
    remove_account(tools, &conf, "root")?;
    match password {
        Some(password) => {
            if password.is_empty() || password.contains(['\n', '\r', '\0']) {
                return Err(SambaError::Invalid(
                    "the admin password must be one non-empty line".to_owned(),
                ));
            }
            let input = format!("{password}\n{password}\n");
            let out = run(
                Command::new(&tools.smbpasswd)
                    .arg("-c")
                    .arg(&conf)
                    .args(["-s", "-a", unix]),
                Some(&input),
                "smbpasswd (setting the admin password)",
            )?;
            check(
                out,
                &format!("smbpasswd -a {unix} (setting the admin password)"),
            )
        }
        None => remove_account(tools, &conf, unix),
    }
}

/// Removes `user` from the passdb, if it is there.
fn remove_account(tools: &SambaTools, conf: &Path, user: &str) -> Result<()> {
    let listed = run(
        Command::new(&tools.pdbedit).arg("-s").arg(conf).arg("-L"),
        None,
        "pdbedit -L",
    )?;
    let present = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .any(|line| line.split(':').next() == Some(user));
    if !present {
        return Ok(());
    }
    let out = run(
        Command::new(&tools.pdbedit)
            .arg("-s")
            .arg(conf)
            .args(["-x", "-u", user]),
        None,
        "pdbedit -x",
    )?;
    check(out, &format!("pdbedit -x {user} (removing an account)"))
}

/// Sets the passdb's lockout policy (stored in the state tree, set again at every start).
///
/// # Errors
/// pdbedit failed.
pub fn apply_lockout(tools: &SambaTools, config: &SambaConfig) -> Result<()> {
    let conf = config.conf_path();
    let lockout = config.lockout;
    for (policy, value) in [
        ("bad lockout attempt", lockout.attempts),
        ("lockout duration", lockout.minutes),
        ("reset count minutes", lockout.minutes.max(1)),
    ] {
        let out = run(
            Command::new(&tools.pdbedit).arg("-s").arg(&conf).args([
                "-P",
                policy,
                "-C",
                &value.to_string(),
            ]),
            None,
            "pdbedit -P",
        )?;
        check(out, &format!("pdbedit -P {policy:?} (the lockout policy)"))?;
    }
    Ok(())
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

/// Makes `dir` exist as root's own directory with `mode`: a missing one is created (its
/// missing parents too); an existing one must not be a link, must be root's and writable
/// by nobody else; its parents must be root's and either writable by nobody else or sticky
/// (as /tmp), so that nobody else can swap it.
fn secure_dir(dir: &Path, mode: u32) -> Result<()> {
    let refuse = |why: String| {
        Err(SambaError::Invalid(format!(
            "refusing the Samba state directory {}: {why}; give a directory of root's \
             (chown root: and chmod 755, or a new path with --state-dir)",
            dir.display()
        )))
    };
    for parent in dir
        .ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
    {
        let Ok(meta) = fs::metadata(parent) else {
            continue;
        };
        let sticky = meta.mode() & 0o1000 != 0;
        if meta.uid() != 0 || (meta.mode() & 0o022 != 0 && !sticky) {
            return refuse(format!(
                "its parent {} is not root's alone (owner uid {}, mode {:o})",
                parent.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ));
        }
    }
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => return refuse("it is a symbolic link".into()),
        Ok(meta) if !meta.is_dir() => return refuse("it is not a directory".into()),
        Ok(meta) if meta.uid() != 0 => {
            return refuse(format!("it belongs to uid {}, not root", meta.uid()))
        }
        Ok(meta) if meta.mode() & 0o022 != 0 => {
            return refuse(format!(
                "mode {:o} lets other users write in it",
                meta.mode() & 0o7777
            ))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(dir)
                .map_err(|e| SambaError::io(format!("cannot create {}", dir.display()), e))?;
        }
        Err(e) => {
            return Err(SambaError::io(
                format!("cannot look at {}", dir.display()),
                e,
            ))
        }
    }
    // Checked above not to be a link: set the mode cerfs wants on it.
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(|e| SambaError::io(format!("cannot chmod {}", dir.display()), e))
}

/// Writes `text` to `path` under a new name in the same (root-only) directory, then renames
/// it into place: a link planted at `path` is replaced, never followed.
fn write_file(path: &Path, text: &str) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.cerfs-{}", std::process::id()));
    let _ = fs::remove_file(&temp);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()));
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(SambaError::io(
            format!("cannot write {}", temp.display()),
            e,
        ));
    }
    fs::rename(&temp, path)
        .map_err(|e| SambaError::io(format!("cannot rename {} into place", temp.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    /// A configuration for these tests: the port is only written into smb.conf, never bound.
    fn test_config(path: PathBuf, state_dir: PathBuf) -> SambaConfig {
        SambaConfig {
            share: "cer".to_owned(),
            path,
            state_dir,
            listen: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            port: 14400,
            guest: true,
            admin_user: Some("ceradmin".to_owned()),
            admin_unix_user: DEFAULT_ADMIN_UNIX_USER.to_owned(),
            lockout: Lockout::default(),
            smb1: false,
            log_level: 1,
            ctdbd_socket: None,
        }
    }

    #[test]
    fn prepares_the_tree_and_the_map() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = test_config(PathBuf::from("/srv/cer"), dir.path().join("samba"));
        let conf = prepare_state_dir(&config).expect("prepare");
        assert_eq!(conf, config.state_dir.join("smb.conf"));
        for (name, mode) in STATE_SUBDIRS {
            let meta = fs::metadata(config.state_dir.join(name)).expect(name);
            assert_eq!(meta.permissions().mode() & 0o777, mode, "{name}");
        }
        let map = fs::read_to_string(config.username_map_path()).expect("map");
        assert!(map.lines().any(|l| l == "!cerfs-admin = ceradmin"), "{map}");
        assert!(
            map.lines().any(|l| l == "nobody = root cerfs-admin"),
            "{map}"
        );
        // A second start rewrites the files and keeps the tree.
        let config = SambaConfig {
            admin_user: None,
            ..config
        };
        prepare_state_dir(&config).expect("prepare again");
        let map = fs::read_to_string(config.username_map_path()).expect("map");
        assert!(!map.contains("ceradmin"), "{map}");
        assert!(
            map.lines().any(|l| l == "nobody = root cerfs-admin"),
            "{map}"
        );
    }

    /// A state directory someone else could write, or a link, is refused and left as it
    /// was; a link planted where a generated file goes is replaced, not followed.
    #[test]
    fn refuses_state_dirs_others_could_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = |state_dir: PathBuf| SambaConfig {
            admin_user: None,
            ..test_config(PathBuf::from("/srv/cer"), state_dir)
        };
        if !nix_is_root()
            && cerfs_testkit::unavailable("only root owns what a state directory must be owned by")
        {
            return;
        }
        let open = dir.path().join("open");
        fs::create_dir(&open).expect("mkdir");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).expect("chmod");
        let err = prepare_state_dir(&config(open.clone())).expect_err("1777 refused");
        assert!(err.to_string().contains("lets other users write"), "{err}");
        let mode = fs::metadata(&open).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode, 0o1777, "left as it was");

        let target = dir.path().join("target");
        fs::create_dir(&target).expect("mkdir");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let err = prepare_state_dir(&config(link)).expect_err("link refused");
        assert!(err.to_string().contains("symbolic link"), "{err}");

        let good = config(dir.path().join("good"));
        prepare_state_dir(&good).expect("prepare");
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").expect("write");
        fs::remove_file(good.conf_path()).expect("rm");
        std::os::unix::fs::symlink(&victim, good.conf_path()).expect("plant");
        prepare_state_dir(&good).expect("prepare again");
        assert_eq!(fs::read_to_string(&victim).expect("read"), "precious");
        let meta = fs::symlink_metadata(good.conf_path()).expect("stat");
        assert!(meta.is_file(), "the link was replaced by the file");
    }

    fn nix_is_root() -> bool {
        fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false)
    }

    /// testparm (from samba-common-bin) must read the generated file without a complaint:
    /// no unknown parameter, no global parameter in the share section, no missing directory.
    #[test]
    fn testparm_accepts_the_generated_conf() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = SambaConfig {
            smb1: true,
            ..test_config(dir.path().to_path_buf(), dir.path().join("samba"))
        };
        let conf = prepare_state_dir(&config).expect("prepare");
        let Some(testparm) = cerfs_testkit::skip::find_tool("testparm") else {
            cerfs_testkit::unavailable(
                "testparm is not installed (apt-get install samba-common-bin)",
            );
            return;
        };
        let out = Command::new(testparm)
            .args(["-s", "--suppress-prompt"])
            .arg(&conf)
            .output()
            .expect("testparm runs");
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

    /// The admin account (the admin unix account in the private passdb) exists while a
    /// password is given, and is removed again when cerfs starts without one.
    #[test]
    fn admin_account_comes_and_goes_with_the_password() {
        let tools = match SambaTools::find() {
            Ok(tools) => tools,
            Err(e) => {
                cerfs_testkit::unavailable(&e.to_string());
                return;
            }
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let config = test_config(dir.path().to_path_buf(), dir.path().join("samba"));
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
        ensure_unix_account(&config.admin_unix_user).expect("admin unix account");
        set_admin_password(&tools, &config, Some("first pw")).expect("add the admin");
        set_admin_password(&tools, &config, Some("second pw")).expect("change its password");
        let is_admin = |l: &str| l.starts_with("cerfs-admin:");
        assert!(accounts(&config).lines().any(is_admin));
        assert!(!accounts(&config).lines().any(|l| l.starts_with("root:")));
        assert!(set_admin_password(&tools, &config, Some("two\nlines")).is_err());
        let config = SambaConfig {
            admin_user: None,
            ..config
        };
        prepare_state_dir(&config).expect("prepare again");
        set_admin_password(&tools, &config, None).expect("remove the admin");
        assert!(!accounts(&config).lines().any(is_admin));
        set_admin_password(&tools, &config, None).expect("nothing to remove");
    }
}
