//! Walking a minidump's stacks with rust-minidump's processor and turning the result into
//! rows (frames, the signature, modules without symbols), or into the text
//! `minidump-stackwalk` prints. One [`Walker`] serves a batch of dumps: symbols parsed for
//! one dump are reused by the next (memory grows with the modules seen; a walker lives as
//! long as one indexer worker).

use std::sync::Arc;

use breakpad_symbols::Symbolizer;
use cerfs_db::{FrameRow, MissingSymbol, StackRow, SymbolFetch};
use minidump::{Minidump, Module};
use minidump_processor::{process_minidump_with_options, ProcessState, ProcessorOptions};
use minidump_unwind::{CallStack, StackFrame};
use serde::{Deserialize, Serialize};

use crate::fetch::{FetchLimits, Fetcher};
use crate::signature::{normalize, RuleError, SignatureRules, Signer};
use crate::symbol_supply::Supplier;

/// Frames stored per thread at most.
pub const DEFAULT_MAX_FRAMES: usize = 128;

/// How dumps are walked and signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisSettings {
    /// Local symbol stores in Breakpad's layout (`<debug file>/<debug id>/<name>.sym`).
    pub symbol_paths: Vec<std::path::PathBuf>,
    /// Symbol servers: Breakpad `.sym` servers and Microsoft-style ones (PDB, PE).
    pub symbol_urls: Vec<String>,
    /// Where downloaded and converted symbols are kept (and what is missing remembered).
    pub symbol_cache: Option<std::path::PathBuf>,
    /// Bounds on every download.
    pub fetch: FetchLimits,
    /// The signature rules.
    pub rules: SignatureRules,
    /// Store every thread's frames, not only the crashing thread's.
    pub all_threads: bool,
    /// Frames stored per thread at most.
    pub max_frames: usize,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        AnalysisSettings {
            symbol_paths: Vec::new(),
            symbol_urls: Vec::new(),
            symbol_cache: None,
            fetch: FetchLimits::default(),
            rules: SignatureRules::default(),
            all_threads: false,
            max_frames: DEFAULT_MAX_FRAMES,
        }
    }
}

/// Why a dump could not be read for a report.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// Not a minidump cerfs can read.
    #[error("not a readable minidump: {0}")]
    Unreadable(String),
    /// The processor gave up.
    #[error("the stack walk failed: {0}")]
    Failed(String),
}

/// Walks dumps with one set of symbol sources and rules.
pub struct Walker {
    settings: AnalysisSettings,
    symbolizer: Symbolizer,
    fetcher: Arc<Fetcher>,
    signer: Signer,
}

impl Walker {
    /// A walker with `settings`.
    ///
    /// # Errors
    /// A signature rule is not a valid regular expression.
    pub fn new(settings: &AnalysisSettings) -> Result<Walker, RuleError> {
        let fetcher = Arc::new(Fetcher::new(settings.fetch));
        let supplier = Supplier {
            paths: settings.symbol_paths.clone(),
            urls: settings.symbol_urls.clone(),
            cache: settings.symbol_cache.clone(),
            limits: settings.fetch,
            fetcher: Arc::clone(&fetcher),
            down: std::sync::Mutex::new(std::collections::HashSet::new()),
        };
        Ok(Walker {
            signer: Signer::new(&settings.rules)?,
            settings: settings.clone(),
            symbolizer: Symbolizer::new(supplier),
            fetcher,
        })
    }

    /// What the symbol sources did wrong since the last call.
    pub fn take_fetch_problems(&self) -> Vec<SymbolFetch> {
        self.fetcher.take_problems()
    }

