//! A model-based test of fs-core: proptest's state machine drives random sequences of
//! open / read / write / flush / release / rename / unlink by several client processes over
//! count.txt, crash.log and hits.log, cabs and plain files, and checks fs-core (over a real
//! SQLite store) against a small reference model of docs/semantics.md after every step:
//!
//! - no increment is lost: a client that read the counters (through its handle, or through
//!   an earlier handle of its process) and writes one report more adds exactly one report,
//!   whatever other clients did in between;
//! - logs only grow, by what clients wrote, in the order their handles applied it;
//! - a committed cab never changes, and a cab being written is not listed;
//! - every refusal (garbage or lower counters, a rewritten log line, writing or deleting a
//!   committed cab, deleting count.txt or a log, moving a CER file) returns its error and
//!   leaves no trace.
//!
//! The model encodes the rules of semantics.md, not fs-core's code. It was checked against
//! bugs planted by hand: with the base of a pattern-b overwrite taken from the counters at
//! the open of the truncated handle instead of what the process was served, or with a log
//! handle's partial last line dropped at release, it failed in each of three runs (256
//! cases of up to 80 steps each).

use std::collections::BTreeMap;
use std::sync::Arc;

use cerfs_db::{Counts, SqliteStore, CABS_INO, COUNTS_INO, ROOT_INO};
use cerfs_fs_core::{count_file, Caller, CerFs, FsError, Ino, OpenFlags, SetAttr};
use proptest::prelude::*;
use proptest::strategy::Union;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

/// Client processes.
const PROCS: u32 = 3;
/// Buckets, each with counts/bN/count.txt and cabs/bN/hits.log.
const BUCKETS: usize = 2;
/// Cab names a client may upload in a bucket.
const CAB_NAMES: [&str; 3] = ["a.cab", "b.cab", "c.cab"];
/// Plain file names in `scratch/`.
const PLAIN_NAMES: [&str; 3] = ["one", "two", "three"];

fn caller(proc: u32) -> Caller {
    Caller {
        pid: 1000 + proc,
        uid: 1000,
        gid: 1000,
    }
}

/// Whoever checks the state: a process of its own, which never writes.
const OBSERVER: Caller = Caller {
    pid: 999,
    uid: 1000,
    gid: 1000,
};

/// Which log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Log {
    Crash,
    Hits(usize),
}

/// What a count.txt write holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CountWrite {
    /// One report more than the client's base, with or without a cab.
    Next { cab: bool },
    /// Text that is not count.txt.
    Garbage,
    /// Fewer hits than the base.
    Lower,
}

/// A line a client appends to a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind {
    /// A line of the MS-CER grammar.
    Valid,
    /// Not the grammar, CRLF-terminated: kept verbatim, flagged.
    Junk,
    /// No terminator (yet): a partial line, completed at release.
    Partial,
}

/// A step of one client.
#[derive(Debug, Clone)]
enum Step {
    /// Open count.txt read-write; `truncate` starts the handle empty (pattern b).
    CountOpen {
        proc: u32,
        bucket: usize,
        truncate: bool,
    },
    /// Read count.txt through the handle (pattern a).
    CountRead { h: u32 },
    /// Write count.txt through the handle (replacing its content).
    CountWrite { h: u32, what: CountWrite },
    /// Open a log for writing at the end it sees.
    LogOpen { proc: u32, log: Log },
    /// Write a line at the end this handle sees.
    LogWrite { h: u32, kind: LineKind, n: u8 },
    /// Write other bytes over the first stored byte of the log (refused).
    LogRewrite { h: u32 },
    /// Create a cab (exclusively).
    CabCreate {
        proc: u32,
        bucket: usize,
        name: usize,
    },
    /// Append bytes to a cab being uploaded.
    CabWrite { h: u32, len: u16, fill: u8 },
    /// Open an existing cab for writing (refused).
    CabOpenWrite {
        proc: u32,
        bucket: usize,
        name: usize,
    },
    /// Create a plain file (exclusively) in scratch/.
    PlainCreate { proc: u32, name: usize },
    /// Write to a plain file at an offset.
    PlainWrite {
        h: u32,
        offset: u16,
        len: u8,
        fill: u8,
    },
    /// A close of a descriptor by its owner (flush), the handle staying open.
    Flush { h: u32 },
    /// Close: flush, then release.
    Close { h: u32 },
    /// Delete something.
    Unlink { target: Target },
    /// Rename a plain file within scratch/.
    RenamePlain {
        from: usize,
        to: usize,
        no_replace: bool,
    },
    /// Move count.txt of a bucket into scratch/ (refused).
    RenameCount { bucket: usize },
}

/// What an unlink aims at.
#[derive(Debug, Clone, Copy)]
enum Target {
    Count(usize),
    Log(Log),
    Cab(usize, usize),
    Plain(usize),
}

/// What the model expects of the last step.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Ok,
    /// A new handle (the model's id).
    Opened(u32),
    /// This content from a read.
    Read(Vec<u8>),
    /// This refusal.
    Err(Refusal),
}

