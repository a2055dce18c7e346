//! The steps of a [MS-CER] 1.0 client (section 3.1.7), done with plain file operations
//! (`std::fs`) on a share root: a cerfs FUSE mount, a plain directory, or a path behind
//! Samba. The `cer-client` binary loops over [`report`]; the integration tests call the
//! single steps to check each one.
//!
//! Paths on disk use `/`; the subpath as the client writes it into crash.log uses `\`.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// How a client increments an existing count.txt (MS-CER 3.1.7 step 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountPattern {
    /// One handle opened read+write: read all, parse, seek 0, write, truncate to the
    /// written length, close.
    A,
    /// Open read-only, read, close; then open for writing with truncate, write, close.
    B,
}

/// Counters of one count.txt (MS-CER 2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// `Cabs Gathered=`: reports copied to the share.
    pub cabs_gathered: u64,
    /// `Total Hits=`: reports made.
    pub total_hits: u64,
}

impl Counts {
    /// The counters as count.txt text, CRLF line ends.
    pub fn render(self) -> String {
        format!(
            "Cabs Gathered={}\r\nTotal Hits={}\r\n",
            self.cabs_gathered, self.total_hits
        )
    }

    /// Parses count.txt text: both lines present, any order, CRLF or LF; nothing else.
    pub fn parse(text: &[u8]) -> Option<Counts> {
        let text = std::str::from_utf8(text).ok()?;
        let (mut cabs, mut hits) = (None, None);
        for line in text.split_terminator('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let (name, value) = line.split_once('=')?;
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let value: u64 = value.parse().ok()?;
            let slot = match name {
                "Cabs Gathered" => &mut cabs,
                "Total Hits" => &mut hits,
                _ => return None,
            };
            if slot.replace(value).is_some() {
                return None;
            }
        }
        Some(Counts {
            cabs_gathered: cabs?,
            total_hits: hits?,
        })
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.cabs_gathered, self.total_hits)
    }
}

/// An error subpath (MS-CER 2.2.3): its components, e.g. `["blue"]` or
/// `["App", "1.0.0.0", "Mod", "1.0.0.0", "0000abcd"]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subpath(pub Vec<String>);

impl Subpath {
    /// Parses `a\b\c` (or `a/b/c`).
    pub fn parse(s: &str) -> Subpath {
        Subpath(
            s.split(['\\', '/'])
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// The application-fault bucket number `k` of the simulator (R1): `App<k>\1.0.0.0\
    /// Mod<k>\2.0.0.0\<8 hex digits>`.
    pub fn app_bucket(k: usize) -> Subpath {
        Subpath(vec![
            format!("App{k}"),
            "1.0.0.0".to_owned(),
            format!("Mod{k}"),
            "2.0.0.0".to_owned(),
            format!("{:08x}", 0xabcd + k),
        ])
    }

    /// The subpath as the Windows client writes it (crash.log item): joined with `\`.
    pub fn backslashed(&self) -> String {
        self.0.join("\\")
    }

    /// `root/<top>/<component>/...` on disk.
    pub fn dir_under(&self, root: &Path, top: &str) -> PathBuf {
        let mut p = root.join(top);
        for c in &self.0 {
            p.push(c);
        }
        p
    }
}

impl fmt::Display for Subpath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.backslashed())
    }
}

/// The configuration a client derives from policy.txt and status.txt (3.1.7 steps 1–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// `Tracking=`: write crash.log and hits.log (default NO).
    pub tracking: bool,
    /// `Crashes per bucket=`: at most that many cabs (default 5).
    pub crashes_per_bucket: u64,
    /// `iData=`: collect a cab. Absent means yes (2.2.5; see the spec digest's Decision).
    pub idata: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tracking: false,
            crashes_per_bucket: 5,
            idata: true,
        }
    }
}

