//! Waiting to be told to stop, for the commands that serve in the foreground.
//!
//! Unix: SIGINT (Ctrl-C) or SIGTERM, through signal-hook's iterator. `cerfs mount` and
//! `cerfs serve` on Unix use that iterator themselves, because they also stop on an
//! external unmount or when Samba exits; `cerfs http` uses [`StopSignals`].
//!
//! Windows: Ctrl-C or Ctrl-Break in the console (the C runtime turns them into SIGINT and
//! SIGBREAK), or SIGTERM raised in the process; signal-hook's `flag` is the part of it that
//! works there. Closing the console window is not caught: Windows then ends the process,
//! and WinFsp removes its mount with it. UNVERIFIED on Windows (README.md, "Windows").

#[cfg(unix)]
mod imp {
    use anyhow::{Context, Result};
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;

    /// SIGINT and SIGTERM, caught from [`StopSignals::install`] on: they stop the command
    /// in order instead of killing the process.
    pub(crate) struct StopSignals(Signals);

    impl StopSignals {
        /// Catches the signals.
        pub(crate) fn install() -> Result<Self> {
            let signals =
                Signals::new([SIGINT, SIGTERM]).context("cannot install signal handlers")?;
            Ok(Self(signals))
        }

        /// Blocks until one of them arrives and returns its name.
        pub(crate) fn wait(mut self) -> Option<&'static str> {
            self.0.forever().next().map(signal_name)
        }
    }

    /// Name of a signal we handle, for the log.
    pub(crate) fn signal_name(signal: i32) -> &'static str {
        match signal {
            SIGINT => "SIGINT",
            SIGTERM => "SIGTERM",
            _ => "a signal",
        }
    }
}

#[cfg(windows)]
mod imp {
    use std::ffi::c_int;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    use anyhow::{Context, Result};
    use signal_hook::consts::{SIGBREAK, SIGINT, SIGTERM};

    /// What is caught, with its name for the log.
    const SIGNALS: [(c_int, &str); 3] = [
        (SIGINT, "Ctrl-C"),
        (SIGBREAK, "Ctrl-Break"),
        (SIGTERM, "SIGTERM"),
    ];

    /// How often [`StopSignals::wait`] looks whether one arrived.
    const POLL: Duration = Duration::from_millis(100);

    /// Ctrl-C, Ctrl-Break and SIGTERM, caught from [`StopSignals::install`] on. Holds the
    /// position in [`SIGNALS`] + 1 of the last one received, 0 before any.
    pub(crate) struct StopSignals(Arc<AtomicUsize>);

    impl StopSignals {
        /// Catches the signals.
        pub(crate) fn install() -> Result<Self> {
            let received = Arc::new(AtomicUsize::new(0));
            for (position, (signal, name)) in SIGNALS.iter().enumerate() {
                signal_hook::flag::register_usize(*signal, Arc::clone(&received), position + 1)
                    .with_context(|| format!("cannot catch {name}"))?;
            }
            Ok(Self(received))
        }

        /// Blocks until one of them arrives and returns its name.
        pub(crate) fn wait(self) -> Option<&'static str> {
            loop {
                match self.0.load(Ordering::SeqCst) {
                    0 => thread::sleep(POLL),
                    position => return SIGNALS.get(position - 1).map(|(_, name)| *name),
                }
            }
        }
    }
}

#[cfg(unix)]
pub(crate) use imp::signal_name;
pub(crate) use imp::StopSignals;
