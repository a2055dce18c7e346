//! A server's stderr, collected line by line by a thread while the test runs: echoed (so a
//! failing test shows it), kept for assertions, and watched for the line that says the
//! server is ready.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread;

/// The lines a child wrote to its piped stderr so far.
#[derive(Debug, Clone, Default)]
pub struct StderrLog(Arc<Mutex<Vec<String>>>);

impl StderrLog {
    /// Starts collecting `child`'s piped stderr, each line echoed after `prefix`. `ready`
    /// sees each line until it returns `Some`; that value is sent once on the receiver, or
    /// `None` when the stream ends first (the child exited).
    ///
    /// # Panics
    /// When the child's stderr was not piped.
    pub fn collect<T: Send + 'static>(
        child: &mut Child,
        prefix: String,
        mut ready: impl FnMut(&str) -> Option<T> + Send + 'static,
    ) -> (StderrLog, mpsc::Receiver<Option<T>>) {
        let stderr = child.stderr.take().expect("the child's stderr is piped");
        let log = StderrLog::default();
        let lines = Arc::clone(&log.0);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut told = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{prefix}{line}");
                let found = if told { None } else { ready(&line) };
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
                if let Some(value) = found {
                    told = tx.send(Some(value)).is_ok();
                }
            }
            if !told {
                let _ = tx.send(None);
            }
        });
        (log, rx)
    }

    /// Everything logged so far, one line per line.
    pub fn text(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .join("\n")
    }

    /// Waits until a line containing `text` was logged (see [`crate::wait_for_log`]).
    #[track_caller]
    pub fn wait_for(&self, text: &str) {
        crate::wait_for_log(&self.0, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn collects_lines_and_tells_when_ready() {
        let mut child = Command::new("sh")
            .args([
                "-c",
                "echo starting >&2; echo 'ready: 42' >&2; echo after >&2",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh");
        let (log, rx) = StderrLog::collect(&mut child, "sh: ".into(), |line| {
            line.strip_prefix("ready: ")
                .and_then(|n| n.parse::<u32>().ok())
        });
        assert_eq!(rx.recv().expect("told"), Some(42));
        child.wait().expect("wait");
        log.wait_for("after");
        assert_eq!(log.text(), "starting\nready: 42\nafter");
    }

    #[test]
    fn says_none_when_the_child_ends_unready() {
        let mut child = Command::new("sh")
            .args(["-c", "echo failed >&2"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh");
        let (log, rx) = StderrLog::collect(&mut child, String::new(), |_| None::<()>);
        assert_eq!(rx.recv().expect("told"), None);
        child.wait().expect("wait");
        assert_eq!(log.text(), "failed");
    }
}