impl Config {
    /// Applies the well-formed `name=value` lines of a settings file over `self` (R8: a
    /// bad line is ignored).
    pub fn apply(&mut self, text: &[u8]) {
        for line in text.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            match name {
                "Tracking" => {
                    if let Some(b) = parse_bool(value) {
                        self.tracking = b;
                    }
                }
                "iData" => {
                    if let Some(b) = parse_bool(value) {
                        self.idata = b;
                    }
                }
                "Crashes per bucket" => {
                    if let Ok(n) = value.parse() {
                        self.crashes_per_bucket = n;
                    }
                }
                _ => {}
            }
        }
    }
}

/// A CERBoolean (case-insensitive YES/TRUE/1/NO/FALSE/0).
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_uppercase().as_str() {
        "YES" | "TRUE" | "1" => Some(true),
        "NO" | "FALSE" | "0" => Some(false),
        _ => None,
    }
}

/// Reads a whole file; `Ok(None)` when it does not exist.
pub fn read_if_present(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Steps 1–2: reads `<root>/policy.txt` and `status/<sub>/status.txt` if present;
/// status.txt wins.
pub fn read_config(root: &Path, sub: &Subpath) -> io::Result<Config> {
    let mut config = Config::default();
    if let Some(policy) = read_if_present(&root.join("policy.txt")).map_err(ctx("policy.txt"))? {
        config.apply(&policy);
    }
    let status = sub.dir_under(root, "status").join("status.txt");
    if let Some(status) = read_if_present(&status).map_err(ctx("status.txt"))? {
        config.apply(&status);
    }
    Ok(config)
}

/// Step 3: the counters in `counts/<sub>/count.txt`, zero when absent (open, read, close).
pub fn read_counts(root: &Path, sub: &Subpath) -> io::Result<Counts> {
    let path = sub.dir_under(root, "counts").join("count.txt");
    match read_if_present(&path).map_err(ctx("read count.txt"))? {
        None => Ok(Counts::default()),
        Some(bytes) => Counts::parse(&bytes).ok_or_else(|| bad_count(&bytes)),
    }
}

/// R5: creates `<root>/<top>/<sub>` one level at a time (`<top>` too), tolerating levels
/// that exist.
pub fn mkdir_levels(root: &Path, top: &str, sub: &Subpath) -> io::Result<PathBuf> {
    let mut dir = root.to_path_buf();
    for c in std::iter::once(top).chain(sub.0.iter().map(String::as_str)) {
        dir.push(c);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(ctx(format!("mkdir {}", dir.display()))(e)),
        }
    }
    Ok(dir)
}

/// Step 7: writes a new cab `dir/name` (exclusive create) from `content` in 64 KiB writes;
/// returns its sha256 (hex) and length.
pub fn write_cab(dir: &Path, name: &str, content: &mut dyn Read) -> io::Result<(String, u64)> {
    let path = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = content.read(&mut buf)?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])
            .map_err(ctx(format!("write {}", path.display())))?;
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    // Close explicitly so that the error of close (FUSE flush: the commit) is seen.
    close(file).map_err(ctx(format!("close {}", path.display())))?;
    Ok((hex::encode(hasher.finalize()), len))
}

/// Closes `file` and returns the error of close(2), which std's drop ignores. On a FUSE
/// mount close(2) sends FLUSH and reports its error: that is where cerfs commits a cab,
/// applies a count.txt or stores log lines, so a client must see it.
pub use cerfs_testkit::close_checked as close;

