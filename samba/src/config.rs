//! The smb.conf of a cerfs share, rendered from the template `samba-config/smb.conf.in`
//! (embedded in the binary), and the checks that keep every value safe to put in it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::{Result, SambaError};

/// The smb.conf template (`samba-config/smb.conf.in`): a `[global]` section, then the share
/// stanza from the `[@SHARE@]` line on. Placeholders are `@NAME@`.
pub const TEMPLATE: &str = include_str!("../../samba-config/smb.conf.in");

/// The port `cerfs serve` listens on by default: unprivileged, so that trying it out needs no
/// change to a machine's own Samba. Windows clients only speak to port 445: production uses
/// `--port 445`.
pub const DEFAULT_PORT: u16 = 4450;

/// The line where the share stanza starts in [`TEMPLATE`].
const SHARE_HEADER: &str = "[@SHARE@]";
/// The line where the admin share's stanza starts (the last one) in [`TEMPLATE`].
const ADMIN_SHARE_HEADER: &str = "[@ADMIN_SHARE@]";
/// What the admin share's name adds to the share's.
const ADMIN_SHARE_SUFFIX: &str = "-admin";

/// Share names smbd reserves.
const RESERVED_SHARES: [&str; 4] = ["global", "homes", "printers", "ipc$"];

/// Everything the generated smb.conf depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SambaConfig {
    /// The share name clients use (`\\server\<share>`).
    pub share: String,
    /// The directory exported (the cerfs mount).
    pub path: PathBuf,
    /// The private state tree of this Samba: smb.conf, passdb, locks, pid files.
    pub state_dir: PathBuf,
    /// The addresses smbd listens on (at least one; no wildcard).
    pub listen: Vec<IpAddr>,
    /// The TCP port smbd listens on.
    pub port: u16,
    /// Whether unknown users and anonymous clients are let in as the guest (unix nobody).
    pub guest: bool,
    /// The account name that acts as [`SambaConfig::admin_unix_user`] (may change
    /// policy.txt and status.txt); `None`: no admin account.
    pub admin_user: Option<String>,
    /// The unix account the admin acts as: not root, so that the share's own rules and the
    /// kernel's checks apply to the admin as to anyone else.
    pub admin_unix_user: String,
    /// Wrong passwords that lock an account, and for how long.
    pub lockout: crate::Lockout,
    /// Accept SMB1 (NT1) and NTLMv1, for Windows XP and Server 2003 clients.
    pub smb1: bool,
    /// smbd's debug level, 0–10.
    pub log_level: u8,
    /// The local ctdbd's socket when this smbd is one head of a CTDB cluster (serving a
    /// PostgreSQL store with the other heads); `None`: a single server.
    pub ctdbd_socket: Option<PathBuf>,
}

impl SambaConfig {
    /// The generated smb.conf inside the state tree.
    pub fn conf_path(&self) -> PathBuf {
        self.state_dir.join("smb.conf")
    }

    /// The username map inside the state tree (maps the admin name to the admin unix
    /// account, and root's name to the guest).
    pub fn username_map_path(&self) -> PathBuf {
        self.state_dir.join("username.map")
    }

    /// The share the admin account changes things through (encrypted sessions only).
    pub fn admin_share(&self) -> String {
        admin_share_name(&self.share)
    }

    /// Every address and port smbd listens on.
    pub fn socket_addrs(&self) -> Vec<SocketAddr> {
        self.listen
            .iter()
            .map(|ip| SocketAddr::new(*ip, self.port))
            .collect()
    }

    /// Checks every value that goes into smb.conf.
    ///
    /// # Errors
    /// [`SambaError::Invalid`] naming the bad value and what would be accepted.
    pub fn validate(&self) -> Result<()> {
        validate_share_name(&self.share)?;
        validate_share_name(&self.admin_share())?;
        conf_path_value("the share path", &self.path)?;
        conf_path_value("the Samba state directory", &self.state_dir)?;
        if self.listen.is_empty() {
            return Err(SambaError::Invalid(
                "no address to listen on: give at least one --listen ADDR".to_owned(),
            ));
        }
        if let Some(ip) = self.listen.iter().find(|ip| ip.is_unspecified()) {
            return Err(SambaError::Invalid(format!(
                "cannot listen on {ip}: give the addresses of the interfaces to serve \
                 (--listen 192.0.2.10 --listen 127.0.0.1)"
            )));
        }
        if self.port == 0 {
            return Err(SambaError::Invalid(
                "port 0 is not a port: give --port 445 (Windows clients) or another".to_owned(),
            ));
        }
        if let Some(user) = &self.admin_user {
            validate_user_name(user)?;
        }
        validate_user_name(&self.admin_unix_user)?;
        if self.admin_unix_user == "root" {
            return Err(SambaError::Invalid(
                "the admin cannot act as root: give a dedicated account (--admin-unix-user \
                 cerfs-admin)"
                    .to_owned(),
            ));
        }
        if self.log_level > 10 {
            return Err(SambaError::Invalid(format!(
                "Samba log level {} is out of range 0-10",
                self.log_level
            )));
        }
        Ok(())
    }

