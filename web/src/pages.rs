//! The HTML pages: overview, buckets (filtered, sorted, paged), a bucket, signatures. Each
//! is made from the same data as its API call and works without JavaScript; the one small
//! script (`/static/console.js`) only shows times in the viewer's time zone (UTC stays on
//! hover).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cerfs_db::{BucketSummary, SignatureSummary, KINDS};
use maud::{html, Markup, DOCTYPE};

use axum::Extension;

use crate::api::{chart_days, load_bucket, load_overview, BucketQuery, OverviewQuery};
use crate::auth::Who;
use crate::chart::{sparkline, stacked_bars, Series};
use crate::state::{db_failure, ConsoleState, Failure};

const CSS: &str = include_str!("console.css");
const JS: &str = include_str!("console.js");

pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/", get(overview))
        .route("/buckets", get(buckets))
        .route("/buckets/{id}", get(bucket))
        .route("/signatures", get(signatures))
        .route("/settings", get(settings))
        .route(
            "/static/console.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], CSS) }),
        )
        .route(
            "/static/console.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], JS) }),
        )
}

/// An error as a page (the API answers JSON instead).
pub(crate) struct PageFailure(pub(crate) Failure);

impl From<Failure> for PageFailure {
    fn from(f: Failure) -> Self {
        PageFailure(f)
    }
}

impl IntoResponse for PageFailure {
    fn into_response(self) -> Response {
        let body = layout(
            "Error",
            None,
            html! {
                h1 { "Error " (self.0.status.as_u16()) }
                p.error { (self.0.message) }
            },
        );
        (self.0.status, body).into_response()
    }
}