/// fs-core errors, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Invalid,
    NotPermitted,
    Busy,
    Exists,
    NotFound,
}

fn refusal(e: &FsError) -> Option<Refusal> {
    Some(match e {
        FsError::InvalidContent(_) => Refusal::Invalid,
        FsError::NotPermitted(_) => Refusal::NotPermitted,
        FsError::Busy => Refusal::Busy,
        FsError::Exists => Refusal::Exists,
        FsError::NotFound => Refusal::NotFound,
        _ => return None,
    })
}

/// An open handle in the model.
#[derive(Debug, Clone)]
enum Handle {
    Count {
        proc: u32,
        bucket: usize,
        /// The counters at open (what a read shows).
        snapshot: Counts,
        /// Opened with O_TRUNC: starts empty, writes go by the process's earlier reads.
        truncated: bool,
        /// What a read through this handle showed (pattern a's base).
        read: Option<Counts>,
        /// Written and not applied yet: the counters the content asks for (`None`: it does
        /// not parse).
        pending: Option<Option<Counts>>,
        /// Written at all: reads then show what was written.
        written: bool,
    },
    Log {
        log: Log,
        /// The log's length at open: the bytes before it are stored lines.
        base: usize,
        /// Bytes this handle wrote.
        own: Vec<u8>,
        /// How much of `own` is stored as lines already.
        applied: usize,
    },
    Cab {
        bucket: usize,
        name: usize,
        data: Vec<u8>,
    },
    /// A cab this handle committed (at a flush): it only closes now.
    Committed,
    Plain {
        name: usize,
    },
}

/// The reference model: the share as the rules say it must look.
#[derive(Debug, Clone, Default)]
struct Model {
    counts: [Counts; BUCKETS],
    logs: BTreeMap<Log, Vec<u8>>,
    /// Committed cabs, by (bucket, name).
    cabs: BTreeMap<(usize, usize), Vec<u8>>,
    plain: BTreeMap<usize, Vec<u8>>,
    handles: BTreeMap<u32, Handle>,
    next_handle: u32,
    /// What each process was served from (or wrote to) each bucket's count.txt, oldest
    /// first: the bases of a later overwrite through a truncated handle (pattern b).
    reads: BTreeMap<(u32, usize), Vec<Counts>>,
    expect: Option<Expect>,
}

impl Model {
    fn log(&self, log: Log) -> &[u8] {
        self.logs.get(&log).map_or(&[], Vec::as_slice)
    }

    fn uploading(&self, bucket: usize, name: usize) -> bool {
        self.handles.values().any(
            |h| matches!(h, Handle::Cab { bucket: b, name: n, .. } if *b == bucket && *n == name),
        )
    }

    fn plain_open(&self, name: usize) -> bool {
        self.handles
            .values()
            .any(|h| matches!(h, Handle::Plain { name: n } if *n == name))
    }

    /// What the client behind handle `h` believes the counters are, if it may write now:
    /// what it read through the handle (pattern a), or (pattern b, a truncated handle) the
    /// last value its process was served, as long as each pending overwrite of the process
    /// has a value of its own (a client writes once per read).
    fn count_base(&self, h: &Handle) -> Option<Counts> {
        match h {
            Handle::Count {
                read: Some(read),
                truncated: false,
                ..
            } => Some(*read),
            Handle::Count {
                proc,
                bucket,
                truncated: true,
                ..
            } => {
                let reads = self.reads.get(&(*proc, *bucket))?;
                let waiting = self
                    .handles
                    .values()
                    .filter(|o| {
                        matches!(o, Handle::Count { proc: p, bucket: b, truncated: true,
                            pending: Some(Some(_)), .. } if p == proc && b == bucket)
                    })
                    .count();
                (reads.len() > waiting)
                    .then(|| reads.last().copied())
                    .flatten()
            }
            _ => None,
        }
    }

    fn open(&mut self, h: Handle) {
        let id = self.next_handle;
        self.next_handle += 1;
        self.handles.insert(id, h);
        self.expect = Some(Expect::Opened(id));
    }