/// Step 8 when count.txt exists: increments by (`cabs`, 1) with `pattern`. Returns the
/// values written, or `Ok(None)` when count.txt does not exist (the caller then creates
/// it with [`create_counts`]).
pub fn increment_counts(
    root: &Path,
    sub: &Subpath,
    cabs: u64,
    pattern: CountPattern,
) -> io::Result<Option<Counts>> {
    let path = sub.dir_under(root, "counts").join("count.txt");
    let bump = |c: Counts| Counts {
        cabs_gathered: c.cabs_gathered + cabs,
        total_hits: c.total_hits + 1,
    };
    match pattern {
        CountPattern::A => {
            let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(ctx("open count.txt read+write")(e)),
            };
            let mut old = Vec::new();
            file.read_to_end(&mut old).map_err(ctx("read count.txt"))?;
            let new = bump(Counts::parse(&old).ok_or_else(|| bad_count(&old))?);
            let text = new.render();
            file.seek(SeekFrom::Start(0))
                .map_err(ctx("seek count.txt"))?;
            file.write_all(text.as_bytes())
                .map_err(ctx("write count.txt"))?;
            file.set_len(text.len() as u64)
                .map_err(ctx("truncate count.txt"))?;
            close(file).map_err(ctx("close count.txt"))?;
            Ok(Some(new))
        }
        CountPattern::B => {
            let old = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(ctx("read count.txt")(e)),
            };
            let new = bump(Counts::parse(&old).ok_or_else(|| bad_count(&old))?);
            let mut file = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&path)
                .map_err(ctx("open count.txt for overwrite"))?;
            file.write_all(new.render().as_bytes())
                .map_err(ctx("write count.txt"))?;
            close(file).map_err(ctx("close count.txt"))?;
            Ok(Some(new))
        }
    }
}

/// Step 8 when count.txt does not exist: creates it (create + truncate, as a client that
/// found none) with `Cabs Gathered=<cabs>` and `Total Hits=1`. Returns the values written.
pub fn create_counts(root: &Path, sub: &Subpath, cabs: u64) -> io::Result<Counts> {
    let path = sub.dir_under(root, "counts").join("count.txt");
    let new = Counts {
        cabs_gathered: cabs,
        total_hits: 1,
    };
    write_whole(&path, new.render().as_bytes()).map_err(ctx("create count.txt"))?;
    Ok(new)
}

/// Step 8: increments count.txt if it exists, else creates it. Returns the values written.
pub fn update_counts(
    root: &Path,
    sub: &Subpath,
    cabs: u64,
    pattern: CountPattern,
) -> io::Result<Counts> {
    match increment_counts(root, sub, cabs, pattern)? {
        Some(c) => Ok(c),
        None => create_counts(root, sub, cabs),
    }
}

/// Opens `path` with create + write + truncate, writes `bytes`, closes (error of close
/// reported).
pub fn write_whole(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(bytes)?;
    close(file)
}

/// One crash.log / hits.log entry (MS-CER 2.2.2): `Time SP SP Date HTAB Machine HTAB User
/// HTAB Item CRLF`, with `when` already formatted as `HH:MM:SS  MM-DD-YYYY`.
pub fn log_line(when: &str, machine: &str, user: &str, item: &str) -> String {
    format!("{when}\t{machine}\t{user}\t{item}\r\n")
}

/// Step 9: makes sure `path` exists without truncating it (open for writing, create if
/// missing), then writes `line` at the end it sees (seek to end, write), then closes.
pub fn append_line(path: &Path, line: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(ctx(format!("open {}", path.display())))?;
    file.seek(SeekFrom::End(0))
        .map_err(ctx(format!("seek {}", path.display())))?;
    file.write_all(line.as_bytes())
        .map_err(ctx(format!("append to {}", path.display())))?;
    close(file).map_err(ctx(format!("close {}", path.display())))
}

/// `HH:MM:SS  MM-DD-YYYY` for `t`, in UTC (the simulator has no time zone database; the
/// log grammar carries no zone, so the share cannot tell).
pub fn format_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{:02}:{:02}:{:02}  {:02}-{:02}-{:04}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        m,
        d,
        y
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A small deterministic pseudo-random generator (SplitMix64): the same seed gives the
/// same choices and cab bytes on every run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A random cab file name like a CER client's: 8 lowercase letters or digits + `.cab`.
    pub fn cab_name(&mut self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut name: String = (0..8)
            .map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize] as char)
            .collect();
        name.push_str(".cab");
        name
    }
}

/// A reader of `len` pseudo-random bytes from `rng` (the content of a synthetic cab).
#[derive(Debug)]
pub struct RandomBytes {
    rng: Rng,
    left: u64,
}

impl RandomBytes {
    /// `len` bytes drawn from a generator seeded with `seed`.
    pub fn new(seed: u64, len: u64) -> RandomBytes {
        RandomBytes {
            rng: Rng::new(seed),
            left: len,
        }
    }
}