    /// The whole smb.conf.
    ///
    /// # Errors
    /// A value fails [`SambaConfig::validate`].
    pub fn render(&self) -> Result<String> {
        self.validate()?;
        let state = path_str(&self.state_dir)?;
        let username_map = path_str(&self.username_map_path())?.to_owned();
        let interfaces: Vec<String> = self.listen.iter().map(IpAddr::to_string).collect();
        let clustered = self.ctdbd_socket.is_some();
        let mut values = share_values(
            &self.share,
            &self.path,
            self.guest,
            &self.admin_unix_user,
            clustered,
        )?;
        let socket = match &self.ctdbd_socket {
            Some(path) => conf_path_value("the ctdbd socket", path)?.to_owned(),
            None => String::new(),
        };
        values.extend([
            ("INTERFACES", interfaces.join(" ")),
            ("PORT", self.port.to_string()),
            (
                "MIN_PROTOCOL",
                if self.smb1 { "NT1" } else { "SMB2_02" }.to_owned(),
            ),
            (
                "NTLM_AUTH",
                if self.smb1 {
                    "ntlmv1-permitted"
                } else {
                    "ntlmv2-only"
                }
                .to_owned(),
            ),
            ("STATE_DIR", state.to_owned()),
            (
                "CLUSTERING",
                if clustered { "yes" } else { "no" }.to_owned(),
            ),
            ("CTDBD_SOCKET", socket),
            ("BIND_ONLY", if clustered { "no" } else { "yes" }.to_owned()),
            ("LOG_LEVEL", self.log_level.to_string()),
            ("USERNAME_MAP", username_map),
            (
                "SIGNING",
                if self.guest { "default" } else { "mandatory" }.to_owned(),
            ),
            (
                "MAP_TO_GUEST",
                if self.guest { "Bad User" } else { "Never" }.to_owned(),
            ),
        ]);
        // The admin share exists only while there is an admin.
        let template = match self.admin_user {
            Some(_) => TEMPLATE,
            None => TEMPLATE
                .find(ADMIN_SHARE_HEADER)
                .map_or(TEMPLATE, |end| &TEMPLATE[..end]),
        };
        substitute(template, &values)
    }
}

/// The name of the admin share of `share`.
fn admin_share_name(share: &str) -> String {
    format!("{share}{ADMIN_SHARE_SUFFIX}")
}

/// The share stanzas alone (the share and its admin share), for admins who run their own
/// Samba (`cerfs samba-config`), preceded by comments naming the `[global]` settings they
/// rely on. The admin acts as unix account [`crate::DEFAULT_ADMIN_UNIX_USER`].
///
/// # Errors
/// The share name or path cannot go into smb.conf.
pub fn share_stanza(share: &str, path: &Path, guest: bool, clustered: bool) -> Result<String> {
    validate_share_name(share)?;
    validate_share_name(&admin_share_name(share))?;
    let start = TEMPLATE.find(SHARE_HEADER).ok_or_else(|| {
        SambaError::Invalid("the smb.conf template has no share stanza".to_owned())
    })?;
    let values = share_values(
        share,
        path,
        guest,
        crate::DEFAULT_ADMIN_UNIX_USER,
        clustered,
    )?;
    let stanza = substitute(&TEMPLATE[start..], &values)?;
    let guest_line = if guest {
        "#   map to guest = Bad User   (clients without an account connect as the guest)\n\
         #   guest account = nobody\n"
    } else {
        ""
    };
    let cluster_lines = if clustered {
        "#   clustering = yes          (every head: CTDB holds smbd's shared state)\n\
         #   ctdbd socket = PATH       (the local ctdbd's, if not the default)\n"
    } else {
        ""
    };
    Ok(format!(
        "# cerfs share stanzas (from samba-config/smb.conf.in): add them to your smb.conf.\n\
         # They rely on these settings in [global]:\n\
         #   smb2 leases = no          (no client may cache count.txt or the settings)\n\
         {guest_line}\
         {cluster_lines}\
         #   username map = FILE       (lines `!cerfs-admin = ADMIN` and\n\
         #                              `nobody = root cerfs-admin`; smbpasswd -a cerfs-admin)\n\
         # on a system account cerfs-admin (useradd --system cerfs-admin), and on a cerfs\n\
         # mount with allow_other that knows the admin:\n\
         #   cerfs mount --admin-uid $(id -u cerfs-admin) ...\n\n\
         {stanza}"
    ))
}

