//! Starting and stopping what the benchmarks measure: `cerfs mount`, `cerfs serve`, bindfs
//! over a plain directory, smbd sharing a plain directory or a bindfs mount. Every process
//! is stopped by its pid, every mount unmounted, when its handle is dropped.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cerfs_samba::{Samba, SambaConfig, SambaTools};

/// How long a server may take to become ready.
const READY: Duration = Duration::from_secs(60);

/// The `cerfs` binary next to this one.
pub fn cerfs_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let bin = exe.with_file_name("cerfs");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p cerfs -p cerfs-bench)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Runs `cerfs ARGS --db DB` (an admin command beside the server) and fails with its stderr
/// unless it succeeds.
pub fn cerfs_admin(db: &Path, args: &[&str]) -> Result<std::process::Output> {
    let out = std::process::Command::new(cerfs_bin()?)
        .args(args)
        .arg("--db")
        .arg(db)
        .output()
        .with_context(|| format!("cannot run cerfs {args:?}"))?;
    if !out.status.success() {
        bail!(
            "cerfs {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Fails unless running as root (FUSE with allow_other and smbd need it).
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    let uid = unsafe { libc::geteuid() };
    if uid != 0 {
        bail!("run as root: the benchmarks mount FUSE filesystems and run smbd");
    }
    if !Path::new("/dev/fuse").exists() {
        bail!("/dev/fuse does not exist: install fuse3 (apt-get install fuse3)");
    }
    Ok(())
}

/// Fails unless Samba and the Python SMB client can run.
pub fn require_samba() -> Result<()> {
    SambaTools::find()
        .map_err(|e| anyhow::anyhow!("install samba (apt-get install samba): {e}"))?;
    if !runs_quietly("python3", &["-c", "import smbprotocol"]) {
        bail!("python3 with smbprotocol is missing: pip install smbprotocol==1.17.0");
    }
    Ok(())
}

/// Makes `dir` (and its parents) and opens it to everybody (smbd acts as nobody).
pub fn open_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
        .with_context(|| format!("chmod {}", dir.display()))
}

/// Waits until `child` (`what`, for messages) has mounted `mountpoint`; fails if it exits
/// first or takes longer than [`READY`].
fn wait_mounted(child: &mut Child, mountpoint: &Path, what: &str) -> Result<()> {
    let start = Instant::now();
    while !is_mounted(mountpoint) {
        if let Ok(Some(status)) = child.try_wait() {
            bail!("{what} exited before mounting ({status})");
        }
        if start.elapsed() > READY {
            bail!("{what} did not mount within {READY:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

pub use cerfs_testkit::is_mounted;

/// Peak resident set (VmHWM) of `pid` in MiB.
pub fn vm_hwm_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM line")?;
    Ok(kib / 1024.0)
}

/// `signal` to `pid`, best effort (it may have exited already).
fn send_signal(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = cerfs_testkit::process::signal(pid, signal);
    }
}

/// SIGTERM to `child`, then SIGKILL after 30 s.
fn stop_child(child: &mut Child) {
    send_signal(child.id(), libc::SIGTERM);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A `cerfs mount` (or `cerfs serve`): the process and its mount point.
pub struct Cerfs {
    child: Child,
    /// Where the share is mounted.
    pub mountpoint: PathBuf,
    /// Samba's state for `serve`: root's alone, as cerfs requires (the work directories
    /// are open to everybody).
    _state: Option<tempfile::TempDir>,
}

impl Cerfs {
    /// The cerfs process id (for VmHWM).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `cerfs mount --db DIR/cer.db DIR/mnt` on a fresh database and waits for the
    /// mount.
    pub fn mount(dir: &Path) -> Result<Cerfs> {
        open_dir(dir)?;
        Cerfs::mount_db(dir)
    }

    /// Runs `cerfs mount --db DIR/cer.db DIR/mnt` (the database may exist) and waits for
    /// the mount.
    pub fn mount_db(dir: &Path) -> Result<Cerfs> {
        Cerfs::mount_on(dir, dir.join("cer.db").as_os_str())
    }

    /// Runs `cerfs mount --db DB DIR/mnt` (DB a file or a PostgreSQL URL) and waits for the
    /// mount.
    pub fn mount_on(dir: &Path, db: &std::ffi::OsStr) -> Result<Cerfs> {
        open_dir(dir)?;
        let mountpoint = dir.join("mnt");
        std::fs::create_dir_all(&mountpoint)?;
        let child = Command::new(cerfs_bin()?)
            .arg("mount")
            .arg("--db")
            .arg(db)
            .arg(&mountpoint)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot run cerfs mount")?;
        let mut cerfs = Cerfs {
            child,
            mountpoint,
            _state: None,
        };
        wait_mounted(&mut cerfs.child, &cerfs.mountpoint, "cerfs mount")?;
        Ok(cerfs)
    }

    /// Runs `cerfs serve` on 127.0.0.1:`port` with its files under `dir`, and waits for
    /// its "ready:" line.
    pub fn serve(dir: &Path, port: u16) -> Result<Cerfs> {
        Cerfs::serve_with(dir, port, &[])
    }

    /// [`Cerfs::serve`] with more arguments (`--web ADDR`, ...).
    pub fn serve_with(dir: &Path, port: u16, extra: &[&str]) -> Result<Cerfs> {
        Cerfs::serve_on(dir, dir.join("cer.db").as_os_str(), port, extra)
    }

    /// [`Cerfs::serve_with`] on the store DB (a file or a PostgreSQL URL).
    pub fn serve_on(dir: &Path, db: &std::ffi::OsStr, port: u16, extra: &[&str]) -> Result<Cerfs> {
        open_dir(dir)?;
        let mountpoint = dir.join("mnt");
        let state = tempfile::Builder::new()
            .prefix("cerfs-bench-samba-")
            .tempdir_in("/tmp")
            .context("cannot create Samba's state directory")?;
        let mut child = Command::new(cerfs_bin()?)
            .arg("serve")
            .arg("--db")
            .arg(db)
            .arg("--mountpoint")
            .arg(&mountpoint)
            .arg("--state-dir")
            .arg(state.path().join("samba"))
            .args(["--listen", "127.0.0.1", "--port", &port.to_string()])
            .args(["--samba-log-level", "0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("CERFS_ADMIN_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run cerfs serve")?;
        let stderr = child.stderr.take().context("piped stderr")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut told = false;
            let mut before = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !told && line.contains("ready: Samba pid") {
                    told = tx.send(Ok(())).is_ok();
                } else if !told {
                    before.push(line);
                } else if line.contains("ERROR") {
                    eprintln!("cerfs serve: {line}");
                }
            }
            if !told {
                let _ = tx.send(Err(before.join("\n")));
            }
        });
        let cerfs = Cerfs {
            child,
            mountpoint,
            _state: Some(state),
        };
        match rx.recv_timeout(READY) {
            Ok(Ok(())) => Ok(cerfs),
            Ok(Err(log)) => bail!("cerfs serve on port {port} exited before it was ready:\n{log}"),
            Err(_) => bail!("cerfs serve on port {port} did not become ready within {READY:?}"),
        }
    }
}

impl Drop for Cerfs {
    fn drop(&mut self) {
        stop_child(&mut self.child);
        if is_mounted(&self.mountpoint) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mountpoint)
                .status();
        }
    }
}

/// Fails unless bindfs (the FUSE floor) can run.
pub fn require_bindfs() -> Result<()> {
    if !runs_quietly("bindfs", &["--version"]) {
        bail!("bindfs is missing: the FUSE floor needs it (apt-get install bindfs)");
    }
    Ok(())
}

/// Whether `program args` runs and exits 0 (its output discarded).
fn runs_quietly(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Unmounts the FUSE mount at `mountpoint`, lazily if something still holds it.
fn fuse_unmount(mountpoint: &Path) {
    if !is_mounted(mountpoint) {
        return;
    }
    let _ = Command::new("fusermount")
        .arg("-u")
        .arg(mountpoint)
        .stderr(Stdio::null())
        .status();
    if is_mounted(mountpoint) {
        eprintln!("{} busy: unmounting lazily", mountpoint.display());
        let _ = Command::new("umount").arg("-l").arg(mountpoint).status();
    }
}

/// bindfs, a FUSE passthrough doing no work, over a plain directory: what FUSE itself
/// costs on this machine. Unmounted and stopped when dropped.
pub struct Bindfs {
    child: Child,
    /// Where the directory is mounted.
    pub mountpoint: PathBuf,
}

impl Bindfs {
    /// Mounts `source` (created, open to everybody) on `mountpoint` and waits for the
    /// mount.
    pub fn mount(source: &Path, mountpoint: &Path) -> Result<Bindfs> {
        open_dir(source)?;
        std::fs::create_dir_all(mountpoint)?;
        // -f keeps it our child, to stop by its pid. Without big_writes libfuse2 writes
        // 4 KiB at a time.
        let child = Command::new("bindfs")
            .arg("-f")
            // Several requests at once, like cerfs's 8 threads (its man page warns of a
            // race in permission changes, which the benchmarks never make).
            .arg("--multithreaded")
            .args(["-o", "allow_other,big_writes,max_write=1048576"])
            .arg(source)
            .arg(mountpoint)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot run bindfs (apt-get install bindfs)")?;
        let mut bindfs = Bindfs {
            child,
            mountpoint: mountpoint.to_path_buf(),
        };
        wait_mounted(&mut bindfs.child, &bindfs.mountpoint, "bindfs")?;
        Ok(bindfs)
    }
}

impl Drop for Bindfs {
    fn drop(&mut self) {
        // Unmounting ends bindfs; the signal is for when it does not.
        fuse_unmount(&self.mountpoint);
        stop_child(&mut self.child);
    }
}

/// smbd with the same generated smb.conf as `cerfs serve`, sharing a plain directory or a
/// bindfs mount over one.
pub struct SambaShare {
    samba: Option<Samba>,
    /// The shared directory (the mount point, over bindfs).
    pub dir: PathBuf,
    /// Dropped after `drop` has stopped smbd, so nothing holds the mount.
    _bindfs: Option<Bindfs>,
    /// Samba's state: root's alone, as cerfs's smb.conf requires.
    _state: tempfile::TempDir,
}

impl SambaShare {
    /// Shares `dir` (created, open to guests) as `cer` on 127.0.0.1:`port`.
    pub fn plain(dir: &Path, state_dir: &Path, port: u16) -> Result<SambaShare> {
        open_dir(dir)?;
        SambaShare::start(dir, state_dir, port, None)
    }

    /// Shares the mount point of `bindfs` as `cer` on 127.0.0.1:`port`; unmounts it when
    /// dropped.
    pub fn over_bindfs(bindfs: Bindfs, state_dir: &Path, port: u16) -> Result<SambaShare> {
        let dir = bindfs.mountpoint.clone();
        SambaShare::start(&dir, state_dir, port, Some(bindfs))
    }

    /// `state_dir` names the run (its last component); the state itself lives in a
    /// private directory of /tmp (the work directories are open to everybody).
    fn start(
        dir: &Path,
        state_dir: &Path,
        port: u16,
        bindfs: Option<Bindfs>,
    ) -> Result<SambaShare> {
        let state = tempfile::Builder::new()
            .prefix("cerfs-bench-samba-")
            .tempdir_in("/tmp")
            .context("cannot create Samba's state directory")?;
        let name = state_dir.file_name().unwrap_or_default();
        let config = SambaConfig {
            share: "cer".to_owned(),
            path: dir.to_path_buf(),
            state_dir: state.path().join(name),
            listen: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            port,
            guest: true,
            admin_user: None,
            admin_unix_user: cerfs_samba::DEFAULT_ADMIN_UNIX_USER.to_owned(),
            lockout: cerfs_samba::Lockout::default(),
            smb1: false,
            log_level: 0,
            ctdbd_socket: None,
        };
        let tools = SambaTools::find().context("install samba (apt-get install samba)")?;
        let conf = cerfs_samba::prepare_state_dir(&config).context("smb.conf")?;
        let samba =
            Samba::start(&tools, &conf).with_context(|| format!("cannot start smbd on {port}"))?;
        let share = SambaShare {
            samba: Some(samba),
            dir: dir.to_path_buf(),
            _bindfs: bindfs,
            _state: state,
        };
        if let Some(samba) = &share.samba {
            samba
                .wait_ready(&config.socket_addrs(), READY, &|| false)
                .with_context(|| format!("smbd on {port} did not become ready"))?;
        }
        Ok(share)
    }
}

impl Drop for SambaShare {
    fn drop(&mut self) {
        if let Some(samba) = self.samba.take() {
            if let Err(e) = samba.stop(Duration::from_secs(10)) {
                eprintln!("stopping smbd over {}: {e}", self.dir.display());
            }
        }
    }
}
