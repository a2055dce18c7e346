//! Alerts of a cerfs server: a new bucket, a new signature, a spike of hits in a bucket, the
//! store near its quota. A background worker of the serving process looks every few
//! seconds ([`AlertWorker`]), raises each alert once into the store, and delivers the
//! store's outbox to the configured webhooks: JSON POSTs (cerfs's own body, or a Slack- or
//! Teams-compatible `{"text": ...}`), retried with exponential backoff, never in a
//! client's path. Settings live in the database ([`AlertSettings`], `cerfs alerts`), read
//! again at every round, so a running server picks changes up without a restart.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use cerfs_db::{Alert, AlertStore, LifecycleStore, NewAlert, SpikeRule};

/// Settings keys (server settings of the database).
pub mod keys {
    /// Receivers, one per line: `FORMAT URL` (format json, slack or teams).
    pub const WEBHOOKS: &str = "alerts.webhooks";
    /// A spike: this many times the trailing hourly average.
    pub const SPIKE_FACTOR: &str = "alerts.spike_factor";
    /// A spike: at least this many hits in the hour.
    pub const SPIKE_MIN: &str = "alerts.spike_min";
    /// The store is near its quota at this percentage of `quota.max_store`.
    pub const QUOTA_PERCENT: &str = "alerts.quota_percent";
    /// First retry after this many seconds, doubling up to an hour.
    pub const RETRY_SECONDS: &str = "alerts.retry_seconds";
}

/// How a receiver wants its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"kind", "subject", "detail", "raised_at", "alert_id", "server"}`.
    Json,
    /// `{"text": "..."}`, what Slack's incoming webhooks take.
    Slack,
    /// `{"text": "..."}`, what Teams' incoming webhooks take.
    Teams,
}

impl Format {
    /// As written in the settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Slack => "slack",
            Format::Teams => "teams",
        }
    }

    /// From the settings' word.
    pub fn parse(word: &str) -> Option<Format> {
        match word {
            "json" => Some(Format::Json),
            "slack" => Some(Format::Slack),
            "teams" => Some(Format::Teams),
            _ => None,
        }
    }
}

/// A webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    /// Its body's format.
    pub format: Format,
    /// Where to POST.
    pub url: String,
}

impl Receiver {
    /// `FORMAT URL`, as stored (and as the outbox names it).
    pub fn line(&self) -> String {
        format!("{} {}", self.format.as_str(), self.url)
    }

    /// From a stored line.
    pub fn parse(line: &str) -> Option<Receiver> {
        let (format, url) = line.trim().split_once(' ')?;
        Some(Receiver {
            format: Format::parse(format)?,
            url: url.trim().to_owned(),
        })
    }
}

/// The alert settings of a database.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// Who receives.
    pub receivers: Vec<Receiver>,
    /// What a spike is.
    pub spike: SpikeRule,
    /// Near the quota at this percentage.
    pub quota_percent: u8,
    /// The first retry's delay.
    pub retry: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            receivers: Vec::new(),
            spike: SpikeRule {
                factor: 5.0,
                min_hits: 20,
            },
            quota_percent: 90,
            retry: Duration::from_secs(30),
        }
    }
}

/// The store an alert worker needs.
pub trait AlertBackend: AlertStore + LifecycleStore {}
impl<T: AlertStore + LifecycleStore> AlertBackend for T {}

/// Why the alerts could not be read or sent.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] cerfs_db::StoreError),
    /// A delivery failed.
    #[error("{0}")]
    Delivery(String),
}

impl AlertSettings {
    /// The settings stored in `store` (defaults where nothing is stored).
    pub fn load(store: &dyn LifecycleStore) -> Result<AlertSettings, AlertError> {
        let defaults = AlertSettings::default();
        let get = |key: &str| store.server_setting(key);
        let receivers = get(keys::WEBHOOKS)?
            .map(|v| v.lines().filter_map(Receiver::parse).collect())
            .unwrap_or_default();
        let number = |key: &str| -> Result<Option<f64>, AlertError> {
            Ok(get(key)?.and_then(|v| v.trim().parse::<f64>().ok()))
        };
        Ok(AlertSettings {
            receivers,
            spike: SpikeRule {
                factor: number(keys::SPIKE_FACTOR)?.unwrap_or(defaults.spike.factor),
                min_hits: number(keys::SPIKE_MIN)?.map_or(defaults.spike.min_hits, |v| v as u64),
            },
            quota_percent: number(keys::QUOTA_PERCENT)?
                .map_or(defaults.quota_percent, |v| v.clamp(1.0, 100.0) as u8),
            retry: number(keys::RETRY_SECONDS)?
                .map_or(defaults.retry, |v| Duration::from_secs(v.max(1.0) as u64)),
        })
    }

    /// Stores these settings in `store`.
    pub fn store(&self, store: &dyn LifecycleStore) -> Result<(), AlertError> {
        let lines: Vec<String> = self.receivers.iter().map(Receiver::line).collect();
        let webhooks = (!lines.is_empty()).then(|| lines.join("\n"));
        store.set_server_setting(keys::WEBHOOKS, webhooks.as_deref())?;
        store.set_server_setting(keys::SPIKE_FACTOR, Some(&self.spike.factor.to_string()))?;
        store.set_server_setting(keys::SPIKE_MIN, Some(&self.spike.min_hits.to_string()))?;
        store.set_server_setting(keys::QUOTA_PERCENT, Some(&self.quota_percent.to_string()))?;
        store.set_server_setting(keys::RETRY_SECONDS, Some(&self.retry.as_secs().to_string()))?;
        Ok(())
    }
}

