//! A cab's page (members, minidump facts, the crashing stack, text files), a signature's
//! page (trend, buckets, cabs, a stack) and search (cab text, crashing modules, exception
//! codes, signatures): each as a page and as its `/api/v1/…` call.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use cerfs_db::{CabDetail, CabSummary, SearchResults, SignatureDetail, StackFrame};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use crate::auth::Who;
use crate::chart::{stacked_bars, Series};
use crate::pages::{bytes, layout, time, PageFailure};
use crate::state::{db_failure, ConsoleState, Failure};

/// Days of a signature's trend.
const TREND_DAYS: u32 = 30;

pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/api/v1/cabs/{id}", get(cab_json))
        .route("/api/v1/signature", get(signature_json))
        .route("/api/v1/search", get(search_json))
        .route("/cabs/{id}", get(cab_page))
        .route("/signature", get(signature_page))
        .route("/search", get(search_page))
}

/// The link to a signature's page.
pub(crate) fn signature_link(signature: &str) -> String {
    format!(
        "/signature?{}",
        serde_urlencoded::to_string([("signature", signature)]).unwrap_or_default()
    )
}

async fn load_cab(state: &Arc<ConsoleState>, id: i64) -> Result<CabDetail, Failure> {
    state
        .read(move |db| {
            db.cab_detail(id)
                .map_err(db_failure)?
                .ok_or_else(|| Failure::not_found(format!("no cab {id} on the share")))
        })
        .await
}

async fn cab_json(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<i64>,
) -> Result<Json<CabDetail>, Failure> {
    Ok(Json(load_cab(&state, id).await?))
}

/// `?signature=…&days=…`
#[derive(Debug, Deserialize)]
pub(crate) struct SignatureQuery {
    #[serde(default)]
    signature: String,
    days: Option<u32>,
}

async fn load_signature(
    state: &Arc<ConsoleState>,
    q: SignatureQuery,
) -> Result<SignatureDetail, Failure> {
    if q.signature.is_empty() {
        return Err(Failure::bad_request(
            "give the signature: ?signature=module!function",
        ));
    }
    let days = crate::api::chart_days(Some(q.days.unwrap_or(TREND_DAYS)))?;
    state
        .read(move |db| {
            db.signature(&q.signature, days)
                .map_err(db_failure)?
                .ok_or_else(|| {
                    Failure::not_found(format!(
                        "no walked dump has the signature {:?}",
                        q.signature
                    ))
                })
        })
        .await
}

async fn signature_json(
    State(state): State<Arc<ConsoleState>>,
    Query(q): Query<SignatureQuery>,
) -> Result<Json<SignatureDetail>, Failure> {
    Ok(Json(load_signature(&state, q).await?))
}

/// `?q=…&limit=…&offset=…`
#[derive(Debug, Default, Deserialize, Serialize, Clone)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    offset: Option<u64>,
}

async fn load_search(state: &Arc<ConsoleState>, q: &SearchQuery) -> Result<SearchResults, Failure> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Failure::bad_request(format!(
            "limit={limit}: give 1 to 500"
        )));
    }
    if q.q.len() > 500 {
        return Err(Failure::bad_request("q: give at most 500 characters"));
    }
    let (words, offset) = (q.q.clone(), q.offset.unwrap_or(0));
    state
        .read(move |db| db.search(&words, limit, offset).map_err(db_failure))
        .await
}

