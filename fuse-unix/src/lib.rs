//! Thin FUSE adapter of cerfs for Linux: serves a [`cerfs_fs_core::CerFs`] through the
//! kernel's FUSE interface with `fuser`, so that Samba (or any local process) sees the
//! Corporate Error Reporting share as an ordinary directory tree.
//!
//! This crate holds no filesystem logic. Each FUSE callback translates its arguments into
//! one fs-core call and the result into one reply; errno mapping happens in one function.
//! Besides that it only sets up the mount ([`spawn_mount`]) and tears it down
//! ([`Mount::unmount`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use cerfs_fs_core::CerFs;

mod errno;
mod fuse;
mod kernel_cache;
mod translate;

pub use translate::process_of;

/// How to mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Number of FUSE worker threads serving requests concurrently (at least 1). Many
    /// Samba clients sit behind one mount, so this is more than one by default.
    pub threads: usize,
    /// Let users other than the mounting one (Samba's per-client processes) use the mount
    /// (`allow_other`). Root may always set it.
    pub allow_other: bool,
    /// The source name shown in `/proc/self/mountinfo` and `mount` output.
    pub fsname: String,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            threads: 8,
            allow_other: true,
            fsname: "cerfs".to_owned(),
        }
    }
}

/// A mounted cerfs: the FUSE session serving it in background threads.
///
/// Dropping it unmounts without waiting for the worker threads; prefer [`Mount::unmount`].
#[derive(Debug)]
pub struct Mount {
    session: fuser::BackgroundSession,
    end: SessionEnd,
    mountpoint: PathBuf,
}

impl Mount {
    /// The directory this filesystem is mounted on (as given to [`spawn_mount`]).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// A handle that tells when the session has ended, whether by [`Mount::unmount`] or
    /// by an external unmount (`fusermount3 -u`, `umount`).
    pub fn session_end(&self) -> SessionEnd {
        self.end.clone()
    }

    /// Unmounts (unless it already was unmounted externally) and waits until every worker
    /// thread has stopped and the filesystem, with its store, has been dropped.
    ///
    /// # Errors
    /// The unmount failed (for example `EBUSY` while a process still uses the mount; the
    /// session then keeps serving in the background until the process exits), or a worker
    /// thread ended with an error.
    pub fn unmount(self) -> io::Result<()> {
        self.stop(None).map(|_ended| ())
    }

    /// Like [`Mount::unmount`], except when the mount is busy (a process still has a file
    /// or its working directory there): the mount is then detached, as `umount -l` does.
    /// Nothing new can be opened under the mountpoint, and the session goes on serving
    /// what is already open until its last user lets go, or until `grace` has passed.
    ///
    /// Returns whether the session has ended (false: users were still holding files when
    /// `grace` ran out; those files fail once the process exits).
    ///
    /// # Errors
    /// The unmount failed for another reason than being busy, or the detach failed too.
    pub fn unmount_or_detach(self, grace: Duration) -> io::Result<bool> {
        self.stop(Some(grace))
    }

    /// Unmounts; when busy, detaches and waits up to `detach_grace` if given.
    fn stop(self, detach_grace: Option<Duration>) -> io::Result<bool> {
        let Mount {
            session,
            end,
            mountpoint,
        } = self;
        match session.umount_and_join() {
            Ok(()) => {}
            // fuser 0.18 calls umount(2) even when the mount is gone already (its
            // is-still-mounted check always says yes): after an external unmount that
            // fails with EINVAL. The session is over then; wait for its filesystem to go.
            Err(e)
                if e.raw_os_error() == Some(libc::EINVAL)
                    && end.wait_timeout(EXTERNAL_UNMOUNT_GRACE) =>
            {
                tracing::debug!(mountpoint = %mountpoint.display(), "was unmounted externally");
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                let Some(grace) = detach_grace else {
                    return Err(e);
                };
                detach(&mountpoint)?;
                tracing::warn!(
                    mountpoint = %mountpoint.display(),
                    "still in use: detached (nothing new can be opened there); serving the \
                     open files until they are closed, at most {} s",
                    grace.as_secs()
                );
                return Ok(end.wait_timeout(grace));
            }
            Err(e) => return Err(e),
        }
        tracing::debug!(mountpoint = %mountpoint.display(), "FUSE session ended");
        Ok(true)
    }
}

