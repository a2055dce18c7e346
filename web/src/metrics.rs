//! `/metrics` in the Prometheus text format (0.0.4, what `promtool check metrics` reads):
//! what the store holds, read at scrape time (reports by protocol and kind, cabs and their
//! bytes, the indexer's backlog and failures, the database and WAL files), and what this
//! process did (requests refused by reason, request latencies per adapter and operation,
//! from fs-core's table). Names only, no subpaths or machines: it needs no login.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use cerfs_db::StoreFacts;
use cerfs_fs_core::stats::STATS;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::state::{db_failure, ConsoleState, Failure};

pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new().route("/metrics", get(metrics))
}

/// One scrape's values from the database.
#[derive(Debug)]
struct Scrape {
    reports: Vec<(&'static str, &'static str, u64)>,
    store: StoreFacts,
    db_bytes: u64,
    wal_bytes: u64,
}

fn file_size(path: PathBuf) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        {
            let mut family = encoder.encode_descriptor(
                "cerfs_reports",
                "Reports received, by protocol (cer1: hits.log lines, cer2: HTTP reports) and kind",
                None,
                MetricType::Counter,
            )?;
            for (protocol, kind, n) in &self.reports {
                let labels = [("protocol", *protocol), ("kind", *kind)];
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(n, None)?;
            }
        }
        for (name, help, value) in [
            ("cerfs_cabs_stored", "Cabs on the share", self.store.cabs),
            (
                "cerfs_cab_stored_bytes",
                "Bytes of the cabs on the share",
                self.store.cab_bytes,
            ),
            ("cerfs_buckets", "Buckets", self.store.buckets),
            (
                "cerfs_index_backlog_cabs",
                "Complete cabs the indexer has not read yet",
                self.store.index_backlog,
            ),
            (
                "cerfs_index_failed_cabs",
                "Cabs the indexer could not read",
                self.store.index_failed,
            ),
            (
                "cerfs_database_bytes",
                "Size of the database file",
                self.db_bytes,
            ),
            (
                "cerfs_database_wal_bytes",
                "Size of the database's write-ahead log",
                self.wal_bytes,
            ),
            (
                "cerfs_database_free_bytes",
                "Free pages inside the database file",
                self.store.free_bytes,
            ),
        ] {
            encoder
                .encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&value)?;
        }
        {
            let mut family = encoder.encode_descriptor(
                "cerfs_refusals",
                "Client requests refused by this process, by adapter and reason",
                None,
                MetricType::Counter,
            )?;
            for (adapter, reason, n) in STATS.refusals() {
                let labels = [("adapter", adapter.as_str()), ("reason", reason)];
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "cerfs_request_duration_seconds",
            "Time to answer a client request, by adapter and operation",
            None,
            MetricType::Histogram,
        )?;
        for (adapter, op, snap) in STATS.latencies() {
            // The encoder sums the buckets itself: give each bucket's own count.
            let mut below = 0;
            let buckets: Vec<(f64, u64)> = snap
                .buckets
                .iter()
                .map(|(bound, cumulative)| {
                    let own = cumulative - below;
                    below = *cumulative;
                    (*bound, own)
                })
                .collect();
            let labels = [("adapter", adapter.as_str()), ("op", op)];
            family
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(snap.sum, snap.count, &buckets, None)?;
        }
        Ok(())
    }
}

async fn metrics(State(state): State<Arc<ConsoleState>>) -> Result<impl IntoResponse, Failure> {
    let db = state.db_path().map(std::path::Path::to_path_buf);
    let scrape = state
        .read(move |conn| {
            let store = conn.store_facts().map_err(db_failure)?;
            // A PostgreSQL store's size is the database's; its WAL is the server's own.
            let (db_bytes, wal_bytes) = match db {
                Some(db) => {
                    let mut wal = db.clone().into_os_string();
                    wal.push("-wal");
                    (file_size(db), file_size(wal.into()))
                }
                None => (store.used_bytes, 0),
            };
            Ok(Scrape {
                reports: conn.report_totals().map_err(db_failure)?,
                store,
                db_bytes,
                wal_bytes,
            })
        })
        .await?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        .map_err(Failure::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        text,
    ))
}