    /// Applies what a log handle wrote: complete lines at a flush, everything (the partial
    /// line completed with CRLF) at a release.
    fn apply_log(&mut self, h: u32, finish: bool) {
        let Some(Handle::Log {
            log, own, applied, ..
        }) = self.handles.get_mut(&h)
        else {
            return;
        };
        let pending = &own[*applied..];
        let take = if finish {
            pending.len()
        } else {
            pending
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1)
        };
        let mut bytes = pending[..take].to_vec();
        if finish && !bytes.is_empty() && !bytes.ends_with(b"\n") {
            bytes.extend_from_slice(b"\r\n");
        }
        *applied += take;
        let log = *log;
        self.logs.entry(log).or_default().extend(bytes);
    }

    /// Applies a count.txt write of handle `h` at a flush (semantics.md, count.txt): as a
    /// delta from the handle's base (pattern a: what it read), or from the value its process
    /// was served of which the content is one report more, else the last one served
    /// (pattern b; that value is used up). Content that does not parse, that would lower
    /// the counters, or that adds more than one report is refused and changes nothing.
    /// Returns the expectation.
    fn apply_count(&mut self, h: u32) -> Expect {
        let Some(Handle::Count {
            proc,
            bucket,
            snapshot,
            truncated,
            read,
            pending: Some(pending),
            ..
        }) = self.handles.get(&h).cloned()
        else {
            return Expect::Ok;
        };
        if let Some(Handle::Count { pending, .. }) = self.handles.get_mut(&h) {
            *pending = None;
        }
        let Some(wanted) = pending else {
            return Expect::Err(Refusal::Invalid);
        };
        let reads = self.reads.entry((proc, bucket)).or_default();
        let base = match (truncated, read) {
            (false, Some(read)) => read,
            _ => {
                let pick = reads
                    .iter()
                    .rposition(|seen| is_one_report_after(*seen, wanted))
                    .or_else(|| reads.len().checked_sub(1));
                pick.map_or(snapshot, |i| reads.remove(i))
            }
        };
        if wanted.cabs_gathered < base.cabs_gathered || wanted.total_hits < base.total_hits {
            return Expect::Err(Refusal::Invalid);
        }
        // One write adds at most one report: one hit, and no more cabs than hits.
        let (cabs, hits) = (
            wanted.cabs_gathered - base.cabs_gathered,
            wanted.total_hits - base.total_hits,
        );
        if hits > 1 || cabs > hits {
            return Expect::Err(Refusal::Invalid);
        }
        let c = &mut self.counts[bucket];
        c.cabs_gathered += wanted.cabs_gathered - base.cabs_gathered;
        c.total_hits += wanted.total_hits - base.total_hits;
        reads.push(wanted);
        if let Some(Handle::Count {
            read, truncated, ..
        }) = self.handles.get_mut(&h)
        {
            // The handle's base is now what it wrote (a second flush adds nothing; a further
            // write goes by it).
            *read = Some(wanted);
            *truncated = false;
        }
        Expect::Ok
    }
}

/// Whether `wanted` is one report after `seen`: one more hit, and zero or one more cab.
fn is_one_report_after(seen: Counts, wanted: Counts) -> bool {
    wanted.total_hits == seen.total_hits + 1
        && (wanted.cabs_gathered == seen.cabs_gathered
            || wanted.cabs_gathered == seen.cabs_gathered + 1)
}

/// One report more than `base`.
fn next(base: Counts, cab: bool) -> Counts {
    Counts {
        cabs_gathered: base.cabs_gathered + u64::from(cab),
        total_hits: base.total_hits + 1,
    }
}

/// The counters a count.txt write asks for (`None`: text that does not parse).
fn count_wanted(base: Counts, what: CountWrite) -> Option<Counts> {
    match what {
        CountWrite::Next { cab } => Some(next(base, cab)),
        CountWrite::Garbage => None,
        CountWrite::Lower => Some(Counts {
            cabs_gathered: base.cabs_gathered,
            total_hits: base.total_hits.saturating_sub(1),
        }),
    }
}

/// The bytes of a count.txt write.
fn count_bytes(wanted: Option<Counts>) -> Vec<u8> {
    match wanted {
        Some(c) => count_file::render(c).into_bytes(),
        None => b"Cabs Gathered=lots\r\nTotal Hits=\r\n".to_vec(),
    }
}

/// The bytes of a log line.
fn line_bytes(kind: LineKind, n: u8) -> Vec<u8> {
    match kind {
        LineKind::Valid => format!(
            "10:{:02}:00  03-01-2024\tPC{n}\tuser{n}\tr{n}.cab\r\n",
            n % 60
        )
        .into_bytes(),
        LineKind::Junk => format!("junk line {n}\r\n").into_bytes(),
        LineKind::Partial => format!("partial {n}").into_bytes(),
    }
}

struct ModelMachine;

