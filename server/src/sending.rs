//! Sending, wired into the server: the provider (Twilio or the simulator), the worker loop, the
//! simulator's callback clock, and what the HTTP handlers share.
//!
//! The worker loop calls `try_execute_task` again at once while there is work, otherwise sleeps
//! until the next message is due (at most a second, so messages from other instances are seen),
//! or until intake wakes it. On shutdown it finishes the step in progress (in-flight sends are
//! recorded) and stops.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use backend::crypto::DataKey;
use backend::db::{Db, now_micros};
use backend::intake::Intake;
use backend::settings::{Installation, SendingSettings, SettingsStoreError};
use backend::simulator::Simulator;
use backend::twilio::{Sender, TwilioClient, TwilioConfig};
use backend::worker::breaker::Breaker;
use backend::worker::{Fallback, Provider, SendGate, Worker, WorkerConfig};
use domain::signature::AuthToken;
use secrecy::ExposeSecret;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::settings::Settings;

/// The sender when no `TWILIO_PHONE_NUMBER` is set (simulator): Twilio's magic test number that
/// always passes.
pub const SIMULATOR_FROM: &str = "+15005550006";
/// Worker loops per instance: while one waits for Twilio's answers, another claims and records
/// (claims still take turns, so the limits hold).
pub const WORKER_LOOPS: usize = 2;

/// How long after a claim its sends may still start (see `WorkerConfig::start_window`).
pub const START_WINDOW: Duration = Duration::from_secs(10);
/// The status webhook's path.
pub const STATUS_PATH: &str = "/webhooks/twilio/status";
/// The incoming-message webhook's path (set it as the number's "A message comes in" URL).
pub const INBOUND_PATH: &str = "/webhooks/twilio/inbound";

/// What the API, webhook and console handlers share.
#[derive(Clone)]
pub struct Sending {
    pub db: Db,
    pub key: DataKey,
    pub installation: Installation,
    /// What signs status callbacks: Twilio's auth token, or the simulator's token. `None` when
    /// smsdesk talks to Twilio with API key credentials only (callbacks cannot be checked).
    pub webhook_token: Option<AuthToken>,
    /// The fallback provider's account sid and auth token: its status callbacks are signed with
    /// that token.
    pub fallback_webhook: Option<(String, AuthToken)>,
    /// `TWILIO_WEBHOOK_SHARED_KEY`: checks webhooks signed with a SharedKey (HMAC-SHA256).
    pub webhook_shared_key: Option<domain::signature::SharedKey>,
    /// The base URL Twilio calls (`SMSDESK_PUBLIC_URL`, else this server's own address).
    pub public_base: String,
    pub provider: Provider,
    pub default_sender: Sender,
    /// Wakes the worker when intake wrote something.
    pub wake: Arc<Notify>,
    /// How every message enters.
    pub intake: Intake,
    /// Two-factor verifications (the Verify API, the console's second factor).
    pub verifier: backend::verify::Verifier,
    /// API keys checked in the last second: a busy service costs no query per request.
    pub api_keys: backend::api_keys::KeyCache,
    /// The sending settings as intake last read them (at most a second old).
    settings_cache: Arc<std::sync::Mutex<Option<(std::time::Instant, SendingSettings)>>>,
    /// How long a claim lasts: past it, a send whose outcome was not recorded is in doubt.
    pub lease: Duration,
    /// When this instance's sends may start (shared by its worker loops).
    gate: SendGate,
    /// Whether Twilio is in a storm and this instance pauses sending (shared by its loops).
    breaker: Breaker,
    /// The second provider, if configured (its breaker shared by this instance's loops).
    pub fallback: Option<Fallback>,
}

impl std::fmt::Debug for Sending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sending")
            .field("public_base", &self.public_base)
            .field("simulator", &self.provider.is_simulator())
            .finish_non_exhaustive()
    }
}

