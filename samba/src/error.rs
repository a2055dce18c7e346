//! Why running Samba failed, each message saying what to do about it.

use std::io;

/// Why preparing, starting or stopping Samba failed.
#[derive(Debug, thiserror::Error)]
pub enum SambaError {
    /// A Samba program is not installed.
    #[error("{program} not found: install {package} (apt-get install {package})")]
    Missing {
        /// The program looked for (`smbd`, `smbpasswd`).
        program: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// A setting cannot go into smb.conf (the message says which and why).
    #[error("{0}")]
    Invalid(String),
    /// A file or process operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The error of the operating system.
        #[source]
        source: io::Error,
    },
    /// A Samba tool (smbpasswd, pdbedit) failed.
    #[error("{what} failed ({status}): {output}")]
    Command {
        /// What was being done.
        what: String,
        /// Its exit status.
        status: String,
        /// What it printed.
        output: String,
    },
    /// smbd exited or never became ready.
    #[error("{what}; the last lines Samba logged:\n{log}")]
    Failed {
        /// What happened.
        what: String,
        /// Samba's last log lines.
        log: String,
    },
    /// Some Samba processes survived SIGTERM and SIGKILL.
    #[error(
        "Samba processes {0:?} are still running after SIGKILL: look at them (ps -o pid,stat,cmd -p PID) \
         before unmounting the share"
    )]
    StillRunning(Vec<u32>),
    /// Waiting was given up on request (a signal arrived).
    #[error("interrupted")]
    Cancelled,
}

impl SambaError {
    /// An [`SambaError::Io`] saying what was being done.
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        SambaError::Io {
            what: what.into(),
            source,
        }
    }
}