impl Read for RandomBytes {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        for chunk in buf[..n].chunks_mut(8) {
            let word = self.rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Where a cab's bytes come from.
#[derive(Debug, Clone)]
pub enum CabSource {
    /// Pseudo-random bytes of this length (seeded per cab).
    Random(u64),
    /// A copy of this file (a real cabinet).
    File(PathBuf),
}

/// What one client identity writes into the logs.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Machine name (1–15 characters, no TAB/CR/LF).
    pub machine: String,
    /// User name (1–256 characters, no TAB/CR/LF).
    pub user: String,
}

/// A cab one report copied to the share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CabWritten {
    /// Its bucket.
    pub sub: Subpath,
    /// Its file name in `cabs/<sub>/`.
    pub name: String,
    /// sha256 of its content, lowercase hex.
    pub sha256: String,
    /// Its length in bytes.
    pub len: u64,
}

/// What one report did (the parts that succeeded).
#[derive(Debug, Clone, Default)]
pub struct ReportOutcome {
    /// The cab copied in step 7, if any.
    pub cab: Option<CabWritten>,
    /// The counters written in step 8, if that step succeeded.
    pub counts: Option<Counts>,
    /// Whether step 9 ran (tracking on) and both appends succeeded.
    pub logged: bool,
    /// Every error met, with the step it happened in.
    pub errors: Vec<String>,
}

/// One full report cycle (3.1.7 steps 1–9) for bucket `sub`. Errors do not stop the
/// report where the spec says to go on (a failed copy still counts a hit); each is
/// recorded in [`ReportOutcome::errors`].
pub fn report(
    root: &Path,
    sub: &Subpath,
    rng: &mut Rng,
    cab: &CabSource,
    pattern: CountPattern,
    who: &Identity,
) -> ReportOutcome {
    let mut out = ReportOutcome::default();
    // Steps 1–2.
    let config = match read_config(root, sub) {
        Ok(c) => c,
        Err(e) => {
            out.errors.push(format!("step 1 (settings) {sub}: {e}"));
            Config::default()
        }
    };
    // Step 3.
    let gathered = match read_counts(root, sub) {
        Ok(c) => c.cabs_gathered,
        Err(e) => {
            out.errors.push(format!("step 3 (count.txt) {sub}: {e}"));
            0
        }
    };
    let want_cab = gathered < config.crashes_per_bucket && config.idata;
    // R5: both trees this report touches.
    let cab_dir = match mkdir_levels(root, "cabs", sub) {
        Ok(d) => Some(d),
        Err(e) => {
            out.errors.push(format!("mkdir cabs {sub}: {e}"));
            None
        }
    };
    if let Err(e) = mkdir_levels(root, "counts", sub) {
        out.errors.push(format!("mkdir counts {sub}: {e}"));
        return out;
    }
    // Steps 4–7.
    if let (true, Some(dir)) = (want_cab, &cab_dir) {
        match copy_cab(dir, rng, cab) {
            Ok((name, sha256, len)) => {
                out.cab = Some(CabWritten {
                    sub: sub.clone(),
                    name,
                    sha256,
                    len,
                });
            }
            Err(e) => out.errors.push(format!("step 7 (copy cab) {sub}: {e}")),
        }
    }
    // Step 8.
    let cabs = u64::from(out.cab.is_some());
    match update_counts(root, sub, cabs, pattern) {
        Ok(c) => out.counts = Some(c),
        Err(e) => out.errors.push(format!("step 8 (count.txt) {sub}: {e}")),
    }
    // Step 9.
    if config.tracking {
        let when = format_time(SystemTime::now());
        let crash = log_line(&when, &who.machine, &who.user, &sub.backslashed());
        let item = out.cab.as_ref().map_or("No CAB", |c| c.name.as_str());
        let hits = log_line(&when, &who.machine, &who.user, item);
        let mut ok = true;
        if let Err(e) = append_line(&root.join("crash.log"), &crash) {
            out.errors.push(format!("step 9 (crash.log) {sub}: {e}"));
            ok = false;
        }
        match &cab_dir {
            Some(dir) => {
                if let Err(e) = append_line(&dir.join("hits.log"), &hits) {
                    out.errors.push(format!("step 9 (hits.log) {sub}: {e}"));
                    ok = false;
                }
            }
            None => ok = false,
        }
        out.logged = ok;
    }
    out
}