/// Lazy unmount (`MNT_DETACH`) of `mountpoint`.
fn detach(mountpoint: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: umount2(2) with a NUL-terminated path that lives through the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// How long [`Mount::unmount`] waits for a session that was unmounted externally to end.
const EXTERNAL_UNMOUNT_GRACE: Duration = Duration::from_secs(5);

/// Tells when a FUSE session has ended (its filesystem was dropped). Cheap to clone; every
/// clone observes the same session.
#[derive(Debug, Clone, Default)]
pub struct SessionEnd {
    state: Arc<(Mutex<bool>, Condvar)>,
}

impl SessionEnd {
    /// Whether the session has ended.
    pub fn has_ended(&self) -> bool {
        *self.state.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until the session has ended.
    pub fn wait(&self) {
        let (lock, cvar) = &*self.state;
        let ended = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let _ended = cvar
            .wait_while(ended, |ended| !*ended)
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// Blocks until the session has ended or `timeout` has passed; returns whether it ended.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let (lock, cvar) = &*self.state;
        let ended = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (ended, _) = cvar
            .wait_timeout_while(ended, timeout, |ended| !*ended)
            .unwrap_or_else(PoisonError::into_inner);
        *ended
    }

    /// Marks the session as ended and wakes every waiter.
    fn set_ended(&self) {
        let (lock, cvar) = &*self.state;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cvar.notify_all();
    }
}

/// Mounts `fs` on `mountpoint` and serves it from background threads until
/// [`Mount::unmount`] (or an external unmount). `fs` may serve other adapters of the same
/// process too (the CER V2 HTTP server); build it with
/// `.with_process_of(cerfs_fuse::process_of)`, since the kernel names the calling thread
/// and fs-core keys per-client state on processes.
///
/// The mount is ready for use when this returns: the FUSE handshake with the kernel is done.
///
/// # Errors
/// `threads` is 0 (`InvalidInput`), `/dev/fuse` cannot be opened (`NotFound` when it is
/// missing), the mountpoint does not exist (`NotFound`), or the kernel refused the mount
/// (`PermissionDenied` without the right to mount, for example).
pub fn spawn_mount(fs: Arc<CerFs>, mountpoint: &Path, opts: &MountOptions) -> io::Result<Mount> {
    if opts.threads == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "at least one FUSE worker thread is needed",
        ));
    }
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName(opts.fsname.clone()),
        fuser::MountOption::Subtype("cerfs".to_owned()),
        fuser::MountOption::RW,
        fuser::MountOption::NoAtime,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoExec,
        // The kernel checks permissions from the modes and owners cerfs reports (a local
        // user reads no root-only file, chmods nothing not his); fs-core's own rules apply
        // on top.
        fuser::MountOption::DefaultPermissions,
    ];
    config.acl = if opts.allow_other {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    config.n_threads = Some(opts.threads);
    let end = SessionEnd::default();
    let cache = Arc::new(kernel_cache::KernelCache::default());
    let adapter = fuse::CerFsFuse::new(Arc::clone(&fs), end.clone(), Arc::clone(&cache));
    let session = fuser::spawn_mount(adapter, mountpoint, &config)?;
    // Until this is done the kernel caches no volatile attributes.
    cache.start(&fs, session.notifier())?;
    drop(cache);
    tracing::debug!(
        mountpoint = %mountpoint.display(),
        threads = opts.threads,
        allow_other = opts.allow_other,
        "FUSE session started"
    );
    Ok(Mount {
        session,
        end,
        mountpoint: mountpoint.to_path_buf(),
    })
}