/// Checks a share name: 1–80 characters of `A-Z a-z 0-9 _ . -`, not one smbd reserves.
///
/// # Errors
/// [`SambaError::Invalid`] saying what is allowed.
pub fn validate_share_name(name: &str) -> Result<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if name.is_empty() || name.len() > 80 || !ok_chars || name.starts_with('-') {
        return Err(SambaError::Invalid(format!(
            "share name {name:?} is not allowed: use 1-80 of A-Z a-z 0-9 _ . - (for example cer)"
        )));
    }
    if RESERVED_SHARES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(SambaError::Invalid(format!(
            "share name {name:?} is reserved by Samba: choose another (for example cer)"
        )));
    }
    Ok(())
}

/// Checks an account name: 1–64 characters of `A-Z a-z 0-9 _ . -`, not starting with `-`,
/// and not the guest account.
///
/// # Errors
/// [`SambaError::Invalid`] saying what is allowed.
pub fn validate_user_name(name: &str) -> Result<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if name.is_empty() || name.len() > 64 || !ok_chars || name.starts_with('-') {
        return Err(SambaError::Invalid(format!(
            "account name {name:?} is not allowed: use 1-64 of A-Z a-z 0-9 _ . - (for example ceradmin)"
        )));
    }
    if name.eq_ignore_ascii_case(crate::GUEST_UNIX_USER) {
        return Err(SambaError::Invalid(format!(
            "account name {name:?} is the guest account: choose another admin name (for example ceradmin)"
        )));
    }
    Ok(())
}

/// The placeholders of the share stanzas.
fn share_values(
    share: &str,
    path: &Path,
    guest: bool,
    admin_unix_user: &str,
    clustered: bool,
) -> Result<HashMap<&'static str, String>> {
    let path = conf_path_value("the share path", path)?;
    Ok(HashMap::from([
        (
            "VFS_OBJECTS",
            if clustered { "fileid" } else { "" }.to_owned(),
        ),
        ("SHARE", share.to_owned()),
        ("ADMIN_SHARE", admin_share_name(share)),
        ("ADMIN_UNIX_USER", admin_unix_user.to_owned()),
        ("PATH", path.to_owned()),
        ("GUEST_OK", if guest { "yes" } else { "no" }.to_owned()),
    ]))
}

/// A path that smb.conf can hold as it is: absolute, UTF-8, no line break, no `%` (smbd
/// would expand it as a variable), no surrounding blanks (smbd would strip them).
fn conf_path_value<'p>(what: &str, path: &'p Path) -> Result<&'p str> {
    let text = path_str(path)?;
    if !path.is_absolute() {
        return Err(SambaError::Invalid(format!(
            "{what} {text:?} must be absolute for smb.conf"
        )));
    }
    if text.contains(['%', '\n', '\r', '\0']) || text.trim() != text {
        return Err(SambaError::Invalid(format!(
            "{what} {text:?} cannot be written in smb.conf: choose one without '%', line \
             breaks or surrounding blanks"
        )));
    }
    Ok(text)
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| {
        SambaError::Invalid(format!(
            "{} is not UTF-8: choose a UTF-8 path for smb.conf",
            path.display()
        ))
    })
}

