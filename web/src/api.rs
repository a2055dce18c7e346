//! The JSON API (`/api/v1/…`): everything the pages show, paged where it is a list, and the
//! OpenAPI document that describes it (`openapi.json`, kept beside this file and checked
//! against the routes by the tests).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use cerfs_db::{
    BucketFilter, BucketSort, BucketSummary, DayReports, HitLine, MachineCount, Page,
    SignatureSummary, StoreFacts, KINDS,
};
use cerfs_fs_core::settings_file::DEFAULT_CRASHES_PER_BUCKET;
use serde::{Deserialize, Serialize};

use crate::state::{db_failure, ConsoleState, Failure};

/// The OpenAPI document, served as is.
pub const OPENAPI: &str = include_str!("openapi.json");

pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/api/v1/overview", get(overview))
        .route("/api/v1/buckets", get(buckets))
        .route("/api/v1/buckets/{id}", get(bucket))
        .route("/api/v1/signatures", get(signatures))
        .route("/api/v1/openapi.json", get(openapi))
}

async fn openapi() -> impl IntoResponse {
    ([("content-type", "application/json")], OPENAPI)
}

/// What the overview page shows.
#[derive(Debug, Serialize)]
pub struct Overview {
    /// Reports per day, oldest first, every day of the window.
    pub reports_per_day: Vec<DayReports>,
    /// The buckets with most hits in the last 7 days, with their daily trend.
    pub top_buckets: Vec<BucketSummary>,
    /// Buckets first reported in the last 7 days.
    pub new_buckets: Vec<BucketSummary>,
    /// The signatures with most crashes in the last 7 days, with their trend.
    pub top_signatures: Vec<SignatureSummary>,
    /// Signatures first seen in the last 7 days.
    pub new_signatures: Vec<SignatureSummary>,
    /// Sizes, counts and the indexer's backlog.
    pub store: StoreFacts,
    /// The store's size limit (`cerfs quota`), when one is set.
    pub quota_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OverviewQuery {
    pub(crate) days: Option<u32>,
}

/// Days a chart may span.
pub(crate) fn chart_days(days: Option<u32>) -> Result<u32, Failure> {
    match days.unwrap_or(30) {
        d @ 1..=366 => Ok(d),
        d => Err(Failure::bad_request(format!(
            "days={d}: give 1 to 366 days"
        ))),
    }
}

pub(crate) async fn load_overview(
    state: &Arc<ConsoleState>,
    days: u32,
) -> Result<Overview, Failure> {
    state
        .read(move |db| {
            Ok(Overview {
                reports_per_day: db.reports_per_day(days).map_err(db_failure)?,
                top_buckets: db.top_buckets(7, 10).map_err(db_failure)?,
                new_buckets: db.new_buckets(7, 10).map_err(db_failure)?,
                top_signatures: db.top_signatures(Some(7), 10).map_err(db_failure)?,
                new_signatures: db.new_signatures(7, 10).map_err(db_failure)?,
                store: db.store_facts().map_err(db_failure)?,
                quota_bytes: db
                    .server_setting(cerfs_fs_core::MAX_STORE_SETTING)
                    .map_err(db_failure)?
                    .and_then(|v| v.parse().ok())
                    .filter(|q| *q > 0),
            })
        })
        .await
}

async fn overview(
    State(state): State<Arc<ConsoleState>>,
    Query(q): Query<OverviewQuery>,
) -> Result<Json<Overview>, Failure> {
    let days = chart_days(q.days)?;
    Ok(Json(load_overview(&state, days).await?))
}

/// The bucket list's parameters, as the page's form and the API take them.
#[derive(Debug, Default, Deserialize, Serialize, Clone)]
pub(crate) struct BucketQuery {
    /// Part of the subpath: application, module, offset.
    #[serde(default)]
    pub q: Option<String>,
    /// application, kernel, shutdown or other.
    #[serde(default)]
    pub kind: Option<String>,
    /// Reported on or after this date (YYYY-MM-DD).
    #[serde(default)]
    pub since: Option<String>,
    /// First reported before this date (YYYY-MM-DD).
    #[serde(default)]
    pub until: Option<String>,
    /// hits, last_seen, first_seen or subpath.
    #[serde(default)]
    pub sort: Option<String>,
    /// Rows per page (1-500, default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Rows skipped.
    #[serde(default)]
    pub offset: Option<u64>,
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn date(name: &str, v: &Option<String>) -> Result<Option<String>, Failure> {
    let Some(v) = non_empty(v) else {
        return Ok(None);
    };
    let b = v.as_bytes();
    let ok = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if ok {
        Ok(Some(v))
    } else {
        Err(Failure::bad_request(format!(
            "{name}={v:?}: give a date as YYYY-MM-DD"
        )))
    }
}

impl BucketQuery {
    pub(crate) fn filter(&self) -> Result<BucketFilter, Failure> {
        let kind = non_empty(&self.kind);
        if let Some(k) = &kind {
            if !KINDS.contains(&k.as_str()) {
                return Err(Failure::bad_request(format!(
                    "kind={k:?}: give one of {}",
                    KINDS.join(", ")
                )));
            }
        }
        let sort = match non_empty(&self.sort).as_deref() {
            None | Some("hits") => BucketSort::Hits,
            Some("last_seen") => BucketSort::LastSeen,
            Some("first_seen") => BucketSort::FirstSeen,
            Some("subpath") => BucketSort::Subpath,
            Some(other) => {
                return Err(Failure::bad_request(format!(
                    "sort={other:?}: give hits, last_seen, first_seen or subpath"
                )))
            }
        };
        let limit = self.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(Failure::bad_request(format!(
                "limit={limit}: give 1 to 500"
            )));
        }
        Ok(BucketFilter {
            text: non_empty(&self.q),
            kind,
            since: date("since", &self.since)?,
            until: date("until", &self.until)?,
            sort,
            limit,
            offset: self.offset.unwrap_or(0),
        })
    }
}

async fn buckets(
    State(state): State<Arc<ConsoleState>>,
    Query(q): Query<BucketQuery>,
) -> Result<Json<Page<BucketSummary>>, Failure> {
    let filter = q.filter()?;
    Ok(Json(
        state
            .read(move |db| db.buckets(&filter).map_err(db_failure))
            .await?,
    ))
}

/// One bucket's page.
#[derive(Debug, Serialize)]
pub struct BucketPage {
    /// The bucket.
    pub bucket: BucketSummary,
    /// Hits per day over the last 30 days, oldest first.
    pub hits_per_day: Vec<u64>,
    /// What its clients are asked: status.txt over policy.txt (`Crashes per bucket`
    /// defaults to 5 when neither sets it).
    pub settings: Vec<Setting>,
    /// The machines behind it, most hits first (at most 20).
    pub machines: Vec<MachineCount>,
    /// Machines and users in all.
    pub machine_count: u64,
    /// Users in all.
    pub user_count: u64,
    /// Its newest hits.log lines (at most 20), newest first.
    pub recent_hits: Vec<HitLine>,
}

/// One setting as a client reads it.
#[derive(Debug, Serialize)]
pub struct Setting {
    /// The name, as in the file.
    pub key: String,
    /// The value.
    pub value: String,
}

pub(crate) async fn load_bucket(state: &Arc<ConsoleState>, id: i64) -> Result<BucketPage, Failure> {
    let (bucket, hits_per_day, (machines, machine_count, user_count), recent_hits) = state
        .read(move |db| {
            let bucket = db
                .bucket(id)
                .map_err(db_failure)?
                .ok_or_else(|| Failure::not_found(format!("no bucket {id}")))?;
            let days = db.bucket_hits_per_day(id, 30).map_err(db_failure)?;
            let machines = db.bucket_machines(id, 20).map_err(db_failure)?;
            let hits = db.bucket_hits(id, 20).map_err(db_failure)?;
            Ok((bucket, days, machines, hits))
        })
        .await?;
    let fs = Arc::clone(&state.fs);
    let subpath = bucket.subpath.clone();
    let settings = tokio::task::spawn_blocking(move || fs.effective_settings(&subpath))
        .await
        .map_err(Failure::internal)?
        .map_err(|e| Failure::from_fs(&format!("the settings of bucket {id}"), &e))?;
    let mut settings: Vec<Setting> = settings
        .into_iter()
        .map(|(key, value)| Setting { key, value })
        .collect();
    if !settings.iter().any(|s| s.key == "Crashes per bucket") {
        settings.push(Setting {
            key: "Crashes per bucket".into(),
            value: format!("{DEFAULT_CRASHES_PER_BUCKET} (default)"),
        });
    }
    Ok(BucketPage {
        bucket,
        hits_per_day,
        settings,
        machines,
        machine_count,
        user_count,
        recent_hits,
    })
}

async fn bucket(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<i64>,
) -> Result<Json<BucketPage>, Failure> {
    Ok(Json(load_bucket(&state, id).await?))
}

/// `?days=…&limit=…&offset=…` of the signature list.
#[derive(Debug, Default, Deserialize, Serialize, Clone)]
pub(crate) struct SignatureQuery {
    /// Only crashes of the last N days (default: all time).
    #[serde(default)]
    pub(crate) days: Option<u32>,
    /// How many (1-500, default 50).
    #[serde(default)]
    pub(crate) limit: Option<u32>,
    /// Rows skipped.
    #[serde(default)]
    pub(crate) offset: Option<u64>,
}

impl SignatureQuery {
    /// (days, limit, offset), checked.
    pub(crate) fn window(&self) -> Result<(Option<u32>, u32, u64), Failure> {
        let days = self.days.map(|d| chart_days(Some(d))).transpose()?;
        let limit = self.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(Failure::bad_request(format!(
                "limit={limit}: give 1 to 500"
            )));
        }
        Ok((days, limit, self.offset.unwrap_or(0)))
    }
}

pub(crate) async fn load_signatures(
    state: &Arc<ConsoleState>,
    days: Option<u32>,
    limit: u32,
    offset: u64,
) -> Result<Page<SignatureSummary>, Failure> {
    state
        .read(move |db| {
            let total = db.signature_count(days).map_err(db_failure)?;
            let items = db.signature_list(days, limit, offset).map_err(db_failure)?;
            Ok(Page { total, items })
        })
        .await
}

async fn signatures(
    State(state): State<Arc<ConsoleState>>,
    Query(q): Query<SignatureQuery>,
) -> Result<Json<Page<SignatureSummary>>, Failure> {
    let (days, limit, offset) = q.window()?;
    Ok(Json(load_signatures(&state, days, limit, offset).await?))
}