/// The body `alert` is POSTed with to a receiver of `format`.
pub fn body(alert: &Alert, format: Format, server: &str) -> serde_json::Value {
    match format {
        Format::Json => serde_json::json!({
            "alert_id": alert.alert_id,
            "kind": alert.kind,
            "subject": alert.subject,
            "detail": alert.detail,
            "raised_at": alert.raised_at,
            "server": server,
        }),
        Format::Slack | Format::Teams => serde_json::json!({
            "text": format!("cerfs on {server}: {}", alert.detail),
        }),
    }
}

/// POSTs `alert` to `receiver` (10 s at most); an answer other than 2xx is a failure.
pub fn send(
    client: &reqwest::blocking::Client,
    alert: &Alert,
    receiver: &Receiver,
    server: &str,
) -> Result<(), AlertError> {
    let response = client
        .post(&receiver.url)
        .json(&body(alert, receiver.format, server))
        .send()
        .map_err(|e| AlertError::Delivery(format!("cannot reach {}: {e}", receiver.url)))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(AlertError::Delivery(format!(
            "{} answered {status}",
            receiver.url
        )))
    }
}

/// A client for webhooks: 10 s per request, no redirects (a webhook URL is exact).
pub fn client() -> Result<reqwest::blocking::Client, AlertError> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| AlertError::Delivery(format!("cannot build an HTTP client: {e}")))
}

/// This machine's name, for the bodies.
pub fn server_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "cerfs".to_owned())
}

/// One round: detect, check the quota, deliver what is due. Returns the alerts raised.
pub fn round(
    store: &dyn AlertBackend,
    client: &reqwest::blocking::Client,
    server: &str,
    max_store: Option<u64>,
) -> Result<Vec<Alert>, AlertError> {
    let settings = AlertSettings::load(store)?;
    let receivers: Vec<String> = settings.receivers.iter().map(Receiver::line).collect();
    let mut raised = store.detect(&settings.spike, &receivers)?;
    let limit = match max_store {
        Some(limit) => Some(limit),
        None => store
            .server_setting(cerfs_fs_core::MAX_STORE_SETTING)?
            .and_then(|v| v.parse().ok()),
    };
    if let Some(limit) = limit.filter(|l| *l > 0) {
        let used = store.usage()?.used_bytes;
        let percent = used.saturating_mul(100) / limit;
        if percent >= u64::from(settings.quota_percent) {
            let alert = NewAlert {
                kind: "store_near_quota",
                subject: "store".to_owned(),
                detail: format!(
                    "the store holds {used} bytes, {percent}% of its quota of {limit} bytes: \
                     new cabs are refused at 100%"
                ),
                dedupe_key: format!("quota:day{}", days_since_epoch()),
            };
            raised.extend(store.raise(&alert, &receivers)?);
        }
    }
    for alert in &raised {
        tracing::info!(kind = %alert.kind, subject = %alert.subject, "alert raised");
    }
    for delivery in store.due_deliveries(100)? {
        let Some(receiver) = Receiver::parse(&delivery.receiver) else {
            store.delivery_done(
                delivery.alert.alert_id,
                &delivery.receiver,
                Some(("not a receiver line", Duration::from_secs(86_400))),
            )?;
            continue;
        };
        match send(client, &delivery.alert, &receiver, server) {
            Ok(()) => store.delivery_done(delivery.alert.alert_id, &delivery.receiver, None)?,
            Err(e) => {
                let wait = settings
                    .retry
                    .saturating_mul(1u32 << delivery.attempts.min(12))
                    .min(Duration::from_secs(3600));
                tracing::warn!(
                    alert = delivery.alert.alert_id,
                    "alert delivery failed, retried in {wait:?}: {e}"
                );
                store.delivery_done(
                    delivery.alert.alert_id,
                    &delivery.receiver,
                    Some((&e.to_string(), wait)),
                )?;
            }
        }
    }
    Ok(raised)
}

/// Days since 1970-01-01 (UTC): the quota alert is raised once a day at most.
fn days_since_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0)
}

/// The background worker.
#[derive(Debug)]
pub struct AlertWorker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl AlertWorker {
    /// Starts a round every `interval` on `store`; `max_store` is the server's quota flag.
    ///
    /// # Errors
    /// The thread or the HTTP client cannot be made.
    pub fn spawn(
        store: Arc<dyn AlertBackend>,
        interval: Duration,
        max_store: Option<u64>,
    ) -> Result<AlertWorker, AlertError> {
        let client = client()?;
        let server = server_name();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("cerfs-alerts".to_owned())
            .spawn(move || loop {
                // On a store several servers share, one of them raises and delivers.
                match store.leads_background() {
                    Ok(true) => {
                        if let Err(e) = round(&*store, &client, &server, max_store) {
                            tracing::warn!("alerts: {e}");
                        }
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!("alerts: cannot tell whether this server runs them: {e}")
                    }
                }
                match stopped.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            })
            .map_err(|e| AlertError::Delivery(format!("cannot start the alert worker: {e}")))?;
        Ok(AlertWorker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops it (after its current round) and waits for the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for AlertWorker {
    fn drop(&mut self) {
        self.halt();
    }
}