impl Sending {
    pub async fn build(
        db: &Db,
        settings: &Settings,
        address: std::net::SocketAddr,
    ) -> anyhow::Result<Sending> {
        let key = DataKey::new(settings.data_key.expose_secret());
        let installation =
            backend::settings::installation(db, &key, settings.account_sid.as_deref())
                .await
                .context("reading the installation's account sid and simulator token")?;
        let public_base = settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"));
        let wake = Arc::new(Notify::new());
        let (provider, default_sender, webhook_token) = match &settings.twilio {
            Some(t) => {
                let (client, sender) = twilio_client(t, settings.send_timeout)?;
                let token = t
                    .auth_token
                    .as_ref()
                    .and_then(|tok| AuthToken::new(tok.expose_secret().to_owned()).ok());
                if token.is_none() {
                    tracing::warn!(
                        "TWILIO_AUTH_TOKEN is not set: status callbacks cannot be verified and will be refused"
                    );
                }
                if settings.public_url.is_none() {
                    tracing::warn!(
                        "SMSDESK_PUBLIC_URL is not set: Twilio cannot reach smsdesk to report delivery"
                    );
                }
                (Provider::Twilio(client), sender, token)
            }
            None => {
                let token = match &settings.auth_token {
                    Some(t) => t.expose_secret().to_owned(),
                    None => installation.simulator_token.expose_secret().to_owned(),
                };
                let token = AuthToken::new(token).context("the simulator's signing token")?;
                let sim = Simulator::new(
                    &installation.account_sid,
                    token.clone(),
                    settings.simulator_seed,
                );
                let from = settings
                    .phone_number
                    .clone()
                    .unwrap_or_else(|| SIMULATOR_FROM.to_owned());
                (
                    Provider::Simulator(Arc::new(sim)),
                    Sender::From(from),
                    Some(token),
                )
            }
        };
        let (fallback, fallback_webhook) = match &settings.fallback {
            Some(f) => {
                let (client, sender) = twilio_client(f, settings.send_timeout)
                    .context("building the fallback provider's client")?;
                let token = match &f.auth_token {
                    Some(tok) => Some((
                        f.account_sid.clone(),
                        AuthToken::new(tok.expose_secret().to_owned())
                            .context("SMSDESK_FALLBACK_AUTH_TOKEN cannot check signatures")?,
                    )),
                    None => None,
                };
                tracing::info!(
                    base_url = %f.api_base_url,
                    "a fallback provider carries messages while Twilio is in a storm"
                );
                let fallback = Fallback {
                    provider: Provider::Twilio(client),
                    sender,
                    breaker: Breaker::default(),
                };
                (Some(fallback), token)
            }
            None => (None, None),
        };
        let intake = Intake::new(db.clone(), key.clone(), wake.clone());
        Ok(Sending {
            fallback,
            fallback_webhook,
            verifier: backend::verify::Verifier::new(db.clone(), key.clone(), intake.clone()),
            intake,
            db: db.clone(),
            key,
            installation,
            webhook_token,
            webhook_shared_key: settings
                .webhook_shared_key
                .as_ref()
                .and_then(|k| domain::signature::SharedKey::new(k.expose_secret()).ok()),
            public_base,
            provider,
            default_sender,
            wake,
            settings_cache: Arc::default(),
            api_keys: backend::api_keys::KeyCache::default(),
            // A send starts within START_WINDOW of its claim and takes at most two requests
            // (an in-doubt lookup, the send) at the timeout, four with a fallback (a lookup at
            // each provider, the send at the primary, then at the fallback): past that, nothing
            // is under way.
            lease: START_WINDOW
                + settings.send_timeout * if settings.fallback.is_some() { 4 } else { 2 }
                + Duration::from_secs(5),
            gate: SendGate::default(),
            breaker: Breaker::default(),
        })
    }

    /// The `StatusCallback` given with every message: none when Twilio could not reach it.
    fn status_callback(&self, settings: &Settings) -> Option<String> {
        if settings.twilio.is_some() && settings.public_url.is_none() {
            return None;
        }
        Some(self.status_url())
    }

    /// The sending settings for intake: read from the database at most once a second, so a
    /// change an admin saves applies within a second on every instance.
    pub async fn settings(&self) -> Result<SendingSettings, SettingsStoreError> {
        {
            let cache = self
                .settings_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some((at, s)) = cache.as_ref()
                && at.elapsed() < Duration::from_secs(1)
            {
                return Ok(s.clone());
            }
        }
        let fresh = backend::settings::sending(&self.db).await?;
        *self
            .settings_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((std::time::Instant::now(), fresh.clone()));
        Ok(fresh)
    }

    /// A worker over this provider (the server's loop uses one; tests drive one by hand).
    pub fn worker(&self, status_callback: Option<String>) -> Worker {
        let mut config = WorkerConfig::new(self.default_sender.clone(), status_callback);
        config.lease = self.lease;
        config.start_window = START_WINDOW;
        config.gate = self.gate.clone();
        config.breaker = self.breaker.clone();
        config.fallback = self.fallback.clone();
        Worker::new(
            self.db.clone(),
            self.key.clone(),
            self.provider.clone(),
            config,
        )
    }

