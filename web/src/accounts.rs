//! Console accounts: the users file (one `name:role:hash` line each, the hash an Argon2id
//! PHC string), sessions kept by the server (a random id in an HttpOnly, SameSite=Strict
//! cookie, and a CSRF token per session for every form), and login throttling per
//! address. Memory stays bounded: sessions and throttle entries are capped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

/// How long a session lasts without a new login.
pub const SESSION_TIME: Duration = Duration::from_secs(8 * 3600);
/// Failed logins from one address before it must wait.
pub const MAX_FAILURES: u32 = 5;
/// The window failures are counted in, and the wait after too many.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// Sessions (and throttled addresses) kept at most.
const MAX_ENTRIES: usize = 10_000;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads every page and the API.
    Viewer,
    /// Also changes settings and downloads cabs (dumps can hold secrets).
    Admin,
}

impl Role {
    /// As written in the users file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        }
    }

    fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Problems with the users file.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A line is not `name:role:hash`.
    #[error("{path} line {line}: {why} (each line is NAME:viewer|admin:ARGON2-HASH; add users with `cerfs web-user add`)")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// A name that cannot be an account.
    #[error("{0:?} cannot be an account name: use letters, digits, '.', '_' or '-'")]
    BadName(String),
    /// An empty password.
    #[error("the password is empty")]
    EmptyPassword,
    /// Hashing failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// The accounts of a users file.
#[derive(Debug, Default)]
pub struct Users {
    accounts: HashMap<String, (Role, String)>,
    /// A hash checked for unknown names, so that they take as long as known ones.
    dummy: String,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl Users {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Users, AccountsError> {
        let text = std::fs::read_to_string(path).map_err(|source| AccountsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut users = Users::parse(&text, path)?;
        users.dummy = hash_password("cerfs: no such account")?;
        Ok(users)
    }

    fn parse(text: &str, path: &Path) -> Result<Users, AccountsError> {
        let mut accounts = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| AccountsError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
                why: why.to_owned(),
            };
            let mut parts = line.splitn(3, ':');
            let (Some(name), Some(role), Some(hash)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("not three fields"));
            };
            if !valid_name(name) {
                return Err(bad("a bad account name"));
            }
            let role = Role::parse(role).ok_or_else(|| bad("the role is not viewer or admin"))?;
            if !hash.starts_with("$argon2") {
                return Err(bad("the hash is not an Argon2 PHC string"));
            }
            if accounts
                .insert(name.to_owned(), (role, hash.to_owned()))
                .is_some()
            {
                return Err(bad("the account is listed twice"));
            }
        }
        Ok(Users {
            accounts,
            dummy: String::new(),
        })
    }

    /// The accounts and their roles, by name.
    pub fn list(&self) -> Vec<(String, Role)> {
        let mut all: Vec<(String, Role)> = self
            .accounts
            .iter()
            .map(|(name, (role, _))| (name.clone(), *role))
            .collect();
        all.sort();
        all
    }

    /// How many accounts.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// The role of `name` if `password` is its password. Costs an Argon2 verification
    /// (tens of milliseconds) also for an unknown name, so that timing tells nothing.
    pub fn check(&self, name: &str, password: &str) -> Option<Role> {
        let (role, hash) = match self.accounts.get(name) {
            Some((role, hash)) => (Some(*role), hash.as_str()),
            None => (None, self.dummy.as_str()),
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok();
        if ok {
            role
        } else {
            None
        }
    }
}

/// An Argon2id hash of `password` (PHC string).
pub fn hash_password(password: &str) -> Result<String, AccountsError> {
    if password.is_empty() {
        return Err(AccountsError::EmptyPassword);
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AccountsError::Hash(e.to_string()))
}

/// Adds `name` (or replaces its line) in the users file at `path` (created if missing,
/// mode 0600), written to a temporary file and renamed.
pub fn set_user(path: &Path, name: &str, role: Role, password: &str) -> Result<(), AccountsError> {
    if !valid_name(name) {
        return Err(AccountsError::BadName(name.to_owned()));
    }
    let hash = hash_password(password)?;
    edit(path, name, Some(format!("{name}:{}:{hash}", role.as_str())))
}

