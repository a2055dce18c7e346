//! Crash analysis for cerfs: every minidump's stacks walked with rust-minidump's processor
//! ([`Walker`]), symbols found in local Breakpad stores and on symbol servers (Breakpad
//! `.sym` servers, and Microsoft-style ones whose PDB and PE files are converted with
//! Mozilla's `dump_syms`), with an on-disk cache and a negative cache, every download
//! bounded in time and size; and each crash's signature, built from its crashing thread
//! by rules that are data ([`SignatureRules`]).
//!
//! The indexer runs a [`Walker`] inside its bounded worker processes; `cerfs stack` prints
//! a dump as `minidump-stackwalk` does ([`Walker::report`]).

mod convert;
mod fetch;
mod signature;
mod symbol_supply;
mod walk;

pub use fetch::FetchLimits;
pub use signature::{
    normalize, RuleError, SignatureRules, Signer, FRAMES_CONSIDERED, MAX_SIGNATURE,
};
pub use walk::{stored, AnalysisSettings, WalkError, Walker, DEFAULT_MAX_FRAMES};