impl ReferenceStateMachine for ModelMachine {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model {
            counts: [Counts {
                cabs_gathered: 0,
                total_hits: 1,
            }; BUCKETS],
            ..Model::default()
        })
        .boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Step> {
        let procs = 0..PROCS;
        let bucket = 0..BUCKETS;
        let log = prop_oneof![Just(Log::Crash), (0..BUCKETS).prop_map(Log::Hits)];
        let cab = (procs.clone(), bucket.clone(), 0..CAB_NAMES.len());
        let target = prop_oneof![
            bucket.clone().prop_map(Target::Count),
            log.clone().prop_map(Target::Log),
            (bucket.clone(), 0..CAB_NAMES.len()).prop_map(|(b, n)| Target::Cab(b, n)),
            (0..PLAIN_NAMES.len()).prop_map(Target::Plain),
        ];
        // Weighted so that clients interleave on the same files: most steps open count.txt
        // or act on an open handle.
        let mut choices: Vec<(u32, BoxedStrategy<Step>)> = vec![
            (
                8,
                (procs.clone(), bucket.clone(), any::<bool>())
                    .prop_map(|(proc, bucket, truncate)| Step::CountOpen {
                        proc,
                        bucket,
                        truncate,
                    })
                    .boxed(),
            ),
            (
                3,
                (procs.clone(), log)
                    .prop_map(|(proc, log)| Step::LogOpen { proc, log })
                    .boxed(),
            ),
            (
                2,
                cab.clone()
                    .prop_map(|(proc, bucket, name)| Step::CabCreate { proc, bucket, name })
                    .boxed(),
            ),
            (
                1,
                cab.prop_map(|(proc, bucket, name)| Step::CabOpenWrite { proc, bucket, name })
                    .boxed(),
            ),
            (
                1,
                (procs, 0..PLAIN_NAMES.len())
                    .prop_map(|(proc, name)| Step::PlainCreate { proc, name })
                    .boxed(),
            ),
            (1, target.prop_map(|target| Step::Unlink { target }).boxed()),
            (
                1,
                (0..PLAIN_NAMES.len(), 0..PLAIN_NAMES.len(), any::<bool>())
                    .prop_map(|(from, to, no_replace)| Step::RenamePlain {
                        from,
                        to,
                        no_replace,
                    })
                    .boxed(),
            ),
            (
                1,
                bucket
                    .prop_map(|bucket| Step::RenameCount { bucket })
                    .boxed(),
            ),
        ];
        for (&h, handle) in &state.handles {
            let mut per: Vec<(u32, BoxedStrategy<Step>)> = vec![
                (1, Just(Step::Flush { h }).boxed()),
                (3, Just(Step::Close { h }).boxed()),
            ];
            match handle {
                Handle::Count { truncated, .. } => {
                    if !truncated {
                        per.push((3, Just(Step::CountRead { h }).boxed()));
                    }
                    if state.count_base(handle).is_some() {
                        // Lower only by a handle that read: through the process's memory
                        // several reads may be its base, and a lower value may be one report
                        // after an older one.
                        let lower = if *truncated { 0 } else { 1 };
                        let what = prop_oneof![
                            4 => any::<bool>().prop_map(|cab| CountWrite::Next { cab }),
                            1 => Just(CountWrite::Garbage),
                            lower => Just(CountWrite::Lower),
                        ];
                        per.push((
                            4,
                            what.prop_map(move |what| Step::CountWrite { h, what })
                                .boxed(),
                        ));
                    }
                }
                Handle::Log { base, .. } => {
                    let kind = prop_oneof![
                        3 => Just(LineKind::Valid),
                        1 => Just(LineKind::Junk),
                        1 => Just(LineKind::Partial),
                    ];
                    per.push((
                        4,
                        (kind, any::<u8>())
                            .prop_map(move |(kind, n)| Step::LogWrite { h, kind, n })
                            .boxed(),
                    ));
                    if *base > 0 {
                        per.push((1, Just(Step::LogRewrite { h }).boxed()));
                    }
                }
                Handle::Cab { .. } => per.push((
                    3,
                    (1u16..3000, any::<u8>())
                        .prop_map(move |(len, fill)| Step::CabWrite { h, len, fill })
                        .boxed(),
                )),
                Handle::Committed => {}
                Handle::Plain { .. } => per.push((
                    3,
                    (0u16..200, 1u8..100, any::<u8>())
                        .prop_map(move |(offset, len, fill)| Step::PlainWrite {
                            h,
                            offset,
                            len,
                            fill,
                        })
                        .boxed(),
                )),
            }
            choices.push((6, Union::new_weighted(per).boxed()));
        }
        Union::new_weighted(choices).boxed()
    }

    fn preconditions(state: &Model, step: &Step) -> bool {
        let handle = |h: &u32| state.handles.get(h);
        match step {
            Step::CountRead { h } => {
                matches!(
                    handle(h),
                    Some(Handle::Count {
                        truncated: false,
                        ..
                    })
                )
            }
            Step::CountWrite { h, what } => handle(h).is_some_and(|c| {
                state.count_base(c).is_some()
                    && !(matches!(
                        c,
                        Handle::Count {
                            truncated: true,
                            ..
                        }
                    ) && *what == CountWrite::Lower)
            }),
            Step::LogWrite { h, .. } => matches!(handle(h), Some(Handle::Log { .. })),
            Step::LogRewrite { h } => {
                matches!(handle(h), Some(Handle::Log { base, .. }) if *base > 0)
            }
            Step::CabWrite { h, .. } => matches!(handle(h), Some(Handle::Cab { .. })),
            Step::PlainWrite { h, .. } => matches!(handle(h), Some(Handle::Plain { .. })),
            Step::Flush { h } | Step::Close { h } => handle(h).is_some(),
            Step::Unlink {
                target: Target::Plain(n),
            } => !state.plain_open(*n),
            Step::RenamePlain { from, to, .. } => {
                !state.plain_open(*from) && !state.plain_open(*to)
            }
            _ => true,
        }
    }

    fn apply(mut state: Model, step: &Step) -> Model {
        state.expect = Some(Expect::Ok);
        match step {
            &Step::CountOpen {
                proc,
                bucket,
                truncate,
            } => {
                let snapshot = state.counts[bucket];
                state.open(Handle::Count {
                    proc,
                    bucket,
                    snapshot,
                    truncated: truncate,
                    read: None,
                    pending: None,
                    written: false,
                });
            }
            Step::CountRead { h } => {
                if let Some(Handle::Count {
                    proc,
                    bucket,
                    snapshot,
                    read,
                    written,
                    ..
                }) = state.handles.get_mut(h)
                {
                    // Reads show the handle's buffer: the counters at open, until it wrote.
                    state.expect = (!*written)
                        .then(|| Expect::Read(count_file::render(*snapshot).into_bytes()));
                    // The first read is the handle's base, and the process's memory.
                    if read.is_none() {
                        *read = Some(*snapshot);
                        let key = (*proc, *bucket);
                        let seen = *snapshot;
                        state.reads.entry(key).or_default().push(seen);
                    }
                }
            }
            Step::CountWrite { h, what } => {
                let base = state.handles.get(h).and_then(|c| state.count_base(c));
                if let (
                    Some(base),
                    Some(Handle::Count {
                        pending, written, ..
                    }),
                ) = (base, state.handles.get_mut(h))
                {
                    *pending = Some(count_wanted(base, *what));
                    *written = true;
                }
            }
            &Step::LogOpen { log, .. } => {
                let base = state.logs.entry(log).or_default().len();
                state.open(Handle::Log {
                    log,
                    base,
                    own: Vec::new(),
                    applied: 0,
                });
            }
            Step::LogWrite { h, kind, n } => {
                if let Some(Handle::Log { own, .. }) = state.handles.get_mut(h) {
                    own.extend(line_bytes(*kind, *n));
                }
            }
            Step::LogRewrite { .. } => state.expect = Some(Expect::Err(Refusal::Invalid)),
            &Step::CabCreate { bucket, name, .. } => {
                if state.cabs.contains_key(&(bucket, name)) || state.uploading(bucket, name) {
                    state.expect = Some(Expect::Err(Refusal::Exists));
                } else {
                    state.open(Handle::Cab {
                        bucket,
                        name,
                        data: Vec::new(),
                    });
                }
            }
            Step::CabWrite { h, len, fill } => {
                if let Some(Handle::Cab { data, .. }) = state.handles.get_mut(h) {
                    data.extend(std::iter::repeat_n(*fill, usize::from(*len)));
                }
            }
            &Step::CabOpenWrite { bucket, name, .. } => {
                state.expect = Some(if state.uploading(bucket, name) {
                    Expect::Err(Refusal::Busy)
                } else if state.cabs.contains_key(&(bucket, name)) {
                    Expect::Err(Refusal::NotPermitted)
                } else {
                    Expect::Err(Refusal::NotFound)
                });
            }
            &Step::PlainCreate { name, .. } => match state.plain.entry(name) {
                std::collections::btree_map::Entry::Occupied(_) => {
                    state.expect = Some(Expect::Err(Refusal::Exists));
                }
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(Vec::new());
                    state.open(Handle::Plain { name });
                }
            },
            Step::PlainWrite {
                h,
                offset,
                len,
                fill,
            } => {
                if let Some(&Handle::Plain { name }) = state.handles.get(h) {
                    let file = state.plain.entry(name).or_default();
                    let (at, end) = (
                        usize::from(*offset),
                        usize::from(*offset) + usize::from(*len),
                    );
                    if file.len() < end {
                        file.resize(end, 0);
                    }
                    file[at..end].fill(*fill);
                }
            }
            &Step::Flush { h } => match state.handles.get(&h) {
                Some(Handle::Count { .. }) => {
                    let e = state.apply_count(h);
                    state.expect = Some(e);
                }
                Some(Handle::Log { .. }) => state.apply_log(h, false),
                // The owner's close commits the cab, unless nothing was written yet (a shell
                // dup'ing a new descriptor closes it before writing).
                Some(Handle::Cab { data, .. }) if !data.is_empty() => {
                    if let Some(Handle::Cab { bucket, name, data }) = state.handles.remove(&h) {
                        state.cabs.insert((bucket, name), data);
                        state.handles.insert(h, Handle::Committed);
                    }
                }
                _ => {}
            },
            &Step::Close { h } => {
                let e = match state.handles.get(&h) {
                    Some(Handle::Count { .. }) => state.apply_count(h),
                    Some(Handle::Log { .. }) => {
                        state.apply_log(h, true);
                        Expect::Ok
                    }
                    Some(Handle::Cab { bucket, name, data }) => {
                        let (b, n, d) = (*bucket, *name, data.clone());
                        state.cabs.insert((b, n), d);
                        Expect::Ok
                    }
                    _ => Expect::Ok,
                };
                state.handles.remove(&h);
                state.expect = Some(e);
            }
            &Step::Unlink { target } => {
                state.expect = Some(match target {
                    Target::Log(log) if !state.logs.contains_key(&log) => {
                        Expect::Err(Refusal::NotFound)
                    }
                    Target::Count(_) | Target::Log(_) => Expect::Err(Refusal::NotPermitted),
                    Target::Cab(b, n) if state.uploading(b, n) => Expect::Err(Refusal::Busy),
                    Target::Cab(b, n) if state.cabs.contains_key(&(b, n)) => {
                        Expect::Err(Refusal::NotPermitted)
                    }
                    Target::Cab(..) => Expect::Err(Refusal::NotFound),
                    Target::Plain(n) => match state.plain.remove(&n) {
                        Some(_) => Expect::Ok,
                        None => Expect::Err(Refusal::NotFound),
                    },
                });
            }
            &Step::RenamePlain {
                from,
                to,
                no_replace,
            } => {
                state.expect = Some(if !state.plain.contains_key(&from) {
                    Expect::Err(Refusal::NotFound)
                } else if from == to {
                    Expect::Ok
                } else if no_replace && state.plain.contains_key(&to) {
                    Expect::Err(Refusal::Exists)
                } else {
                    let data = state.plain.remove(&from).unwrap_or_default();
                    state.plain.insert(to, data);
                    Expect::Ok
                });
            }
            Step::RenameCount { .. } => state.expect = Some(Expect::Err(Refusal::NotPermitted)),
        }
        state
    }
}

