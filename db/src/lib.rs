//! The cerfs store: schema, versioned migrations and queries behind the narrow [`Store`]
//! trait that fs-core talks to. Two implementations: [`SqliteStore`] (the default: one
//! writer connection, a pool of WAL readers) and [`PgStore`] (PostgreSQL, for several
//! heads; it carries the core families and CER V2 reports so far).
//!
//! Beside it: [`QueryDb`], read-only SQL for people (`cerfs query`), [`ConsoleDb`], what
//! the web console shows, and [`IndexDb`] / [`CabReader`], what the cab indexer reads and
//! writes.

mod alerts;
mod console;
mod console_detail;
mod error;
mod index_rows;
mod lifecycle;
mod pg;
mod query;
mod reports;
mod sqlite;
mod stack_rows;
mod store;
mod store_location;
mod store_rules;

pub use alerts::{Alert, AlertStore, Delivery, NewAlert, SpikeRule};
pub use console::{
    BucketFilter, BucketSort, BucketSummary, CabSummary, ConsoleDb, DayReports, HitLine,
    MachineCount, Page, SignatureSummary, StoreFacts, KINDS,
};
pub use console_detail::{
    CabDetail, DumpFacts, SearchHit, SearchResults, SignatureBucket, SignatureDetail, StackFrame,
    TextExcerpt, STACK_FRAMES,
};
pub use error::{OpenError, QueryError, StoreError};
pub use index_rows::{
    CabIndex, CabReader, CabRef, FactRow, IndexDb, IndexStatus, MemberRow, MinidumpRow,
    ReindexFilter, TextRow,
};
pub use lifecycle::{
    Audit, BucketContents, CabCheck, CabEntry, LifecycleStore, PruneCandidate, PruneReason,
    Removal, RetentionPolicy, StoreUsage, SweepStep,
};
pub use pg::{shown_url as shown_postgres_url, PgStore, PG_SCHEMA_VERSION};
pub use query::{QueryDb, RowSink, Value};
pub use reports::{
    DumpRequest, DumpState, IssuedDump, NewReport, ParamKind, RecordedReport, ReportFile, ReportId,
    ReportParam, ReportStore, StoredReport,
};
pub use sqlite::schema::SCHEMA_VERSION;
pub use sqlite::{backup_partial_path, PurgedCab, SqliteStore, CHUNK_SIZE};
pub use stack_rows::{FrameRow, MissingSymbol, StackRow, SymbolFetch};
pub use store::*;
pub use store_location::StoreLocation;

/// The store's traits, for code that calls them on a concrete store (`SqliteStore`): bring
/// them all into scope with `use cerfs_db::prelude::*`.
pub mod prelude {
    pub use crate::alerts::AlertStore;
    pub use crate::lifecycle::LifecycleStore;
    pub use crate::reports::ReportStore;
    pub use crate::store::{
        ContentStore, CounterStore, LogStore, NamespaceStore, SettingsStore, Store,
    };
}