    /// The status webhook's absolute URL at this server.
    pub fn status_url(&self) -> String {
        format!("{}{STATUS_PATH}", self.public_base)
    }

    /// Starts the worker loop (unless `SMSDESK_WORKER=false`) and, when simulating, the clock
    /// that posts the simulator's callbacks. Both stop when `stop` turns true.
    pub fn spawn(&self, settings: &Settings, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        if settings.worker {
            for _ in 0..WORKER_LOOPS {
                let worker = self.worker(self.status_callback(settings));
                tasks.push(tokio::spawn(run_worker(
                    worker,
                    self.wake.clone(),
                    stop.clone(),
                )));
            }
        }
        if let Provider::Simulator(sim) = &self.provider {
            tasks.push(tokio::spawn(run_simulator(sim.clone(), stop.clone())));
        }
        tasks.push(tokio::spawn(remove_old_bodies(
            self.db.clone(),
            stop.clone(),
        )));
        tasks.push(tokio::spawn(fold_totals(self.db.clone(), stop.clone())));
        tasks.push(tokio::spawn(fetch_late_prices(
            self.db.clone(),
            self.provider.clone(),
            self.fallback.as_ref().map(|f| f.provider.clone()),
            stop.clone(),
        )));
        tasks.push(tokio::spawn(post_budget_alerts(
            self.clone(),
            settings.alert_webhook_secret.clone(),
            stop.clone(),
        )));
        tasks.push(tokio::spawn(forget_idempotency_keys(self.db.clone(), stop)));
        tasks
    }
}

/// A client for a Twilio account (or an API with its shape) and the sender there.
fn twilio_client(
    t: &crate::settings::TwilioSettings,
    timeout: Duration,
) -> anyhow::Result<(TwilioClient, Sender)> {
    let (username, password) = match (&t.api_key, &t.auth_token) {
        (Some((id, secret)), _) => (id.clone(), secret.clone()),
        (None, Some(token)) => (t.account_sid.clone(), token.clone()),
        (None, None) => anyhow::bail!("Twilio credentials are incomplete"),
    };
    let client = TwilioClient::new(TwilioConfig {
        base_url: t.api_base_url.clone(),
        account_sid: t.account_sid.clone(),
        username,
        password,
        timeout,
    })
    .context("building the Twilio client")?;
    let sender = match (&t.phone_number, &t.messaging_service_sid) {
        (_, Some(mg)) => Sender::MessagingService(mg.clone()),
        (Some(from), None) => Sender::From(from.clone()),
        (None, None) => anyhow::bail!("TWILIO_PHONE_NUMBER is missing"),
    };
    Ok((client, sender))
}

/// Bodies past the retention period in Settings are removed: every instance asks each minute
/// (the first time a minute after start-up), and one of them runs the job per period
/// (`backend::retention`).
async fn remove_old_bodies(db: Db, mut stop: watch::Receiver<bool>) {
    let minute = Duration::from_secs(60);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + minute, minute);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let run = async {
                    let days = backend::settings::sending(&db).await?.data.body_retention_days;
                    backend::retention::run(&db, days, now_micros()).await?;
                    anyhow::Ok(())
                };
                if let Err(e) = run.await {
                    tracing::warn!(error = %e, "could not remove the bodies past their retention; trying again in a minute");
                }
            }
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
}

async fn run_worker(worker: Worker, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    // Steps that failed in a row (the database is down): the first is logged as an error, then
    // one a minute, and the recovery once.
    let mut failed: u32 = 0;
    loop {
        if *stop.borrow() {
            break;
        }
        let now = now_micros();
        let result = worker.try_execute_task(now).await;
        if result.is_ok() && failed > 0 {
            tracing::info!(failed_steps = failed, "the worker runs again");
            failed = 0;
        }
        let pause = match result {
            Ok(step) if step.claimed > 0 || step.expired > 0 => Duration::ZERO,
            Ok(step) => {
                let until = step.next_due.map_or(1_000_000, |due| (due - now).max(0));
                Duration::from_micros(until.clamp(0, 1_000_000) as u64)
            }
            Err(e) => {
                if failed.is_multiple_of(60) {
                    tracing::error!(error = %e, failed_steps = failed + 1, "the worker could not run a step (paused); trying again every second, nothing is lost meanwhile");
                }
                failed = failed.saturating_add(1);
                Duration::from_secs(1)
            }
        };
        if pause.is_zero() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = wake.notified() => {}
            _ = stop.changed() => {}
        }
    }
    tracing::info!("the worker stopped");
}

