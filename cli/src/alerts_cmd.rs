//! `cerfs alerts show|set|test`: who is told when something new or sudden happens, and
//! what a spike is. Stored in the database: a running server reads them every round.

use anyhow::{bail, Context, Result};
use cerfs_alerts::{AlertSettings, Format, Receiver};
use cerfs_db::Alert;
use clap::{Args, Subcommand, ValueEnum};

use crate::output::DbArg;

/// Arguments of `cerfs alerts`.
#[derive(Debug, Args)]
#[command(after_help = "\
The server (serve, mount or http) looks every few seconds and raises each alert once:
  new_bucket        a bucket appeared (a crash never seen before)
  new_signature     a walked minidump has a signature no earlier crash had
  spike             a bucket's hits in the last hour reach --spike-min and
                    --spike-factor times its hourly average over the 7 days before today
  store_near_quota  the store holds --quota-percent of its quota (once a day)
Each is POSTed as JSON to every webhook (json: cerfs's own fields; slack and teams: a
{\"text\": ...} body their incoming webhooks take) from an outbox in the database:
retried with backoff (--retry-seconds, doubling up to an hour) until delivered, also
across restarts, and never in a client's way. SQL: the alerts view.

Examples:
  cerfs alerts set --webhook https://hooks.slack.com/services/T/B/X --format slack
  cerfs alerts set --spike-factor 10 --spike-min 50
  cerfs alerts test
  cerfs alerts set --remove-webhook https://hooks.slack.com/services/T/B/X")]
pub struct AlertsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: AlertsAction,
}

/// Body formats of `--format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// cerfs's own JSON fields.
    Json,
    /// {"text": ...} for Slack.
    Slack,
    /// {"text": ...} for Microsoft Teams.
    Teams,
}

/// `cerfs alerts` subcommands.
#[derive(Debug, Subcommand)]
pub enum AlertsAction {
    /// Print the receivers, the rules and the latest alerts with their deliveries.
    Show {
        #[command(flatten)]
        db: DbArg,
    },
    /// Add or remove webhooks, change the rules.
    Set {
        #[command(flatten)]
        db: DbArg,
        /// Add a webhook (http:// or https://); repeat for several.
        #[arg(long, value_name = "URL")]
        webhook: Vec<String>,
        /// The body of the webhooks added.
        #[arg(long, value_enum, default_value = "json")]
        format: FormatArg,
        /// Remove a webhook.
        #[arg(long, value_name = "URL")]
        remove_webhook: Vec<String>,
        /// A spike is at least K times the trailing hourly average.
        #[arg(long, value_name = "K")]
        spike_factor: Option<f64>,
        /// A spike has at least N hits in the hour.
        #[arg(long, value_name = "N")]
        spike_min: Option<u64>,
        /// Tell when the store holds P percent of its quota.
        #[arg(long, value_name = "P", value_parser = clap::value_parser!(u8).range(1..=100))]
        quota_percent: Option<u8>,
        /// First retry of a failed delivery after S seconds.
        #[arg(long, value_name = "S", value_parser = clap::value_parser!(u64).range(1..=3600))]
        retry_seconds: Option<u64>,
    },
    /// Send a test alert to every webhook now and say how each answered.
    Test {
        #[command(flatten)]
        db: DbArg,
    },
}

/// Runs `cerfs alerts`.
pub fn run(args: &AlertsArgs) -> Result<()> {
    match &args.action {
        AlertsAction::Show { db } => show(db),
        AlertsAction::Set {
            db,
            webhook,
            format,
            remove_webhook,
            spike_factor,
            spike_min,
            quota_percent,
            retry_seconds,
        } => {
            let store = db.admin_store()?;
            let mut settings =
                AlertSettings::load(&*store).context("cannot read the alert settings")?;
            for url in webhook {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!("--webhook {url:?} is not an http:// or https:// URL");
                }
                settings.receivers.retain(|r| r.url != *url);
                settings.receivers.push(Receiver {
                    format: match format {
                        FormatArg::Json => Format::Json,
                        FormatArg::Slack => Format::Slack,
                        FormatArg::Teams => Format::Teams,
                    },
                    url: url.clone(),
                });
            }
            for url in remove_webhook {
                let before = settings.receivers.len();
                settings.receivers.retain(|r| r.url != *url);
                if settings.receivers.len() == before {
                    bail!("no webhook {url:?} to remove (see `cerfs alerts show`)");
                }
            }
            if let Some(k) = spike_factor {
                if !(k.is_finite() && *k >= 1.0) {
                    bail!("--spike-factor {k} must be at least 1");
                }
                settings.spike.factor = *k;
            }
            if let Some(n) = spike_min {
                settings.spike.min_hits = *n;
            }
            if let Some(p) = quota_percent {
                settings.quota_percent = *p;
            }
            if let Some(s) = retry_seconds {
                settings.retry = std::time::Duration::from_secs(*s);
            }
            settings
                .store(&*store)
                .context("cannot store the alert settings")?;
            show(db)
        }
        AlertsAction::Test { db } => test(db),
    }
}

fn show(db: &DbArg) -> Result<()> {
    let store = db.admin_store()?;
    let settings = AlertSettings::load(&*store).context("cannot read the alert settings")?;
    if settings.receivers.is_empty() {
        println!("webhooks      - (add one with `cerfs alerts set --webhook URL`)");
    }
    for r in &settings.receivers {
        println!("webhook       {} ({})", r.url, r.format.as_str());
    }
    println!(
        "spike         {} hits in an hour and {} times the hourly average",
        settings.spike.min_hits, settings.spike.factor
    );
    println!("quota         at {}%", settings.quota_percent);
    println!(
        "retry         after {} s, doubling",
        settings.retry.as_secs()
    );
    println!();
    crate::query_cmd::print(
        &db.query_db()?,
        "SELECT alert_id, kind, subject, raised_at, receiver, \
                CASE WHEN delivered_at IS NOT NULL THEN 'delivered ' || delivered_at \
                     WHEN receiver IS NULL THEN 'no receiver' \
                     ELSE 'pending (' || attempts || ' attempts' || \
                          coalesce(', ' || last_error, '') || ')' END AS delivery \
         FROM alerts ORDER BY alert_id DESC LIMIT 20",
        &[],
        crate::output::Format::Table,
    )?;
    Ok(())
}

fn test(db: &DbArg) -> Result<()> {
    let store = db.admin_store()?;
    let settings = AlertSettings::load(&*store).context("cannot read the alert settings")?;
    if settings.receivers.is_empty() {
        bail!("no webhook to test: add one with `cerfs alerts set --webhook URL`");
    }
    let alert = Alert {
        alert_id: 0,
        kind: "test".to_owned(),
        subject: "test".to_owned(),
        detail: "a test alert from `cerfs alerts test`".to_owned(),
        raised_at: String::new(),
    };
    let client = cerfs_alerts::client()?;
    let server = cerfs_alerts::server_name();
    let mut failed = 0;
    for receiver in &settings.receivers {
        match cerfs_alerts::send(&client, &alert, receiver, &server) {
            Ok(()) => println!("{}\tdelivered", receiver.url),
            Err(e) => {
                failed += 1;
                println!("{}\tfailed: {e}", receiver.url);
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} webhooks failed", settings.receivers.len());
    }
    Ok(())
}