/// Replaces every `@NAME@` of `template` in one pass (values are never expanded again).
fn substitute(template: &str, values: &HashMap<&'static str, String>) -> Result<String> {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with('@') {
            let name = &after[..name_len];
            let value = values.get(name).ok_or_else(|| {
                SambaError::Invalid(format!("the smb.conf template uses unknown @{name}@"))
            })?;
            out.push_str(value);
            rest = &after[name_len + 1..];
        } else {
            out.push('@');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn config() -> SambaConfig {
        SambaConfig {
            share: "cer".to_owned(),
            path: PathBuf::from("/run/cerfs/cer/share"),
            state_dir: PathBuf::from("/run/cerfs/cer/samba"),
            listen: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            port: DEFAULT_PORT,
            guest: true,
            admin_user: Some("ceradmin".to_owned()),
            admin_unix_user: "cerfs-admin".to_owned(),
            lockout: crate::Lockout::default(),
            smb1: false,
            log_level: 1,
            ctdbd_socket: None,
        }
    }

    /// The value of `key` in `section` of a rendered smb.conf.
    fn setting(conf: &str, section: &str, key: &str) -> Option<String> {
        let mut current = String::new();
        for line in conf.lines().map(str::trim) {
            if line.starts_with('[') {
                current = line.trim_matches(['[', ']']).to_owned();
            } else if let Some((k, v)) = line.split_once('=') {
                if current == section && !line.starts_with('#') && k.trim() == key {
                    return Some(v.trim().to_owned());
                }
            }
        }
        None
    }

    #[test]
    fn renders_every_placeholder() {
        let conf = config().render().expect("render");
        assert!(!conf.contains("@"), "placeholder left:\n{conf}");
        assert_eq!(
            setting(&conf, "global", "smb ports").as_deref(),
            Some("4450")
        );
        assert_eq!(
            setting(&conf, "global", "interfaces").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            setting(&conf, "global", "lock directory").as_deref(),
            Some("/run/cerfs/cer/samba/lock")
        );
        assert_eq!(
            setting(&conf, "global", "username map").as_deref(),
            Some("/run/cerfs/cer/samba/username.map")
        );
        assert_eq!(
            setting(&conf, "global", "server min protocol").as_deref(),
            Some("SMB2_02")
        );
        assert_eq!(
            setting(&conf, "cer", "path").as_deref(),
            Some("/run/cerfs/cer/share")
        );
        assert_eq!(setting(&conf, "cer", "guest ok").as_deref(), Some("yes"));
        assert_eq!(
            setting(&conf, "cer", "read list").as_deref(),
            Some("cerfs-admin")
        );
        assert_eq!(setting(&conf, "cer-admin", "copy").as_deref(), Some("cer"));
        assert_eq!(
            setting(&conf, "cer-admin", "valid users").as_deref(),
            Some("cerfs-admin")
        );
        assert_eq!(
            setting(&conf, "cer-admin", "smb encrypt").as_deref(),
            Some("required")
        );
        assert_eq!(
            setting(&conf, "cer-admin", "guest ok").as_deref(),
            Some("no")
        );
        for key in [
            "oplocks",
            "level2 oplocks",
            "kernel oplocks",
            "store dos attributes",
        ] {
            assert_eq!(setting(&conf, "cer", key).as_deref(), Some("no"), "{key}");
        }
        assert_eq!(
            setting(&conf, "global", "smb2 leases").as_deref(),
            Some("no")
        );
        assert_eq!(
            setting(&conf, "global", "server signing").as_deref(),
            Some("default")
        );
    }

    #[test]
    fn options_change_what_they_should() {
        let mut c = config();
        c.guest = false;
        c.smb1 = true;
        c.admin_user = None;
        c.listen.push("::1".parse().expect("ip"));
        let conf = c.render().expect("render");
        assert_eq!(setting(&conf, "cer", "guest ok").as_deref(), Some("no"));
        assert_eq!(
            setting(&conf, "global", "map to guest").as_deref(),
            Some("Never")
        );
        assert_eq!(
            setting(&conf, "global", "server signing").as_deref(),
            Some("mandatory")
        );
        assert_eq!(
            setting(&conf, "global", "server min protocol").as_deref(),
            Some("NT1")
        );
        assert_eq!(
            setting(&conf, "global", "ntlm auth").as_deref(),
            Some("ntlmv1-permitted")
        );
        assert!(!conf.contains("[cer-admin]"), "no admin, no admin share");
        // The map stays: it keeps root's name away from the admin even without an admin.
        assert_eq!(
            setting(&conf, "global", "username map").as_deref(),
            Some("/run/cerfs/cer/samba/username.map")
        );
        assert_eq!(
            setting(&conf, "global", "interfaces").as_deref(),
            Some("127.0.0.1 ::1")
        );
    }

    #[test]
    fn refuses_what_smb_conf_cannot_hold() {
        for bad in ["", "global", "IPC$", "a b", "x]y", "-x", &"s".repeat(81)] {
            let mut c = config();
            c.share = bad.to_owned();
            assert!(c.render().is_err(), "share {bad:?}");
        }
        for bad in ["relative", "/with%m", "/line\nbreak", "/trailing "] {
            let mut c = config();
            c.path = PathBuf::from(bad);
            assert!(c.render().is_err(), "path {bad:?}");
        }
        for bad in ["nobody", "a=b", "", "two words"] {
            let mut c = config();
            c.admin_user = Some(bad.to_owned());
            assert!(c.render().is_err(), "user {bad:?}");
        }
        for bad in ["root", "nobody", ""] {
            let mut c = config();
            c.admin_unix_user = bad.to_owned();
            assert!(c.render().is_err(), "admin unix user {bad:?}");
        }
        let mut c = config();
        c.listen = vec!["0.0.0.0".parse().expect("ip")];
        assert!(c.render().is_err());
        c.listen.clear();
        assert!(c.render().is_err());
        let mut c = config();
        c.port = 0;
        assert!(c.render().is_err());
        let mut c = config();
        c.share = "s".repeat(80);
        assert!(c.render().is_err(), "no room for the admin share's name");
    }

    #[test]
    fn stanza_is_the_share_section_only() {
        let text = share_stanza("crashes", Path::new("/srv/cer"), true, false).expect("stanza");
        assert!(!text.contains('@'), "{text}");
        assert!(!text.lines().any(|l| l.trim() == "[global]"), "{text}");
        assert!(text.contains("[crashes]"), "{text}");
        assert_eq!(
            setting(&text, "crashes", "path").as_deref(),
            Some("/srv/cer")
        );
        assert!(text.contains("smb2 leases = no"), "{text}");
        assert!(text.contains("[crashes-admin]"), "{text}");
        let text = share_stanza("cer", Path::new("/srv/cer"), false, false).expect("stanza");
        assert_eq!(setting(&text, "cer", "guest ok").as_deref(), Some("no"));
        assert!(share_stanza("cer", Path::new("srv"), true, false).is_err());
    }

    #[test]
    fn a_clustered_head_uses_ctdb_and_file_ids_every_head_agrees_on() {
        let single = config().render().expect("render");
        assert_eq!(
            setting(&single, "global", "clustering").as_deref(),
            Some("no")
        );
        assert_eq!(setting(&single, "cer", "vfs objects").as_deref(), Some(""));
        assert_eq!(
            setting(&single, "global", "bind interfaces only").as_deref(),
            Some("yes")
        );
        let mut c = config();
        c.ctdbd_socket = Some(PathBuf::from("/run/ctdb/ctdbd.socket"));
        let conf = c.render().expect("render");
        assert_eq!(
            setting(&conf, "global", "clustering").as_deref(),
            Some("yes")
        );
        assert_eq!(
            setting(&conf, "global", "ctdbd socket").as_deref(),
            Some("/run/ctdb/ctdbd.socket")
        );
        assert_eq!(
            setting(&conf, "cer", "vfs objects").as_deref(),
            Some("fileid")
        );
        assert_eq!(
            setting(&conf, "cer", "fileid:algorithm").as_deref(),
            Some("fsname")
        );
        assert_eq!(
            setting(&conf, "global", "bind interfaces only").as_deref(),
            Some("no"),
            "public addresses arrive after smbd started"
        );
        c.ctdbd_socket = Some(PathBuf::from("run/ctdbd.socket"));
        assert!(c.render().is_err(), "a relative socket path");
        let text = share_stanza("cer", Path::new("/srv/cer"), true, true).expect("stanza");
        assert!(text.contains("#   clustering = yes"), "{text}");
        assert_eq!(
            setting(&text, "cer", "vfs objects").as_deref(),
            Some("fileid")
        );
    }

    #[test]
    fn substitution_is_one_pass() {
        let values = HashMap::from([("A", "@B@".to_owned()), ("B", "b".to_owned())]);
        assert_eq!(
            substitute("x @A@ y user@host @", &values).expect("subst"),
            "x @B@ y user@host @"
        );
        assert!(substitute("@NOPE@", &values).is_err());
    }
}