/// Removes `name` from the users file; false if it was not there.
pub fn remove_user(path: &Path, name: &str) -> Result<bool, AccountsError> {
    let before = Users::load(path)?;
    if !before.accounts.contains_key(name) {
        return Ok(false);
    }
    edit(path, name, None)?;
    Ok(true)
}

fn edit(path: &Path, name: &str, line: Option<String>) -> Result<(), AccountsError> {
    let io = |source| AccountsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    Users::parse(&old, path)?;
    let prefix = format!("{name}:");
    let mut lines: Vec<String> = old
        .lines()
        .filter(|l| !l.trim().starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    lines.extend(line);
    let mut text = lines.join("\n");
    text.push('\n');
    let tmp = path.with_extension("cerfs-part");
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// A logged-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The account.
    pub user: String,
    /// What it may do.
    pub role: Role,
    /// The token every form of this session carries.
    pub csrf: String,
    expires: Instant,
}

/// 32 random bytes, hex.
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    // The OS's generator failing is not something to serve on.
    if let Err(e) = getrandom::fill(&mut bytes) {
        panic!("no random numbers from the operating system: {e}");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two tokens in constant time.
pub fn same_token(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The sessions of a running console.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// A new session for `user`; returns its id.
    pub fn create(&self, user: &str, role: Role) -> String {
        let id = token();
        let session = Session {
            user: user.to_owned(),
            role,
            csrf: token(),
            expires: Instant::now() + SESSION_TIME,
        };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_ENTRIES {
            // The oldest goes: a flood of logins cannot grow memory.
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(id.clone(), session);
        id
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// Failed logins per address.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Throttle {
    /// `Err(wait)` while `addr` has failed too often.
    pub fn check(&self, addr: IpAddr) -> Result<(), Duration> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&addr) {
            Some((since, n)) if *n >= MAX_FAILURES && since.elapsed() < FAILURE_WINDOW => {
                Err(FAILURE_WINDOW - since.elapsed())
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed login of `addr`.
    pub fn failed(&self, addr: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (since, _)| since.elapsed() < FAILURE_WINDOW);
        }
        if map.len() >= MAX_ENTRIES {
            return; // full of live entries: the others are throttled already
        }
        let entry = map.entry(addr).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= FAILURE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    /// Forgets `addr`'s failures after a good login.
    pub fn succeeded(&self, addr: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_file_round_trips_and_checks_passwords() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("users");
        set_user(&path, "ann", Role::Admin, "s3cret").expect("add ann");
        set_user(&path, "bob", Role::Viewer, "pw").expect("add bob");
        set_user(&path, "bob", Role::Viewer, "new").expect("replace bob");
        let users = Users::load(&path).expect("load");
        assert_eq!(users.len(), 2);
        assert_eq!(users.check("ann", "s3cret"), Some(Role::Admin));
        assert_eq!(users.check("ann", "wrong"), None);
        assert_eq!(users.check("bob", "pw"), None);
        assert_eq!(users.check("bob", "new"), Some(Role::Viewer));
        assert_eq!(users.check("carl", "pw"), None);
        assert!(remove_user(&path, "bob").expect("remove"));
        assert!(!remove_user(&path, "bob").expect("again"));
        assert!(matches!(
            set_user(&path, "a:b", Role::Viewer, "x"),
            Err(AccountsError::BadName(_))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn bad_lines_are_named() {
        let err = Users::parse("ann:root:$argon2id$x\n", Path::new("u")).expect_err("role");
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = Users::parse("# c\nann:admin:plain\n", Path::new("u")).expect_err("hash");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn five_failures_make_an_address_wait() {
        let t = Throttle::default();
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..MAX_FAILURES {
            assert!(t.check(ip).is_ok());
            t.failed(ip);
        }
        assert!(t.check(ip).is_err());
        t.succeeded(ip);
        assert!(t.check(ip).is_ok());
    }

    #[test]
    fn sessions_are_found_by_id_and_end() {
        let s = Sessions::default();
        let id = s.create("ann", Role::Admin);
        let got = s.get(&id).expect("session");
        assert_eq!(got.role, Role::Admin);
        assert_eq!(got.csrf.len(), 64);
        assert!(s.get("nope").is_none());
        s.remove(&id);
        assert!(s.get(&id).is_none());
        assert!(same_token("ab", "ab") && !same_token("ab", "ac") && !same_token("ab", "abc"));
    }
}