/// Step 7 with a fresh random name (retrying on the rare name collision).
fn copy_cab(dir: &Path, rng: &mut Rng, cab: &CabSource) -> io::Result<(String, String, u64)> {
    let mut last = None;
    for _ in 0..5 {
        let name = rng.cab_name();
        let result = match cab {
            CabSource::Random(len) => {
                write_cab(dir, &name, &mut RandomBytes::new(rng.next_u64(), *len))
            }
            CabSource::File(path) => {
                let mut src = File::open(path).map_err(ctx(format!("open {}", path.display())))?;
                write_cab(dir, &name, &mut src)
            }
        };
        match result {
            Ok((sha, len)) => return Ok((name, sha, len)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no cab name found")))
}

/// An `InvalidData` error for count.txt content that does not parse.
fn bad_count(bytes: &[u8]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "count.txt does not parse: {:?}",
            String::from_utf8_lossy(bytes)
        ),
    )
}

/// Adds `what` in front of an error's message, keeping its kind and errno visible.
pub fn ctx(what: impl Into<String>) -> impl FnOnce(io::Error) -> io::Error {
    let what = what.into();
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_parse_and_render_round_trip() {
        let c = Counts {
            cabs_gathered: 6,
            total_hits: 11,
        };
        assert_eq!(c.render(), "Cabs Gathered=6\r\nTotal Hits=11\r\n");
        assert_eq!(Counts::parse(c.render().as_bytes()), Some(c));
        assert_eq!(
            Counts::parse(b"Total Hits=11\nCabs Gathered=6\n"),
            Some(c),
            "any order, LF"
        );
        for bad in [
            &b""[..],
            b"Cabs Gathered=6\r\n",
            b"Cabs Gathered=x\r\nTotal Hits=1\r\n",
            b"Cabs Gathered=1\r\nTotal Hits=1\r\nTotal Hits=2\r\n",
            b"garbage\r\n",
        ] {
            assert_eq!(Counts::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn config_applies_good_lines_and_ignores_bad_ones() {
        let mut c = Config::default();
        c.apply(b"Tracking=yes\r\nCrashes per bucket=x\r\niData=0\r\nnonsense\r\n");
        assert_eq!(
            c,
            Config {
                tracking: true,
                crashes_per_bucket: 5,
                idata: false
            }
        );
    }

    #[test]
    fn time_is_formatted_as_the_log_grammar_wants() {
        // 2007-04-23 15:32:23 UTC, the time of example 4.1.
        let t = UNIX_EPOCH + Duration::from_secs(1_177_342_343);
        assert_eq!(format_time(t), "15:32:23  04-23-2007");
        assert_eq!(format_time(UNIX_EPOCH), "00:00:00  01-01-1970");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(format_time(t), "00:00:00  02-29-2000");
    }

    #[test]
    fn subpaths_and_cab_names() {
        let s = Subpath::app_bucket(2);
        assert_eq!(s.backslashed(), "App2\\1.0.0.0\\Mod2\\2.0.0.0\\0000abcf");
        assert_eq!(Subpath::parse(&s.backslashed()), s);
        assert_eq!(
            s.dir_under(Path::new("/r"), "cabs"),
            Path::new("/r/cabs/App2/1.0.0.0/Mod2/2.0.0.0/0000abcf")
        );
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let name = a.cab_name();
        assert_eq!(name, b.cab_name(), "same seed, same name");
        assert_eq!(name.len(), 12);
        assert!(name.ends_with(".cab"));
        let mut bytes = Vec::new();
        RandomBytes::new(1, 100_001)
            .read_to_end(&mut bytes)
            .expect("read random bytes");
        assert_eq!(bytes.len(), 100_001);
    }
}