    fn process(&self, bytes: &[u8]) -> Result<ProcessState, WalkError> {
        let dump = Minidump::read(bytes).map_err(|e| WalkError::Unreadable(e.to_string()))?;
        let walked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            futures_executor::block_on(process_minidump_with_options(
                &dump,
                &self.symbolizer,
                ProcessorOptions::default(),
            ))
        }));
        match walked {
            Ok(Ok(state)) => Ok(state),
            Ok(Err(e)) => Err(WalkError::Failed(e.to_string())),
            Err(_) => Err(WalkError::Failed("the stack walker panicked".to_owned())),
        }
    }

    /// The analysis of minidump member `member`: never fails; a dump that cannot be walked
    /// gets its `error` and an `EMPTY: ...` signature.
    pub fn walk(&self, member: &str, bytes: &[u8]) -> StackRow {
        let state = match self.process(bytes) {
            Ok(state) => state,
            Err(e) => {
                // The signature groups such dumps; the details are in `error`.
                let signature = match e {
                    WalkError::Unreadable(_) => "EMPTY: not a readable minidump",
                    WalkError::Failed(_) => "EMPTY: the stack walk failed",
                };
                return StackRow {
                    member: member.to_owned(),
                    signature: signature.to_owned(),
                    error: Some(e.to_string()),
                    ..StackRow::default()
                };
            }
        };
        let crashing = state.requesting_thread;
        let mut row = StackRow {
            member: member.to_owned(),
            crash_reason: state.exception_info.as_ref().map(|e| e.reason.to_string()),
            crash_address: state.exception_info.as_ref().map(|e| e.address.0),
            crashing_thread: crashing.and_then(|i| u32::try_from(i).ok()),
            ..StackRow::default()
        };
        for (index, thread) in state.threads.iter().enumerate() {
            let crashed = Some(index) == crashing;
            if crashed || self.settings.all_threads {
                row.frames.extend(self.frames(thread, index, crashed));
            }
        }
        let Some(thread) = crashing.and_then(|i| state.threads.get(i)) else {
            row.signature = "EMPTY: no crashing thread identified".to_owned();
            return row;
        };
        let mut names = Vec::new();
        for frame in &thread.frames {
            for inline in &frame.inlines {
                names.push(normalize(Some(&inline.function_name), None, None, 0));
            }
            let (module, offset) = module_of(frame);
            names.push(normalize(
                frame.function_name.as_deref(),
                module.as_deref(),
                offset,
                frame.instruction,
            ));
            if frame.function_name.is_none() {
                if let Some(m) = &frame.module {
                    let missing = MissingSymbol {
                        module: leaf(&m.code_file()),
                        debug_file: m.debug_file().map(|f| leaf(&f)).unwrap_or_default(),
                        debug_id: m
                            .debug_identifier()
                            .map(|id| id.breakpad().to_string())
                            .unwrap_or_default(),
                    };
                    if !row.missing_symbols.contains(&missing) {
                        row.missing_symbols.push(missing);
                    }
                }
            }
        }
        row.signature = self.signer.sign(&names);
        row
    }

    fn frames(&self, thread: &CallStack, index: usize, crashed: bool) -> Vec<FrameRow> {
        let thread_no = u32::try_from(index).unwrap_or(u32::MAX);
        let mut rows = Vec::new();
        for frame in &thread.frames {
            let (module, module_offset) = module_of(frame);
            for inline in &frame.inlines {
                rows.push(FrameRow {
                    thread: thread_no,
                    crashed,
                    frame: 0,
                    module: module.clone(),
                    module_offset,
                    function: Some(inline.function_name.clone()),
                    function_offset: None,
                    file: inline.source_file_name.clone(),
                    line: inline.source_line,
                    trust: "inlining".to_owned(),
                });
            }
            rows.push(FrameRow {
                thread: thread_no,
                crashed,
                frame: 0,
                module,
                module_offset,
                function: frame.function_name.clone(),
                function_offset: frame
                    .function_base
                    .map(|b| frame.instruction.wrapping_sub(b)),
                file: frame.source_file_name.clone(),
                line: frame.source_line,
                trust: frame.trust.as_str().to_owned(),
            });
        }
        rows.truncate(self.settings.max_frames);
        for (i, row) in rows.iter_mut().enumerate() {
            row.frame = u32::try_from(i).unwrap_or(u32::MAX);
        }
        rows
    }

    /// The dump as `minidump-stackwalk` prints it: the crashing thread (`all_threads`:
    /// every thread, then the module lists).
    ///
    /// # Errors
    /// The dump cannot be read or walked.
    pub fn report(&self, bytes: &[u8], all_threads: bool) -> Result<String, WalkError> {
        let state = self.process(bytes)?;
        let mut out = Vec::new();
        let printed = if all_threads {
            state.print(&mut out)
        } else {
            state.print_brief(&mut out)
        };
        printed.map_err(|e| WalkError::Failed(e.to_string()))?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// The module of a frame (file name) and the instruction's offset in it.
fn module_of(frame: &StackFrame) -> (Option<String>, Option<u64>) {
    match &frame.module {
        Some(m) => (
            Some(leaf(&m.code_file())),
            Some(frame.instruction.wrapping_sub(m.base_address())),
        ),
        None => (None, None),
    }
}

fn leaf(path: &str) -> String {
    path.rsplit(['\\', '/']).next().unwrap_or(path).to_owned()
}

/// Stored settings (`cerfs symbols`, `cerfs signature-rules`), by key.
pub mod stored {
    /// Local symbol stores, one path per line.
    pub const SYMBOL_PATHS: &str = "symbols.paths";
    /// Symbol servers, one URL per line.
    pub const SYMBOL_URLS: &str = "symbols.urls";
    /// The symbol cache directory.
    pub const SYMBOL_CACHE: &str = "symbols.cache";
    /// Irrelevant-frame rules.
    pub const RULES_IRRELEVANT: &str = "signature.irrelevant";
    /// Prefix-frame rules.
    pub const RULES_PREFIX: &str = "signature.prefix";
    /// Frames joined at most.
    pub const RULES_MAX_FRAMES: &str = "signature.max_frames";
    /// `yes`: store every thread's frames.
    pub const ALL_THREADS: &str = "stacks.all_threads";
}

impl AnalysisSettings {
    /// These settings completed from stored ones (`get(key)`): symbol paths, URLs and the
    /// cache come from the store when these have none (command-line flags win); the rules
    /// and the thread setting always come from the store (else the defaults); a cache
    /// still unset is `default_cache`.
    pub fn completed_from(
        &self,
        get: &dyn Fn(&str) -> Option<String>,
        default_cache: std::path::PathBuf,
    ) -> AnalysisSettings {
        let lines = |key: &str| -> Vec<String> {
            get(key)
                .map(|v| {
                    v.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut out = self.clone();
        if out.symbol_paths.is_empty() {
            out.symbol_paths = lines(stored::SYMBOL_PATHS)
                .into_iter()
                .map(Into::into)
                .collect();
        }
        if out.symbol_urls.is_empty() {
            out.symbol_urls = lines(stored::SYMBOL_URLS);
        }
        if out.symbol_cache.is_none() {
            out.symbol_cache = Some(get(stored::SYMBOL_CACHE).map_or(default_cache, Into::into));
        }
        let defaults = SignatureRules::default();
        out.rules = SignatureRules {
            irrelevant: get(stored::RULES_IRRELEVANT).unwrap_or(defaults.irrelevant),
            prefix: get(stored::RULES_PREFIX).unwrap_or(defaults.prefix),
            max_frames: get(stored::RULES_MAX_FRAMES)
                .and_then(|v| v.parse().ok())
                .unwrap_or(defaults.max_frames),
        };
        out.all_threads = out.all_threads || get(stored::ALL_THREADS).as_deref() == Some("yes");
        out
    }
}