/// The changes to the daily totals are folded into them every few seconds
/// (`backend::totals`), so the log's counts read a few thousand rows.
async fn fold_totals(db: Db, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_micros(backend::totals::FOLD_EVERY as u64);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = backend::totals::fold(&db).await {
                    tracing::warn!(error = %e, "could not fold the changes into the message totals; trying again in a few seconds");
                }
            }
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
}

/// Prices Twilio reports late are asked for every minute, by one instance
/// (`backend::late_prices`).
async fn fetch_late_prices(
    db: Db,
    provider: Provider,
    fallback: Option<Provider>,
    mut stop: watch::Receiver<bool>,
) {
    let minute = Duration::from_secs(60);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + minute, minute);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = backend::late_prices::run(&db, &provider, fallback.as_ref(), now_micros()).await {
                    tracing::warn!(error = %e, "could not ask for late prices; trying again in a minute");
                }
            }
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
}

/// Budget alerts are posted to the webhook in Settings every few seconds, once across
/// instances (`backend::budgets::post_alerts`), and sent by SMS to the numbers Settings name.
async fn post_budget_alerts(
    sending: Sending,
    secret: Option<secrecy::SecretString>,
    mut stop: watch::Receiver<bool>,
) {
    let every = Duration::from_secs(5);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let http = backend::budgets::alert_client();
    let mut warned = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = alert_round(&sending, &http, secret.as_ref(), &mut warned).await {
                    tracing::warn!(error = %e, "could not post the budget alerts; trying again in a few seconds");
                }
            }
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
}

/// One round of [`post_budget_alerts`]; answers how many alerts it handled.
pub async fn alert_round(
    sending: &Sending,
    http: &backend::budgets::HttpClient,
    secret: Option<&secrecy::SecretString>,
    warned: &mut bool,
) -> anyhow::Result<usize> {
    use secrecy::ExposeSecret;
    let settings = backend::settings::sending(&sending.db).await?;
    let url = settings.budgets.alert_webhook_url.as_deref();
    let hook = match (url, secret) {
        (Some(url), Some(secret)) => Some(backend::budgets::AlertHook {
            url,
            secret: secret.expose_secret().as_bytes(),
        }),
        (Some(_), None) => {
            if !std::mem::replace(warned, true) {
                tracing::warn!(
                    "budget alerts are not posted to the webhook: Settings name one but SMSDESK_ALERT_WEBHOOK_SECRET is not set"
                );
            }
            None
        }
        (None, _) => None,
    };
    let now = now_micros();
    let done = backend::budgets::post_alerts(&sending.db, http, hook, now).await?;
    let numbers = if done.is_empty() {
        Vec::new()
    } else {
        backend::budgets::alert_numbers_e164(&sending.db, &sending.key).await?
    };
    if !numbers.is_empty() {
        let submissions = done
            .iter()
            .flat_map(|a| {
                let text = backend::budgets::alert_text(a);
                numbers.iter().map(move |n| backend::intake::Submission {
                    to: n.clone(),
                    content: backend::intake::Content::Body(text.clone()),
                    category: None,
                    sender: None,
                    validity_seconds: Some(3_600),
                })
            })
            .collect();
        let source = backend::outbox::Source::System("budget_alert".to_owned());
        let results = sending
            .intake
            .submit(&settings, &source, submissions, now)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for refused in results.iter().filter_map(|r| r.as_ref().err()) {
            tracing::warn!(reason = %refused.message, "a budget alert SMS was refused");
        }
    }
    Ok(done.len())
}

/// Idempotency keys (and the answers stored with them) are kept a day: forgotten every ten
/// minutes after that.
async fn forget_idempotency_keys(db: Db, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = backend::outbox::purge_idempotency(&db, now_micros()).await {
                    tracing::warn!(error = %e, "could not forget old idempotency keys; trying again in 10 minutes");
                }
            }
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
}

async fn run_simulator(sim: Arc<Simulator>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // A long backlog of callbacks does not hold up shutdown (the simulator's state
                // is in memory and ends with the process anyway).
                tokio::select! {
                    _ = sim.post_due(now_micros()) => {}
                    _ = stop.changed() => break,
                }
            }
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
}
