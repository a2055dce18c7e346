//! Where symbols come from, in this order: local Breakpad stores (`--symbols-path`), the
//! on-disk cache, then each symbol server (`--symbols-url`), asked first for a Breakpad
//! `.sym`, then Microsoft-style for the PDB (`name.pdb`, then `name.pd_`) with the PE
//! beside it (`name.dll`/`name.dl_`, for x64 unwind data), then for the PE alone. What a
//! server gave is converted to Breakpad symbols and cached; what no source has is
//! remembered as missing (a marker file in the cache) for [`FetchLimits::negative_ttl`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use breakpad_symbols::{
    binary_lookup, breakpad_sym_lookup, extra_debuginfo_lookup, moz_lookup, FileError, FileKind,
    LocateSymbolsResult, SymbolError, SymbolFile, SymbolSupplier,
};
use minidump::Module;
use sha2::{Digest, Sha256};

use crate::convert;
use crate::fetch::{FetchLimits, Fetched, Fetcher};

/// The symbol sources of one walker.
pub(crate) struct Supplier {
    pub(crate) paths: Vec<PathBuf>,
    pub(crate) urls: Vec<String>,
    pub(crate) cache: Option<PathBuf>,
    pub(crate) limits: FetchLimits,
    pub(crate) fetcher: Arc<Fetcher>,
    /// Servers that timed out or misbehaved: not asked again by this walker.
    pub(crate) down: std::sync::Mutex<std::collections::HashSet<String>>,
}

fn found(bytes: &[u8]) -> Result<LocateSymbolsResult, SymbolError> {
    Ok(LocateSymbolsResult {
        symbols: SymbolFile::from_bytes(bytes)?,
        extra_debug_info: None,
    })
}

fn leaf(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

impl Supplier {
    fn url(base: &str, rel: &str) -> String {
        format!("{}/{rel}", base.trim_end_matches('/'))
    }

    fn is_down(&self, base: &str) -> bool {
        self.down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(base)
    }

    /// `url` on `base`, unless the server is down (then marked so on a server problem).
    fn get(&self, base: &str, rel: &str) -> Option<Vec<u8>> {
        if self.is_down(base) {
            return None;
        }
        match self.fetcher.get(&Self::url(base, rel)) {
            Fetched::Found(bytes) => Some(bytes),
            Fetched::Missing => None,
            Fetched::Down => {
                tracing::warn!(
                    server = base,
                    "symbol server skipped for the rest of this batch"
                );
                self.down
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(base.to_owned());
                None
            }
        }
    }

    /// The file at `rel` on `base`, or its compressed form (last character `_`).
    fn fetch_either(&self, base: &str, rel: &str, compressed_rel: &str) -> Option<Vec<u8>> {
        for candidate in [rel, compressed_rel] {
            if let Some(bytes) = self.get(base, candidate) {
                match convert::unpack(bytes, self.limits.max_bytes) {
                    Ok(bytes) => return Some(bytes),
                    Err(e) => self.record(&Self::url(base, candidate), &e),
                }
            }
        }
        None
    }

    /// Breakpad symbols for `module` from server `base`, converted when need be.
    fn ask_server(
        &self,
        base: &str,
        module: &(dyn Module + Sync),
        sym_rel: &str,
    ) -> Option<Vec<u8>> {
        if let Some(bytes) = self.get(base, sym_rel) {
            return Some(bytes);
        }
        let pe = binary_lookup(module).and_then(|l| {
            let compressed = moz_lookup(l.clone());
            let name = leaf(&module.code_file()).to_owned();
            self.fetch_either(base, &l.server_rel, &compressed.server_rel)
                .map(|bytes| (bytes, name))
        });
        if let Some(pdb_lookup) = extra_debuginfo_lookup(module) {
            let compressed = moz_lookup(pdb_lookup.clone());
            if let Some(pdb) =
                self.fetch_either(base, &pdb_lookup.server_rel, &compressed.server_rel)
            {
                let pe_ref = pe.as_ref().map(|(b, n)| (b.as_slice(), n.as_str()));
                match convert::pdb_to_sym(&pdb, &pdb_lookup.debug_file, pe_ref) {
                    Ok(sym) => return Some(sym),
                    Err(e) => self.record(&Self::url(base, &pdb_lookup.server_rel), &e),
                }
            }
        }
        if let Some((bytes, name)) = pe {
            match convert::pe_to_sym(&bytes, &name) {
                Ok(sym) => return Some(sym),
                Err(e) => self.record(&format!("{base}/{name}"), &e),
            }
        }
        None
    }

    fn record(&self, url: &str, detail: &str) {
        // Recorded like a fetch problem: an unreadable answer.
        let _ = self.fetcher.note(url, "unreadable", detail);
    }

    fn missing_marker(&self, rel: &str) -> Option<PathBuf> {
        let cache = self.cache.as_ref()?;
        let key: String = Sha256::digest(rel.as_bytes())
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        Some(cache.join(".missing").join(key))
    }

    fn recently_missing(&self, rel: &str) -> bool {
        let Some(marker) = self.missing_marker(rel) else {
            return false;
        };
        std::fs::metadata(&marker)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < self.limits.negative_ttl)
    }

    fn remember_missing(&self, rel: &str) {
        if let Some(marker) = self.missing_marker(rel) {
            if let Some(dir) = marker.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = std::fs::write(marker, rel.as_bytes());
        }
    }

    fn store(&self, rel: &str, bytes: &[u8]) {
        let Some(cache) = &self.cache else {
            return;
        };
        let path = cache.join(rel);
        let stored = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                let temp = path.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&temp, bytes).and_then(|()| std::fs::rename(&temp, &path))
            });
        if let Err(e) = stored {
            tracing::warn!(path = %path.display(), "cannot cache symbols: {e}");
        }
    }
}

fn local(dir: &Path, rel: &str) -> Option<Vec<u8>> {
    let path = dir.join(rel);
    path.is_file().then(|| std::fs::read(path).ok()).flatten()
}

#[async_trait]
impl SymbolSupplier for Supplier {
    async fn locate_symbols(
        &self,
        module: &(dyn Module + Sync),
    ) -> Result<LocateSymbolsResult, SymbolError> {
        let lookup = breakpad_sym_lookup(module).ok_or(SymbolError::MissingDebugFileOrId)?;
        let rel = lookup.cache_rel.as_str();
        for dir in self.paths.iter().chain(self.cache.iter()) {
            if let Some(bytes) = local(dir, rel) {
                return found(&bytes);
            }
        }
        if self.urls.is_empty() || self.recently_missing(rel) {
            return Err(SymbolError::NotFound);
        }
        for base in &self.urls {
            if let Some(sym) = self.ask_server(base, module, &lookup.server_rel) {
                match SymbolFile::from_bytes(&sym) {
                    Ok(symbols) => {
                        self.store(rel, &sym);
                        return Ok(LocateSymbolsResult {
                            symbols,
                            extra_debug_info: None,
                        });
                    }
                    Err(e) => self.record(
                        &Self::url(base, &lookup.server_rel),
                        &format!("not Breakpad symbols: {e}"),
                    ),
                }
            }
        }
        self.remember_missing(rel);
        Err(SymbolError::NotFound)
    }

    async fn locate_file(
        &self,
        _module: &(dyn Module + Sync),
        _file_kind: FileKind,
    ) -> Result<PathBuf, FileError> {
        // Only the disassembler asks for binaries; cerfs does not disassemble.
        Err(FileError::NotFound)
    }
}