/// An fs-core handle the model knows by an id.
#[derive(Debug, Clone, Copy)]
struct Opened {
    fh: u64,
    ino: Ino,
    pid: u32,
}

/// fs-core over a store in a temp dir, with the handles the model's ids stand for.
struct System {
    fs: CerFs,
    /// The model's handle ids: (fs-core handle, its inode, its process).
    handles: BTreeMap<u32, Opened>,
    count_dirs: [Ino; BUCKETS],
    cab_dirs: [Ino; BUCKETS],
    scratch: Ino,
    /// What the store lives in (a temporary directory, a test database).
    _keep: Box<dyn std::any::Any>,
}

const RW: OpenFlags = OpenFlags {
    read: true,
    write: true,
    truncate: false,
    append: false,
};

impl System {
    fn ino(&self, dir: Ino, name: &str) -> Result<Ino, FsError> {
        Ok(self.fs.lookup(&OBSERVER, dir, name.as_bytes())?.ino)
    }

    fn log_dir(&self, log: Log) -> (Ino, &'static str) {
        match log {
            Log::Crash => (ROOT_INO, "crash.log"),
            Log::Hits(b) => (self.cab_dirs[b], "hits.log"),
        }
    }

    /// Everything a reader sees in a file, through a handle of its own.
    fn read_all(&self, dir: Ino, name: &str) -> Vec<u8> {
        let ino = self.ino(dir, name).expect("lookup");
        let fh = self
            .fs
            .open(
                &OBSERVER,
                ino,
                OpenFlags {
                    read: true,
                    ..OpenFlags::default()
                },
            )
            .expect("open for reading")
            .fh;
        let data = self.fs.read(fh, 0, 1 << 24).expect("read");
        self.fs.release(fh).expect("release");
        data
    }