async fn search_json(
    State(state): State<Arc<ConsoleState>>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<SearchResults>, Failure> {
    if q.q.trim().is_empty() {
        return Err(Failure::bad_request(
            "give what to look for: ?q=words of a text file, a module (ntdll.dll) or an \
             exception code (c0000005)",
        ));
    }
    Ok(Json(load_search(&state, &q).await?))
}

fn stack_table(stack: &[StackFrame]) -> Markup {
    html! {
        table.list.stack {
            thead { tr { th.num { "#" } th { "Module" } th { "Function or offset" } th { "Source" } th { "Found by" } } }
            tbody {
                @for f in stack {
                    tr {
                        td.num { (f.frame) }
                        td { (f.module.as_deref().unwrap_or("?")) }
                        td.sig { (f.function.as_deref().or(f.module_offset.as_deref()).unwrap_or("")) }
                        td { @if let Some(file) = &f.file { (file) @if let Some(l) = f.line { ":" (l) } } }
                        td { (f.trust) }
                    }
                }
                @if stack.is_empty() { tr { td colspan="5" { "Not walked (no minidump, or the indexer has not reached it)." } } }
            }
        }
    }
}

pub(crate) fn cab_table(cabs: &[CabSummary], who: &Who) -> Markup {
    html! {
        table.list.cabs {
            thead { tr { th { "Cab" } th.num { "Size" } th { "Received" } th { "Index" } th { "Signature" } th { "" } } }
            tbody {
                @for c in cabs {
                    tr {
                        td { a href=(format!("/cabs/{}", c.cab_id)) { (c.name) } }
                        td.num { (bytes(c.size)) }
                        td { (time(c.created_at.as_deref())) }
                        td { (c.index_status.as_deref().unwrap_or("")) }
                        td.sig { @if let Some(s) = &c.signature { a href=(signature_link(s)) { (s) } } }
                        td { @if who.is_admin() { a.download href=(format!("/cabs/{}/download", c.cab_id)) download=(c.name) { "download" } } }
                    }
                }
                @if cabs.is_empty() { tr { td colspan="6" { "No cab on the share." } } }
            }
        }
        @if !who.is_admin() && !cabs.is_empty() {
            p.note { "Downloading cabs needs an admin account: dumps can hold secrets." }
        }
    }
}

async fn cab_page(
    State(state): State<Arc<ConsoleState>>,
    Extension(who): Extension<Who>,
    Path(id): Path<i64>,
) -> Result<Markup, PageFailure> {
    let d = load_cab(&state, id).await?;
    let c = &d.cab;
    Ok(layout(
        &c.name,
        Some(&who),
        html! {
            h1 { (c.name) }
            dl.facts {
                dt { "Bucket" } dd { a href=(format!("/buckets/{}", c.bucket_id)) { (c.subpath) } }
                dt { "Size" } dd { (bytes(c.size)) }
                dt { "Received" } dd { (time(c.created_at.as_deref())) }
                dt { "SHA-256" } dd { code { (c.sha256.as_deref().unwrap_or("")) } }
                dt { "Index" } dd { (c.index_status.as_deref().unwrap_or("")) @if let Some(e) = &d.index_error { " — " (e) } }
            }
            @if who.is_admin() {
                p { a.download href=(format!("/cabs/{}/download", c.cab_id)) download=(c.name) { "Download the cab" } }
            } @else {
                p.note { "Downloading cabs needs an admin account: dumps can hold secrets." }
            }
            h2 { "Members" }
            table.list.members {
                thead { tr { th { "Name" } th.num { "Size" } th { "Kind" } th { "Compression" } th { "Problem" } } }
                tbody {
                    @for m in &d.members {
                        tr { td { (m.name) } td.num { (bytes(m.size)) } td { (m.kind) } td { (m.compression) } td { (m.error.as_deref().unwrap_or("")) } }
                    }
                    @if d.members.is_empty() { tr { td colspan="5" { "Not indexed yet." } } }
                }
            }
            @for dump in &d.dumps {
                @let f = &dump.facts;
                h2 { "Minidump " (f.member) }
                dl.facts.dump {
                    dt { "Signature" } dd.sig { @if let Some(s) = &dump.signature { a href=(signature_link(s)) { (s) } } @else { "not walked yet" } }
                    dt { "Exception" } dd { (f.exception_code.as_deref().unwrap_or("")) " " (f.crash_reason.as_deref().unwrap_or("")) }
                    dt { "Address" } dd { code { (f.crash_address.as_deref().unwrap_or("")) } }
                    dt { "Module" } dd { (f.crash_module.as_deref().unwrap_or("")) " " (f.crash_module_version.as_deref().unwrap_or("")) @if let Some(o) = &f.crash_offset { " + " code { (o) } } }
                    dt { "Process" } dd { (f.process_name.as_deref().unwrap_or("")) }
                    dt { "System" } dd { (f.os.as_deref().unwrap_or("")) " " (f.os_version.as_deref().unwrap_or("")) " " (f.cpu.as_deref().unwrap_or("")) }
                    dt { "Written" } dd { (time(f.dump_time.as_deref())) }
                    @if let Some(e) = &f.error { dt { "Problem" } dd { (e) } }
                }
            }
            h2 { "Crashing thread" }
            (stack_table(&d.stack))
            @for t in &d.texts {
                h2 { (t.member) }
                pre.text { (t.text) @if t.more { "\n…" } }
            }
        },
    ))
}

async fn signature_page(
    State(state): State<Arc<ConsoleState>>,
    Extension(who): Extension<Who>,
    Query(q): Query<SignatureQuery>,
) -> Result<Markup, PageFailure> {
    let s = load_signature(&state, q).await?;
    let labels: Vec<String> = (0..s.trend.len())
        .map(|i| format!("day -{}", s.trend.len() - 1 - i))
        .collect();
    Ok(layout(
        &s.signature,
        Some(&who),
        html! {
            h1.sig { (s.signature) }
            p { (s.crashes) " walked dumps in " (s.buckets.len()) " buckets." }
            (stacked_bars(&format!("Dumps per day, last {} days", s.trend.len()), &labels, &[Series { name: "dumps", values: s.trend.clone() }]))
            h2 { "Buckets" }
            table.list.buckets {
                thead { tr { th { "Bucket" } th.num { "Dumps" } } }
                tbody {
                    @for b in &s.buckets {
                        tr { td { a href=(format!("/buckets/{}", b.bucket_id)) { (b.subpath) } } td.num { (b.crashes) } }
                    }
                }
            }
            h2 { "Newest cabs" }
            (cab_table(&s.cabs, &who))
            h2 { "Crashing thread of the newest" }
            (stack_table(&s.stack))
        },
    ))
}

/// Search hits: the cab, its bucket, the member and what was found there.
fn hits_table(class: &str, member: &str, hits: &[cerfs_db::SearchHit]) -> Markup {
    html! {
        table class=(format!("list {class}")) {
            thead { tr { th { "Cab" } th { "Bucket" } th { (member) } th { "Found" } } }
            tbody {
                @for h in hits {
                    tr {
                        td { a href=(format!("/cabs/{}", h.cab.cab_id)) { (h.cab.name) } }
                        td { a href=(format!("/buckets/{}", h.cab.bucket_id)) { (h.cab.subpath) } }
                        td { (h.member) }
                        td.excerpt { @if h.found_in != "text" { (h.found_in) ": " } (h.excerpt) }
                    }
                }
            }
        }
    }
}

fn search_link(q: &SearchQuery, offset: u64) -> String {
    let mut q = q.clone();
    q.offset = Some(offset);
    format!(
        "/search?{}",
        serde_urlencoded::to_string(&q).unwrap_or_default()
    )
}

async fn search_page(
    State(state): State<Arc<ConsoleState>>,
    Extension(who): Extension<Who>,
    Query(q): Query<SearchQuery>,
) -> Result<Markup, PageFailure> {
    let results = if q.q.trim().is_empty() {
        None
    } else {
        Some(load_search(&state, &q).await?)
    };
    let offset = q.offset.unwrap_or(0);
    let limit = u64::from(q.limit.unwrap_or(50));
    Ok(layout(
        "Search",
        Some(&who),
        html! {
            h1 { "Search" }
            form.filters method="get" action="/search" {
                label { "Words of the cabs' text files, a crashing module or an exception code "
                    input type="search" name="q" value=(q.q) autofocus; }
                button type="submit" { "Search" }
            }
            @if let Some(r) = &results {
                h2 { "In text files (" (r.texts.total) ")" }
                (hits_table("texts", "File", &r.texts.items))
                h2 { "Minidumps by crashing module or exception code (" (r.dumps.total) ")" }
                (hits_table("dumps", "Dump", &r.dumps.items))
                h2 { "Signatures" }
                ul.signatures {
                    @for s in &r.signatures { li.sig { a href=(signature_link(s)) { (s) } } }
                    @if r.signatures.is_empty() { li { "None." } }
                }
                nav.pages {
                    @if offset > 0 { a rel="prev" href=(search_link(&q, offset.saturating_sub(limit))) { "← previous" } }
                    @if offset + limit < r.texts.total.max(r.dumps.total) { a rel="next" href=(search_link(&q, offset + limit)) { "next →" } }
                }
            }
        },
    ))
}
