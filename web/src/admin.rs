//! What an admin changes from the console, through fs-core as the CLI does: policy.txt and
//! a bucket's status.txt (validated by the share's own grammar; the next client reads the
//! change), and cab downloads (streamed, checked against the sha256 recorded at upload).
//! Every change needs an admin session and the session's CSRF token.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use cerfs_fs_core::{SettingsTarget, StoredCab};
use maud::{html, Markup};
use serde::Deserialize;

use crate::auth::Who;
use crate::pages::PageFailure;
use crate::state::{db_failure, ConsoleState, Failure};

pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/settings/policy", post(change_policy))
        .route("/buckets/{id}/status", post(change_status))
        .route("/cabs/{id}/download", get(download))
}

/// The stored parameters of a settings file (none when it does not exist).
pub(crate) async fn stored_settings(
    state: &Arc<ConsoleState>,
    target: SettingsTarget,
) -> Result<Vec<(String, String)>, Failure> {
    let fs = Arc::clone(&state.fs);
    tokio::task::spawn_blocking(move || fs.settings_of(&target))
        .await
        .map_err(Failure::internal)?
        .map(Option::unwrap_or_default)
        .map_err(Failure::internal)
}

/// A settings file's parameters, with forms to set and remove them for an admin.
pub(crate) fn settings_editor(who: &Who, action: &str, stored: &[(String, String)]) -> Markup {
    html! {
        table.list.stored {
            thead { tr { th { "Setting" } th { "Value" } @if who.is_admin() { th {} } } }
            tbody {
                @for (k, v) in stored {
                    tr {
                        td { (k) } td { (v) }
                        @if let (true, Some(csrf)) = (who.is_admin(), who.csrf()) {
                            td {
                                form method="post" action=(action) {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="key" value=(k);
                                    input type="hidden" name="remove" value="yes";
                                    button type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                }
                @if stored.is_empty() { tr { td colspan="3" { "Nothing set." } } }
            }
        }
        @if let (true, Some(csrf)) = (who.is_admin(), who.csrf()) {
            form.set method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                label { "Setting " input type="text" name="key" placeholder="Crashes per bucket" required; }
                label { "Value " input type="text" name="value" placeholder="10"; }
                button type="submit" { "Set" }
            }
        } @else {
            p.note { "Changing settings needs an admin account." }
        }
    }
}

/// A set or remove form.
#[derive(Debug, Deserialize)]
pub(crate) struct ChangeForm {
    #[serde(default)]
    csrf: String,
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    remove: Option<String>,
}

async fn apply(
    state: &Arc<ConsoleState>,
    who: &Who,
    target: SettingsTarget,
    form: ChangeForm,
) -> Result<(), Failure> {
    let session = who.check_change(&form.csrf)?;
    let user = session.user.clone();
    let fs = Arc::clone(&state.fs);
    let key = form.key.trim().to_owned();
    let removing = form.remove.is_some();
    let value = form.value.trim().to_owned();
    let what = target.clone();
    let done = tokio::task::spawn_blocking(move || {
        if removing {
            fs.clear_settings(&target, std::slice::from_ref(&key))
        } else {
            fs.set_settings(&target, &[(key.clone(), value.clone())])
                .map(|_| ())
        }
    })
    .await
    .map_err(Failure::internal)?;
    match done {
        Ok(()) => {
            tracing::info!(%user, target = ?what, key = %form.key, remove = removing, "settings changed in the web console");
            Ok(())
        }
        Err(e) => {
            let failure = Failure::from_fs("refused", &e);
            // A failure of ours is logged as an error by from_fs; a refusal is the user's.
            if !failure.status.is_server_error() {
                tracing::warn!(%user, target = ?what, "refused a settings change from the web console: {e}");
            }
            Err(failure)
        }
    }
}

async fn change_policy(
    State(state): State<Arc<ConsoleState>>,
    Extension(who): Extension<Who>,
    Form(form): Form<ChangeForm>,
) -> Result<Redirect, PageFailure> {
    apply(&state, &who, SettingsTarget::Policy, form).await?;
    Ok(Redirect::to("/settings"))
}

async fn change_status(
    State(state): State<Arc<ConsoleState>>,
    Extension(who): Extension<Who>,
    Path(id): Path<i64>,
    Form(form): Form<ChangeForm>,
) -> Result<Redirect, PageFailure> {
    // The token first: a forged request learns nothing about which buckets exist.
    who.check_change(&form.csrf)?;
    let bucket = state
        .read(move |db| db.bucket(id).map_err(db_failure))
        .await?
        .ok_or_else(|| Failure::not_found(format!("no bucket {id}")))?;
    apply(&state, &who, SettingsTarget::Status(bucket.subpath), form).await?;
    Ok(Redirect::to(&format!("/buckets/{id}")))
}

async fn download(
    State(state): State<Arc<ConsoleState>>,
    Extension(who): Extension<Who>,
    Path(id): Path<i64>,
) -> Result<Response, PageFailure> {
    if !who.is_admin() {
        // A download changes nothing, but dumps can hold secrets: admins only.
        return Err(PageFailure(Failure {
            status: StatusCode::FORBIDDEN,
            message: "downloading cabs needs an admin account: dumps can hold secrets".into(),
        }));
    }
    let cab = state
        .read(move |db| db.cab(id).map_err(db_failure))
        .await?
        .ok_or_else(|| Failure::not_found(format!("no cab {id} on the share")))?;
    let opened = {
        let (fs, subpath, name) = (Arc::clone(&state.fs), cab.subpath.clone(), cab.name.clone());
        tokio::task::spawn_blocking(move || StoredCab::open(fs, &subpath, &name))
            .await
            .map_err(Failure::internal)?
    };
    let mut reader = opened.map_err(|e| {
        Failure::from_fs(
            &format!("cannot open cabs\\{}\\{}", cab.subpath, cab.name),
            &e,
        )
    })?;
    let path = reader.path().to_owned();
    if let Who::User(s) = &who {
        tracing::info!(user = %s.user, cab = %path, "cab downloaded from the web console");
    }
    // A bounded channel: the reader stays at most a few pieces ahead of the client.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let expected = cab.sha256.clone();
    tokio::task::spawn_blocking(move || {
        loop {
            match reader.next_piece() {
                Ok(None) => break,
                Ok(Some(piece)) => {
                    if tx.blocking_send(Ok(piece)).is_err() {
                        return; // the client went away
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            }
        }
        let (_, got) = reader.finish();
        if expected.as_deref().is_some_and(|e| e != got) {
            tracing::error!(cab = %path, %got, "a downloaded cab does not match its recorded sha256");
            // Cut the transfer: the client must not take a damaged cab for a whole one.
            let _ = tx.blocking_send(Err(std::io::Error::other("sha256 mismatch")));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let disposition = format!(
        "attachment; filename=\"{}\"",
        cab.name.replace(['"', '\\', '\r', '\n'], "_")
    );
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.ms-cab-compressed".to_owned(),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CONTENT_LENGTH, cab.size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response();
    if let Some(sha) = &cab.sha256 {
        if let Ok(v) = sha.parse() {
            response.headers_mut().insert("x-cerfs-sha256", v);
        }
    }
    Ok(response)
}