pub(crate) fn layout(title: &str, who: Option<&Who>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — cerfs" }
                // No favicon request (a 404 in every browser's console).
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                nav {
                    a.brand href="/" { "cerfs" }
                    a href="/" { "Overview" }
                    a href="/buckets" { "Buckets" }
                    a href="/signatures" { "Signatures" }
                    a href="/search" { "Search" }
                    a href="/settings" { "Settings" }
                    a href="/api/v1/openapi.json" { "API" }
                    @if let Some(Who::User(s)) = who {
                        form.logout method="post" action="/logout" {
                            span.user { (s.user) " (" (s.role.as_str()) ")" }
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A UTC time, shown as such without script and in the viewer's zone with it.
pub(crate) fn time(utc: Option<&str>) -> Markup {
    match utc {
        Some(t) => {
            html! { time datetime=(t) title=(format!("{t} UTC")) { (t.replace('T', " ").trim_end_matches('Z')) } }
        }
        None => html! { "—" },
    }
}

pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn bucket_rows(list: &[BucketSummary], count_label: &str) -> Markup {
    html! {
        table.list {
            thead { tr { th { "Bucket" } th { "Kind" } th.num { (count_label) } th { "Trend" } th { "Last report" } } }
            tbody {
                @for b in list {
                    tr {
                        td { a href=(format!("/buckets/{}", b.bucket_id)) { (b.subpath) } }
                        td { (b.kind) }
                        td.num { (b.hits) }
                        td { @if !b.trend.is_empty() { (sparkline(&b.trend)) } }
                        td { (time(b.last_seen.as_deref())) }
                    }
                }
                @if list.is_empty() { tr { td colspan="5" { "None." } } }
            }
        }
    }
}

fn signature_rows(list: &[SignatureSummary]) -> Markup {
    html! {
        table.list {
            thead { tr { th { "Signature" } th.num { "Crashes" } th.num { "Buckets" } th { "Trend" } th { "Last seen" } } }
            tbody {
                @for s in list {
                    tr {
                        td.sig { a href=(crate::detail::signature_link(&s.signature)) { (s.signature) } }
                        td.num { (s.crashes) }
                        td.num { (s.buckets) }
                        td { @if !s.trend.is_empty() { (sparkline(&s.trend)) } }
                        td { (time(s.last_seen.as_deref())) }
                    }
                }
                @if list.is_empty() {
                    tr { td colspan="5" { "No walked minidumps yet: signatures come from the stacks of the cabs' minidumps (docs/crash-analysis.md)." } }
                }
            }
        }
    }
}

async fn overview(
    State(state): State<Arc<ConsoleState>>,
    Extension(who): Extension<Who>,
    Query(q): Query<OverviewQuery>,
) -> Result<Markup, PageFailure> {
    let days = chart_days(q.days)?;
    let o = load_overview(&state, days).await?;
    let labels: Vec<String> = o.reports_per_day.iter().map(|d| d.day.clone()).collect();
    let pick = |f: fn(&cerfs_db::DayReports) -> u64| o.reports_per_day.iter().map(f).collect();
    let series = [
        Series {
            name: KINDS[0],
            values: pick(|d| d.application),
        },
        Series {
            name: KINDS[1],
            values: pick(|d| d.kernel),
        },
        Series {
            name: KINDS[2],
            values: pick(|d| d.shutdown),
        },
        Series {
            name: KINDS[3],
            values: pick(|d| d.other),
        },
    ];
    let total: u64 = o.reports_per_day.iter().map(|d| d.total()).sum();
    let cer2: u64 = o.reports_per_day.iter().map(|d| d.cer2).sum();
    Ok(layout(
        "Overview",
        Some(&who),
        html! {
            h1 { "Overview" }
            p.range {
                "Reports per day, last " (days) " days: " (total) " (" (cer2) " over CER2). "
                a href="/?days=30" { "30 days" } " · " a href="/?days=90" { "90 days" }
            }
            (stacked_bars(&format!("Reports per day, last {days} days"), &labels, &series))
            section.facts {
                h2 { "Store" }
                dl {
                    dt { "Buckets" } dd { (o.store.buckets) }
                    dt { "Cabs" } dd { (o.store.cabs) " (" (bytes(o.store.cab_bytes)) ")" }
                    dt { "Indexer backlog" } dd { (o.store.index_backlog) " cabs" }
                    dt { "Indexing failed" } dd { (o.store.index_failed) " cabs" }
                    dt { "Database" } dd { (bytes(o.store.used_bytes)) " used, " (bytes(o.store.free_bytes)) " free inside the file" }
                    @if let Some(q) = o.quota_bytes {
                        dt { "Quota" } dd { (bytes(q)) " (" (o.store.used_bytes.saturating_mul(100) / q.max(1)) " % used)" }
                    }
                    @if let Some(free) = o.store.disk_free_bytes {
                        dt { "Disk" } dd { (bytes(free)) " free on the database's filesystem" }
                    }
                }
            }
            section {
                h2 { "Top buckets this week" }
                (bucket_rows(&o.top_buckets, "Hits (7 days)"))
            }
            section {
                h2 { "Top signatures this week" }
                (signature_rows(&o.top_signatures))
            }
            section {
                h2 { "New buckets this week" }
                (bucket_rows(&o.new_buckets, "Hits"))
            }
            section {
                h2 { "New signatures this week" }
                (signature_rows(&o.new_signatures))
            }
        },
    ))
}

fn page_link(q: &BucketQuery, offset: u64) -> String {
    let mut q = q.clone();
    q.offset = Some(offset);
    format!(
        "/buckets?{}",
        serde_urlencoded::to_string(&q).unwrap_or_default()
    )
}

async fn buckets(
    State(state): State<Arc<ConsoleState>>,
    Extension(who): Extension<Who>,
    Query(q): Query<BucketQuery>,
) -> Result<Markup, PageFailure> {
    let filter = q.filter()?;
    let f = filter.clone();
    let page = state
        .read(move |db| db.buckets(&f).map_err(db_failure))
        .await?;
    let from = filter.offset;
    let to = from + page.items.len() as u64;
    let limit = u64::from(filter.limit);
    let sort = q.sort.clone().unwrap_or_else(|| "hits".into());
    let kind = q.kind.clone().unwrap_or_default();
    Ok(layout(
        "Buckets",
        Some(&who),
        html! {
            h1 { "Buckets" }
            form.filters method="get" action="/buckets" {
                label { "Application, module or offset " input type="search" name="q" value=(q.q.clone().unwrap_or_default()); }
                label { "Kind "
                    select name="kind" {
                        option value="" selected[kind.is_empty()] { "any" }
                        @for k in KINDS { option value=(k) selected[kind == k] { (k) } }
                    }
                }
                label { "Reported since " input type="date" name="since" value=(q.since.clone().unwrap_or_default()); }
                label { "First seen before " input type="date" name="until" value=(q.until.clone().unwrap_or_default()); }
                label { "Sort "
                    select name="sort" {
                        @for (v, text) in [("hits", "most hits"), ("last_seen", "latest report"), ("first_seen", "newest bucket"), ("subpath", "subpath")] {
                            option value=(v) selected[sort == v] { (text) }
                        }
                    }
                }
                button type="submit" { "Show" }
            }
            p.count { (page.total) " buckets" @if page.total > 0 { ", " (from + 1) "–" (to) " shown" } }
            table.list {
                thead { tr { th { "Bucket" } th { "Kind" } th.num { "Hits" } th.num { "Cabs" } th { "First report" } th { "Last report" } } }
                tbody {
                    @for b in &page.items {
                        tr {
                            td { a href=(format!("/buckets/{}", b.bucket_id)) { (b.subpath) } }
                            td { (b.kind) }
                            td.num { (b.total_hits) }
                            td.num { (b.cabs_gathered) }
                            td { (time(b.first_seen.as_deref())) }
                            td { (time(b.last_seen.as_deref())) }
                        }
                    }
                }
            }
            nav.pages {
                @if from > 0 { a rel="prev" href=(page_link(&q, from.saturating_sub(limit))) { "← previous" } }
                @if to < page.total { a rel="next" href=(page_link(&q, to)) { "next →" } }
            }
        },
    ))
}

async fn bucket(
    State(state): State<Arc<ConsoleState>>,
    Extension(who): Extension<Who>,
    Path(id): Path<i64>,
) -> Result<Markup, PageFailure> {
    let p = load_bucket(&state, id).await?;
    let cabs = state
        .read(move |db| db.bucket_cabs(id, 100).map_err(db_failure))
        .await?;
    let status = crate::admin::stored_settings(
        &state,
        cerfs_fs_core::SettingsTarget::Status(p.bucket.subpath.clone()),
    )
    .await?;
    let b = &p.bucket;
    let labels: Vec<String> = {
        let days = p.hits_per_day.len();
        (0..days)
            .map(|i| format!("day -{}", days - 1 - i))
            .collect()
    };
    Ok(layout(
        &b.subpath,
        Some(&who),
        html! {
            h1 { (b.subpath) }
            dl.facts {
                dt { "Kind" } dd { (b.kind) }
                dt { "Total hits" } dd { (b.total_hits) }
                dt { "Cabs gathered" } dd { (b.cabs_gathered) }
                dt { "First report" } dd { (time(b.first_seen.as_deref())) }
                dt { "Last report" } dd { (time(b.last_seen.as_deref())) }
            }
            (stacked_bars("Hits per day, last 30 days", &labels, &[Series { name: "hits", values: p.hits_per_day.clone() }]))
            h2 { "What its clients are asked (status.txt over policy.txt)" }
            table.list.effective {
                thead { tr { th { "Setting" } th { "Value" } } }
                tbody { @for s in &p.settings { tr { td { (s.key) } td { (s.value) } } } }
            }
            h2 { "Machines and users (" (p.machine_count) " machines, " (p.user_count) " users)" }
            table.list.machines {
                thead { tr { th { "Machine" } th.num { "Hits" } th.num { "Users" } th { "Latest" } } }
                tbody {
                    @for m in &p.machines {
                        tr { td { (m.machine) } td.num { (m.hits) } td.num { (m.users) } td { (time(Some(&m.last_seen))) } }
                    }
                    @if p.machines.is_empty() { tr { td colspan="4" { "No hits.log line yet." } } }
                }
            }
            h2 { "hits.log (newest 20)" }
            table.list.hits {
                thead { tr { th { "Received" } th { "Machine" } th { "User" } th { "Cab" } th { "Client time" } } }
                tbody {
                    @for h in &p.recent_hits {
                        tr {
                            td { (time(Some(&h.received_at))) }
                            @if h.machine.is_none() {
                                td colspan="4" { "(not in the MS-CER grammar) " code { (h.line) } }
                            } @else {
                                td { (h.machine.as_deref().unwrap_or("")) }
                                td { (h.user.as_deref().unwrap_or("")) }
                                td { (h.item.as_deref().unwrap_or("")) }
                                td { (h.client_time.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
            h2 { "This bucket's status.txt" }
            (crate::admin::settings_editor(&who, &format!("/buckets/{id}/status"), &status))
            h2 { "Cabs (newest 100)" }
            (crate::detail::cab_table(&cabs, &who))
        },
    ))
}

async fn settings(
    State(state): State<Arc<ConsoleState>>,
    Extension(who): Extension<Who>,
) -> Result<Markup, PageFailure> {
    let policy =
        crate::admin::stored_settings(&state, cerfs_fs_core::SettingsTarget::Policy).await?;
    Ok(layout(
        "Settings",
        Some(&who),
        html! {
            h1 { "policy.txt" }
            p { "What every client is asked by default; a bucket's status.txt overrides it (edit it on the bucket's page). A change is what the next client reads." }
            (crate::admin::settings_editor(&who, "/settings/policy", &policy))
        },
    ))
}

async fn signatures(
    State(state): State<Arc<ConsoleState>>,
    Extension(who): Extension<Who>,
    Query(q): Query<crate::api::SignatureQuery>,
) -> Result<Markup, PageFailure> {
    let (days, limit, offset) = q.window()?;
    let page = crate::api::load_signatures(&state, days, limit, offset).await?;
    let link = |offset: u64| {
        let mut q = q.clone();
        q.offset = Some(offset);
        format!(
            "/signatures?{}",
            serde_urlencoded::to_string(&q).unwrap_or_default()
        )
    };
    let to = offset + page.items.len() as u64;
    Ok(layout(
        "Signatures",
        Some(&who),
        html! {
            h1 { "Signatures" }
            p {
                "Crashes grouped by the signature of their crashing thread, most first ("
                @match days { Some(d) => { "last " (d) " days" }, None => { "all time" } }
                "): " (page.total) " signatures. "
                a href="/signatures?days=7" { "7 days" } " · " a href="/signatures?days=30" { "30 days" } " · " a href="/signatures" { "all time" }
            }
            (signature_rows(&page.items))
            nav.pages {
                @if offset > 0 { a rel="prev" href=(link(offset.saturating_sub(u64::from(limit)))) { "← previous" } }
                @if to < page.total { a rel="next" href=(link(to)) { "next →" } }
            }
        },
    ))
}