    fn listing(&self, dir: Ino) -> Vec<String> {
        let dh = self.fs.opendir(dir).expect("opendir");
        let names = self.fs.readdir(dh, 0).expect("readdir");
        self.fs.releasedir(dh);
        names.into_iter().map(|e| e.name).collect()
    }

    /// Runs one step; the refusal it met, or what it produced.
    fn run(&mut self, step: &Step, model: &Model) -> Result<Expect, FsError> {
        let opened = |h: &u32| self.handles.get(h).copied().expect("a live handle");
        let fh = |h: &u32| opened(h).fh;
        match step {
            &Step::CountOpen {
                proc,
                bucket,
                truncate,
            } => {
                let ino = self.ino(self.count_dirs[bucket], "count.txt")?;
                let flags = OpenFlags { truncate, ..RW };
                let fh = self.fs.open(&caller(proc), ino, flags)?.fh;
                Ok(self.opened(model, proc, ino, fh))
            }
            Step::CountRead { h } => Ok(Expect::Read(self.fs.read(fh(h), 0, 4096)?)),
            Step::CountWrite { h, .. } => {
                // The model holds the content this write puts.
                let wanted = match model.handles.get(h) {
                    Some(Handle::Count {
                        pending: Some(wanted),
                        ..
                    }) => *wanted,
                    other => panic!("{step:?} on {other:?}"),
                };
                let bytes = count_bytes(wanted);
                let o = opened(h);
                self.fs.write(o.fh, 0, &bytes)?;
                let size = SetAttr {
                    size: Some(bytes.len() as u64),
                    ..SetAttr::default()
                };
                self.fs
                    .setattr(&caller(o.pid - 1000), o.ino, Some(o.fh), &size)?;
                Ok(Expect::Ok)
            }
            &Step::LogOpen { proc, log } => {
                let (dir, name) = self.log_dir(log);
                let (attr, o) =
                    self.fs
                        .create(&caller(proc), dir, name.as_bytes(), 0o666, RW, false)?;
                Ok(self.opened(model, proc, attr.ino, o.fh))
            }
            Step::LogWrite { h, kind, n } => {
                let o = opened(h);
                let end = self.fs.getattr(o.ino, Some(o.fh))?.size;
                self.fs.write(o.fh, end, &line_bytes(*kind, *n))?;
                Ok(Expect::Ok)
            }
            Step::LogRewrite { h } => {
                let fh = fh(h);
                self.fs.write(fh, 0, b"X")?;
                Ok(Expect::Ok)
            }
            &Step::CabCreate { proc, bucket, name } => {
                let (attr, o) = self.fs.create(
                    &caller(proc),
                    self.cab_dirs[bucket],
                    CAB_NAMES[name].as_bytes(),
                    0o666,
                    RW,
                    true,
                )?;
                Ok(self.opened(model, proc, attr.ino, o.fh))
            }
            Step::CabWrite { h, len, fill } => {
                let o = opened(h);
                let end = self.fs.getattr(o.ino, Some(o.fh))?.size;
                let data = vec![*fill; usize::from(*len)];
                self.fs.write(o.fh, end, &data)?;
                Ok(Expect::Ok)
            }
            &Step::CabOpenWrite { proc, bucket, name } => {
                let ino = self.ino(self.cab_dirs[bucket], CAB_NAMES[name])?;
                let opened = self.fs.open(&caller(proc), ino, RW)?;
                // Must not happen: the model expects a refusal.
                self.fs.release(opened.fh)?;
                Ok(Expect::Ok)
            }
            &Step::PlainCreate { proc, name } => {
                let (attr, o) = self.fs.create(
                    &caller(proc),
                    self.scratch,
                    PLAIN_NAMES[name].as_bytes(),
                    0o644,
                    RW,
                    true,
                )?;
                Ok(self.opened(model, proc, attr.ino, o.fh))
            }
            Step::PlainWrite {
                h,
                offset,
                len,
                fill,
            } => {
                let data = vec![*fill; usize::from(*len)];
                self.fs.write(fh(h), u64::from(*offset), &data)?;
                Ok(Expect::Ok)
            }
            Step::Flush { h } => {
                let o = opened(h);
                self.fs.flush(o.fh, Some(o.pid))?;
                Ok(Expect::Ok)
            }
            Step::Close { h } => {
                let o = opened(h);
                self.handles.remove(h);
                let flushed = self.fs.flush(o.fh, Some(o.pid));
                // The kernel's release follows every last close, whatever flush said.
                let released = self.fs.release(o.fh);
                flushed.and(released)?;
                Ok(Expect::Ok)
            }
            &Step::Unlink { target } => {
                let c = caller(0);
                match target {
                    Target::Count(b) => self.fs.unlink(&c, self.count_dirs[b], b"count.txt")?,
                    Target::Log(log) => {
                        let (dir, name) = self.log_dir(log);
                        self.fs.unlink(&c, dir, name.as_bytes())?
                    }
                    Target::Cab(b, n) => {
                        self.fs
                            .unlink(&c, self.cab_dirs[b], CAB_NAMES[n].as_bytes())?
                    }
                    Target::Plain(n) => {
                        self.fs
                            .unlink(&c, self.scratch, PLAIN_NAMES[n].as_bytes())?
                    }
                }
                Ok(Expect::Ok)
            }
            &Step::RenamePlain {
                from,
                to,
                no_replace,
            } => {
                self.fs.rename(
                    &caller(0),
                    self.scratch,
                    PLAIN_NAMES[from].as_bytes(),
                    self.scratch,
                    PLAIN_NAMES[to].as_bytes(),
                    no_replace,
                )?;
                Ok(Expect::Ok)
            }
            &Step::RenameCount { bucket } => {
                self.fs.rename(
                    &caller(0),
                    self.count_dirs[bucket],
                    b"count.txt",
                    self.scratch,
                    b"count.txt",
                    false,
                )?;
                Ok(Expect::Ok)
            }
        }
    }

