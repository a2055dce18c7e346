//! `cer-step`: runs single file operations one after another in ONE process, pausing
//! where told, so that a test can interleave several client processes exactly (cerfs keys
//! some of its memory on the client's pid) without sleeping.
//!
//! ```text
//! cer-step STEP...
//!   stat PATH            prints `present` or `absent`
//!   read PATH            open read-only, read all, close; prints `read <content>`
//!   overwrite PATH TEXT  open write + create + truncate, one write of TEXT, close;
//!                        prints `written`
//!   wait                 prints `waiting`, then reads one line from stdin
//! ```
//!
//! In TEXT, `\r` and `\n` stand for CR and LF; in printed content CR and LF are shown the
//! same way. Each line is flushed as soon as printed. On the first error it prints
//! `error <errno> <message>` and exits with status 1 (the error of close(2) counts).

use std::fs;
use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use cerfs_e2e::client;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("error {} {e}", e.raw_os_error().unwrap_or(0)));
            ExitCode::FAILURE
        }
    }
}

/// Runs the steps in order.
fn run(args: &[String]) -> io::Result<()> {
    let mut rest = args;
    while let Some((step, tail)) = rest.split_first() {
        rest = match (step.as_str(), tail) {
            ("stat", [path, tail @ ..]) => {
                match fs::metadata(path) {
                    Ok(_) => say("present"),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => say("absent"),
                    Err(e) => return Err(e),
                }
                tail
            }
            ("read", [path, tail @ ..]) => {
                let bytes = fs::read(path)?;
                say(&format!("read {}", escape(&bytes)));
                tail
            }
            ("overwrite", [path, text, tail @ ..]) => {
                client::write_whole(path.as_ref(), unescape(text).as_bytes())?;
                say("written");
                tail
            }
            ("wait", tail) => {
                say("waiting");
                let mut line = String::new();
                io::stdin().lock().read_line(&mut line)?;
                tail
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("bad step at {step:?} (see the documentation)"),
                ))
            }
        };
    }
    Ok(())
}

/// Prints one line and flushes it.
fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// CR → `\r`, LF → `\n`.
fn escape(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace('\r', "\\r")
        .replace('\n', "\\n")
}

/// `\r` → CR, `\n` → LF.
fn unescape(text: &str) -> String {
    text.replace("\\r", "\r").replace("\\n", "\n")
}
