//! Who is asking: the login and logout pages, and the layer in front of every other route.
//! Without accounts (loopback only) everyone is a local viewer; with them, a page without a
//! session goes to the login form and an API call gets 401. Changes need an admin and the
//! session's CSRF token.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::html;
use serde::Deserialize;

use crate::accounts::{same_token, Role, Session};
use crate::pages::layout;
use crate::state::{ConsoleState, Failure};

/// The session cookie's name.
const COOKIE: &str = "cerfs_session";

/// The caller of a request, as the layer found it.
#[derive(Debug, Clone)]
pub enum Who {
    /// No accounts are configured: a viewer on loopback.
    Local,
    /// A logged-in user.
    User(Session),
}

impl Who {
    /// The session's CSRF token, for forms.
    pub fn csrf(&self) -> Option<&str> {
        match self {
            Who::Local => None,
            Who::User(s) => Some(&s.csrf),
        }
    }

    /// Whether it may change settings and download cabs.
    pub fn is_admin(&self) -> bool {
        matches!(self, Who::User(s) if s.role == Role::Admin)
    }

    /// Allows an admin's change carrying the session's CSRF token; refuses (403) the rest.
    pub fn check_change(&self, token: &str) -> Result<&Session, Failure> {
        match self {
            Who::User(s) if s.role == Role::Admin => {
                if same_token(&s.csrf, token) {
                    Ok(s)
                } else {
                    tracing::warn!(user = %s.user, "refused a change without the session's CSRF token");
                    Err(Failure {
                        status: StatusCode::FORBIDDEN,
                        message: "the form's security token is missing or stale: reload the page and try again".into(),
                    })
                }
            }
            Who::User(s) => {
                tracing::warn!(user = %s.user, "refused a change by a viewer");
                Err(Failure {
                    status: StatusCode::FORBIDDEN,
                    message: "only an admin account may change settings or download cabs".into(),
                })
            }
            Who::Local => Err(Failure {
                status: StatusCode::FORBIDDEN,
                message: "changes need an admin account: start the console with --users FILE \
                          (add one with `cerfs web-user add NAME --role admin`)"
                    .into(),
            }),
        }
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The layer: finds the caller and lets the request through, or sends it to log in.
pub async fn require(
    State(state): State<Arc<ConsoleState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(accounts) = &state.accounts else {
        req.extensions_mut().insert(Who::Local);
        return next.run(req).await;
    };
    let path = req.uri().path();
    // /metrics holds counts only, and scrapers do not log in.
    if path == "/login" || path == "/metrics" || path.starts_with("/static/") {
        return next.run(req).await;
    }
    let session = cookie_value(req.headers()).and_then(|id| accounts.sessions.get(&id));
    match session {
        Some(session) => {
            req.extensions_mut().insert(Who::User(session));
            next.run(req).await
        }
        None if path.starts_with("/api/") => Failure {
            status: StatusCode::UNAUTHORIZED,
            message: "log in first: POST /login with user and password, then send the cerfs_session cookie".into(),
        }
        .into_response(),
        None => Redirect::to("/login").into_response(),
    }
}

pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

fn login_form(message: Option<&str>) -> maud::Markup {
    layout(
        "Log in",
        None,
        html! {
            h1 { "Log in" }
            @if let Some(m) = message { p.error { (m) } }
            form.login method="post" action="/login" {
                label { "User " input type="text" name="user" autocomplete="username" required; }
                label { "Password " input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "Log in" }
            }
        },
    )
}

async fn login_page(State(state): State<Arc<ConsoleState>>) -> Response {
    if state.accounts.is_none() {
        return Redirect::to("/").into_response();
    }
    login_form(None).into_response()
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
}

async fn login(
    State(state): State<Arc<ConsoleState>>,
    ConnectInfo(crate::listener::Peer(peer)): ConnectInfo<crate::listener::Peer>,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(accounts) = state.accounts.clone() else {
        return Redirect::to("/").into_response();
    };
    if let Err(wait) = accounts.throttle.check(peer.ip()) {
        tracing::warn!(%peer, "refused a login: too many failures from this address");
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            login_form(Some(
                "Too many failed logins from your address: wait a few minutes.",
            )),
        )
            .into_response();
        if let Ok(v) = wait.as_secs().max(1).to_string().parse() {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    let (user, password) = (form.user, form.password);
    let checked = {
        let accounts = Arc::clone(&accounts);
        let user = user.clone();
        tokio::task::spawn_blocking(move || accounts.users.check(&user, &password)).await
    };
    match checked {
        Ok(Some(role)) => {
            accounts.throttle.succeeded(peer.ip());
            let id = accounts.sessions.create(&user, role);
            tracing::info!(%user, role = role.as_str(), %peer, "console login");
            let cookie = format!(
                "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
                crate::accounts::SESSION_TIME.as_secs(),
                if state.secure { "; Secure" } else { "" }
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        _ => {
            accounts.throttle.failed(peer.ip());
            tracing::warn!(%user, %peer, "console login refused: wrong user or password");
            (
                StatusCode::UNAUTHORIZED,
                login_form(Some("Wrong user or password.")),
            )
                .into_response()
        }
    }
}

/// The logout form's field.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

async fn logout(
    State(state): State<Arc<ConsoleState>>,
    axum::Extension(who): axum::Extension<Who>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    if let (Who::User(s), Some(accounts)) = (&who, &state.accounts) {
        if same_token(&s.csrf, &form.csrf) {
            if let Some(id) = cookie_value(&headers) {
                accounts.sessions.remove(&id);
            }
            let clear = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
            return ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response();
        }
    }
    Redirect::to("/").into_response()
}