    /// Records the fs-core handle of the model's newest handle.
    fn opened(&mut self, model: &Model, proc: u32, ino: Ino, fh: u64) -> Expect {
        let id = model.next_handle - 1;
        let pid = caller(proc).pid;
        self.handles.insert(id, Opened { fh, ino, pid });
        Expect::Opened(id)
    }
}

struct FsCoreTest;

impl StateMachineTest for FsCoreTest {
    type SystemUnderTest = System;
    type Reference = ModelMachine;

    fn init_test(model: &Model) -> System {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("cer.db")).expect("open store");
        System::on(Arc::new(store), Box::new(dir), model)
    }

    fn apply(system: System, model: &Model, step: Step) -> System {
        System::apply(system, model, step)
    }

    fn check_invariants(system: &System, model: &Model) {
        System::check_invariants(system, model)
    }
}

/// The same test on the PostgreSQL store (a database of its own per case).
struct FsCoreOnPostgres;

impl StateMachineTest for FsCoreOnPostgres {
    type SystemUnderTest = System;
    type Reference = ModelMachine;

    fn init_test(model: &Model) -> System {
        let db = cerfs_testkit::TestDatabase::create().expect("the test database");
        let store = cerfs_db::PgStore::open(&db.url).expect("open the PostgreSQL store");
        System::on(Arc::new(store), Box::new(db), model)
    }

    fn apply(system: System, model: &Model, step: Step) -> System {
        System::apply(system, model, step)
    }

    fn check_invariants(system: &System, model: &Model) {
        System::check_invariants(system, model)
    }
}

impl System {
    /// fs-core over `store`, set up as the model starts.
    fn on(store: Arc<dyn cerfs_db::Store>, keep: Box<dyn std::any::Any>, model: &Model) -> System {
        let fs = CerFs::new(store);
        let setup = caller(0);
        let mkdir = |parent: Ino, name: &str| {
            fs.mkdir(&setup, parent, name.as_bytes(), 0o777)
                .expect("mkdir")
                .ino
        };
        let mut count_dirs = [0; BUCKETS];
        let mut cab_dirs = [0; BUCKETS];
        for b in 0..BUCKETS {
            let name = format!("b{b}");
            count_dirs[b] = mkdir(COUNTS_INO, &name);
            cab_dirs[b] = mkdir(CABS_INO, &name);
            // Every bucket starts with count.txt at its first report.
            let (_, opened) = fs
                .create(&setup, count_dirs[b], b"count.txt", 0o666, RW, true)
                .expect("create count.txt");
            let first = count_file::render(model.counts[b]);
            fs.write(opened.fh, 0, first.as_bytes()).expect("write");
            fs.flush(opened.fh, Some(setup.pid)).expect("first report");
            fs.release(opened.fh).expect("release");
        }
        let scratch = mkdir(ROOT_INO, "scratch");
        System {
            fs,
            handles: BTreeMap::new(),
            count_dirs,
            cab_dirs,
            scratch,
            _keep: keep,
        }
    }

    fn apply(mut system: System, model: &Model, step: Step) -> System {
        let got = system.run(&step, model);
        match (&model.expect, got) {
            (None, _) => {}
            (Some(Expect::Err(want)), Err(e)) => {
                assert_eq!(refusal(&e), Some(*want), "{step:?}: {e}");
            }
            (Some(Expect::Err(want)), Ok(got)) => {
                panic!("{step:?}: expected {want:?}, it succeeded ({got:?})")
            }
            (Some(want), Ok(got)) => assert_eq!(&got, want, "{step:?}"),
            (Some(want), Err(e)) => panic!("{step:?}: expected {want:?}, got the error {e}"),
        }
        system
    }

    fn check_invariants(system: &System, model: &Model) {
        for b in 0..BUCKETS {
            let text = system.read_all(system.count_dirs[b], "count.txt");
            assert_eq!(
                count_file::parse(&text).expect("count.txt parses"),
                model.counts[b],
                "bucket {b}: counters"
            );
            let names: Vec<String> = model
                .cabs
                .keys()
                .filter(|(mb, _)| *mb == b)
                .map(|(_, n)| CAB_NAMES[*n].to_owned())
                .chain(
                    (!model.log(Log::Hits(b)).is_empty() || model.logs.contains_key(&Log::Hits(b)))
                        .then(|| "hits.log".to_owned()),
                )
                .collect();
            let mut names = names;
            names.sort();
            assert_eq!(
                system.listing(system.cab_dirs[b]),
                names,
                "cabs/b{b}: complete cabs (and hits.log) only"
            );
            for ((_, n), data) in model.cabs.range((b, 0)..(b + 1, 0)) {
                assert_eq!(
                    &system.read_all(system.cab_dirs[b], CAB_NAMES[*n]),
                    data,
                    "cabs/b{b}/{}",
                    CAB_NAMES[*n]
                );
            }
        }
        for (&log, bytes) in &model.logs {
            let (dir, name) = system.log_dir(log);
            assert_eq!(
                String::from_utf8_lossy(&system.read_all(dir, name)),
                String::from_utf8_lossy(bytes),
                "{log:?}"
            );
        }
        let mut plain: Vec<String> = model
            .plain
            .keys()
            .map(|n| PLAIN_NAMES[*n].to_owned())
            .collect();
        plain.sort();
        assert_eq!(system.listing(system.scratch), plain, "scratch/");
        for (n, data) in &model.plain {
            assert_eq!(
                &system.read_all(system.scratch, PLAIN_NAMES[*n]),
                data,
                "scratch/{}",
                PLAIN_NAMES[*n]
            );
        }
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn fs_core_follows_the_model(sequential 1..80 => FsCoreTest);
}

/// Fewer cases than on SQLite: each makes a database on the server.
#[test]
fn fs_core_follows_the_model_on_postgres() {
    let Some(probe) = cerfs_testkit::TestDatabase::create() else {
        return;
    };
    drop(probe);
    let config = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config.clone());
    let cases = ModelMachine::sequential_strategy(1..80);
    let result = runner.run(&cases, |(initial, transitions, seen)| {
        FsCoreOnPostgres::test_sequential(config.clone(), initial, transitions, seen);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
