//! The worker: a state machine over the outbox, driven one step at a time by
//! [`Worker::try_execute_task`] (the server calls it in a loop; tests call it by hand, with the
//! time they choose).
//!
//! One step:
//! 1. **Claim**, in one transaction that every instance serializes on (a write to `worker_lock`
//!    first): the due messages in priority order (emergency, two-factor, the rest; FIFO within
//!    one), each admitted only if the global limits (per second, minute, hour: exact counts over
//!    the dispatch log), the recipient's limits (hour, day; emergency exempt if so set) and the
//!    sender's pace (segments per second) allow it now; otherwise it waits (`due_at` moves to the
//!    moment it would be allowed). A claimed message is leased, its attempt counted and its
//!    dispatch logged, so a limit is never exceeded even if the send then fails.
//! 2. **Send** each claimed message (concurrently, outside any transaction). A message whose last
//!    attempt's outcome was never recorded (a timeout, a 5xx, a crash: the lease ran out) is
//!    *in doubt*: Twilio's Message list is asked first whether it went out.
//! 3. **Record** every outcome in one transaction: the provider sid and status, or a retry with
//!    exponential backoff and jitter, or a final failure with Twilio's reason (an opt-out on
//!    21610, an admin alert on account errors).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use domain::admission::{self, SendRule};
use domain::errors::{self, Disposition};
use domain::ratelimit::{WeightedWindow, WindowLimit};
use domain::redact::mask_numbers;
use domain::status::{MessageStatus, Transition};
use futures::StreamExt;
use rand::Rng;
use tracing::Instrument;

use crate::crypto::DataKey;
use crate::db::{Db, DbError, Tx};
use crate::settings::{self, SendingSettings, SettingsStoreError};
use crate::simulator::Simulator;
use crate::twilio::{self, NewMessage, Sender, TwilioClient, TwilioError};
use crate::{consent, telemetry};
use crate::{on_db, on_tx};

const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Where messages go: Twilio, or the built-in simulator.
#[derive(Clone, Debug)]
pub enum Provider {
    Twilio(TwilioClient),
    Simulator(Arc<Simulator>),
}

impl Provider {
    async fn create(
        &self,
        message: &NewMessage,
        now: i64,
        settings: &SendingSettings,
    ) -> Result<twilio::Message, TwilioError> {
        match self {
            Provider::Twilio(client) => client.create_message(message).await,
            Provider::Simulator(sim) => sim.create(message, now, &settings.simulator),
        }
    }

    async fn list_to(
        &self,
        to: &str,
        day: chrono::NaiveDate,
    ) -> Result<Vec<twilio::Message>, TwilioError> {
        match self {
            Provider::Twilio(client) => client.list_messages_to(to, day).await,
            Provider::Simulator(sim) => Ok(sim.list_messages_to(to, day)),
        }
    }

    pub fn is_simulator(&self) -> bool {
        matches!(self, Provider::Simulator(_))
    }
}

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Most messages claimed in one step.
    pub batch_size: usize,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// How long a claim lasts; past it the message is in doubt (another loop or instance asks
    /// Twilio about it). Must exceed `start_window` plus two requests (the in-doubt lookup and
    /// the send) at the HTTP timeout.
    pub lease: Duration,
    /// How long after its claim a send may still start. A step whose sends queue up behind a
    /// slow Twilio returns the ones it could not start in time to the outbox (untried), so no
    /// send is ever still under way when its lease runs out, whatever the batch size.
    pub start_window: Duration,
    /// Absolute URL of smsdesk's status webhook, given to Twilio with every message.
    pub status_callback: Option<String>,
    /// The sender when the message names none: `TWILIO_PHONE_NUMBER` or the Messaging Service.
    pub default_sender: Sender,
    /// When this instance's sends may start; shared by all its worker loops.
    pub gate: SendGate,
}

/// The global limits kept by when sends actually start (the claim counts them when messages are
/// claimed, which can be a moment earlier): every send of this instance reserves its start here,
/// and waits for it, so the limits hold as Twilio counts them, by arrival
/// (`domain::admission`). Shared by every worker loop of one instance.
#[derive(Debug, Clone, Default)]
pub struct SendGate(Arc<std::sync::Mutex<VecDeque<i64>>>);

impl SendGate {
    /// Reserves the earliest start at or after `at` that keeps the global limits, unless it
    /// falls after `deadline` (then nothing is reserved and `None` returned).
    fn reserve(&self, at: i64, deadline: i64, settings: &SendingSettings) -> Option<i64> {
        let l = &settings.limits;
        let rules = [
            SendRule {
                limit: l.per_second,
                window: SECOND,
            },
            SendRule {
                limit: l.per_minute,
                window: MINUTE,
            },
            SendRule {
                limit: l.per_hour,
                window: HOUR,
            },
        ];
        let margin = i64::from(l.network_margin_ms) * 1_000;
        let mut recent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        admission::forget_before(&mut recent, at, &rules, margin);
        // Starts are kept in order, so the rule reads the right neighbours.
        let at = at.max(recent.back().copied().unwrap_or(at));
        let start = admission::next_send_at(&recent, at, &rules, margin);
        if start > deadline {
            return None;
        }
        recent.push_back(start);
        Some(start)
    }
}

impl WorkerConfig {
    pub fn new(default_sender: Sender, status_callback: Option<String>) -> WorkerConfig {
        WorkerConfig {
            batch_size: 1_000,
            concurrency: 32,
            lease: Duration::from_secs(120),
            start_window: Duration::from_secs(60),
            status_callback,
            default_sender,
            gate: SendGate::default(),
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub claimed: usize,
    /// Accepted by Twilio (or found already sent, when in doubt).
    pub sent: usize,
    /// Found already sent while in doubt (counted in `sent` too).
    pub found_in_doubt: usize,
    pub retry_scheduled: usize,
    /// Claimed but not started within the start window: back in the outbox, untried.
    pub not_started: usize,
    pub failed: usize,
    pub expired: usize,
    /// Due messages that must wait for a limit.
    pub deferred: usize,
    /// When the next message becomes due (µs), if any waits; the caller may sleep until then.
    pub next_due: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Settings(#[from] SettingsStoreError),
}

impl From<sqlx::Error> for WorkerError {
    fn from(e: sqlx::Error) -> Self {
        WorkerError::Db(DbError::Query(e))
    }
}

/// A claimed message.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Claimed {
    id: i64,
    to_encrypted: String,
    to_hash: String,
    sender: Option<String>,
    body: String,
    segments: i64,
    priority: i64,
    smart_encoded: bool,
    validity_until: Option<i64>,
    state: String,
    in_doubt: bool,
    attempts: i64,
    attempt_started_at: Option<i64>,
    due_at: i64,
}

/// What became of one claimed message.
enum Outcome {
    Sent(twilio::Message),
    FoundSent(twilio::Message),
    Refused(TwilioError),
    Unknown(TwilioError),
    Undecryptable,
    /// The start window had passed: nothing was sent.
    NotStarted,
}

pub struct Worker {
    db: Db,
    key: DataKey,
    provider: Provider,
    config: WorkerConfig,
}

fn backoff(settings: &SendingSettings, attempts: i64) -> i64 {
    let base = i64::from(settings.retries.base_delay_seconds) * SECOND;
    let exp = (attempts.clamp(1, 20) - 1) as u32;
    let delay = base.saturating_mul(1i64 << exp.min(16));
    // ±20 % jitter, so retries of a burst do not all come back at once.
    let jitter = delay / 5;
    delay + rand::rng().random_range(-jitter..=jitter)
}

impl Worker {
    pub fn new(db: Db, key: DataKey, provider: Provider, config: WorkerConfig) -> Worker {
        Worker {
            db,
            key,
            provider,
            config,
        }
    }

    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// One step: claim, send, record. `now` is the time in µs (UTC).
    pub async fn try_execute_task(&self, now: i64) -> Result<Step, WorkerError> {
        let settings = settings::sending(&self.db).await?;
        let mut step = Step::default();
        let claimed = self
            .claim(now, &settings, &mut step)
            .instrument(tracing::debug_span!("claim"))
            .await?;
        step.claimed = claimed.len();
        if claimed.is_empty() {
            return Ok(step);
        }
        // The step's clock: the caller's `now`, moved on by the time the sends take.
        let claimed_at = std::time::Instant::now();
        let clock = move || now + i64::try_from(claimed_at.elapsed().as_micros()).unwrap_or(0);
        let deadline = now + i64::try_from(self.config.start_window.as_micros()).unwrap_or(HOUR);
        let settings_ref = &settings;
        let outcomes: Vec<(Claimed, Outcome)> = futures::stream::iter(claimed)
            .map(|c| async move {
                // Started only when a lane is free and the limits allow it, by the start
                // window's end: too late, and it goes back untried.
                let Some(start) = self.config.gate.reserve(clock(), deadline, settings_ref) else {
                    return (c, Outcome::NotStarted);
                };
                let wait = start - clock();
                if wait > 0 {
                    tokio::time::sleep(Duration::from_micros(wait.unsigned_abs())).await;
                }
                telemetry::limit_wait((start - c.due_at) as f64 / SECOND as f64);
                let started = std::time::Instant::now();
                let outcome = self
                    .dispatch(&c, now, settings_ref)
                    .instrument(tracing::info_span!("send", message_id = c.id))
                    .await;
                telemetry::dispatch_latency(started.elapsed().as_secs_f64());
                (c, outcome)
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        self.record(outcomes, now, &settings, &mut step).await?;
        Ok(step)
    }

    fn sender_of(&self, claimed: &Claimed) -> Sender {
        match &claimed.sender {
            Some(s) => Sender::From(s.clone()),
            None => self.config.default_sender.clone(),
        }
    }

    fn sender_key(sender: &Sender) -> &str {
        match sender {
            Sender::From(s) | Sender::MessagingService(s) => s,
        }
    }

    async fn claim(
        &self,
        now: i64,
        settings: &SendingSettings,
        step: &mut Step,
    ) -> Result<Vec<Claimed>, WorkerError> {
        let mut tx = self.db.begin().await?;
        // A write first: takes SQLite's write lock at once, and makes claims on PostgreSQL take
        // turns across instances, so limits are decided on counts nobody else is changing.
        on_tx!(&mut tx, |conn| sqlx::query(
            "INSERT INTO worker_lock (id, at) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at"
        )
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected());

        // Global capacity: the smallest room left under the three limits.
        let l = &settings.limits;
        let mut room = i64::MAX;
        let mut global_free_at: Option<i64> = None;
        // Widened by the network margin, as the send gate counts (`domain::admission`).
        let margin = i64::from(l.network_margin_ms) * 1_000;
        for (limit, window) in [
            (l.per_second, SECOND + margin),
            (l.per_minute, MINUTE + margin),
            (l.per_hour, HOUR + margin),
        ] {
            let limit = i64::from(limit);
            let count = on_tx!(&mut tx, |conn| sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM dispatch_log WHERE at > $1"
            )
            .bind(now - window)
            .fetch_one(conn)
            .await?);
            let left = (limit - count).max(0);
            if left == 0 {
                // Free again when the oldest send that keeps the count at the limit leaves.
                let oldest = on_tx!(&mut tx, |conn| sqlx::query_scalar::<_, i64>(
                    "SELECT at FROM dispatch_log WHERE at > $1 ORDER BY at LIMIT 1 OFFSET $2"
                )
                .bind(now - window)
                .bind(count - limit)
                .fetch_optional(conn)
                .await?);
                let free = oldest.map_or(now + 1, |t| t + window);
                global_free_at = Some(global_free_at.map_or(free, |g: i64| g.max(free)));
            }
            room = room.min(left);
        }

        let mut candidates = on_tx!(&mut tx, |conn| sqlx::query_as::<_, Claimed>(
            "SELECT id, to_encrypted, to_hash, sender, body, segments, priority, smart_encoded,
                     validity_until, state, in_doubt, attempts, attempt_started_at, due_at
                 FROM messages WHERE state = 'sending' AND lease_until < $1
                 ORDER BY priority, id LIMIT $2"
        )
        .bind(now)
        .bind(self.config.batch_size as i64)
        .fetch_all(conn)
        .await?);
        let more = self.config.batch_size.saturating_sub(candidates.len());
        if more > 0 {
            candidates.extend(on_tx!(&mut tx, |conn| sqlx::query_as::<_, Claimed>(
                "SELECT id, to_encrypted, to_hash, sender, body, segments, priority, smart_encoded,
                         validity_until, state, in_doubt, attempts, attempt_started_at, due_at
                     FROM messages WHERE state = 'waiting' AND due_at <= $1
                     ORDER BY priority, id LIMIT $2"
            )
            .bind(now)
            .bind(more as i64)
            .fetch_all(conn)
            .await?));
            candidates.sort_by_key(|c| (c.priority, c.id));
        }

        let hour_limit = WindowLimit::new(l.per_recipient_per_hour.max(1), HOUR as u64)
            .expect("validated settings");
        let day_limit = WindowLimit::new(l.per_recipient_per_day.max(1), DAY as u64)
            .expect("validated settings");
        let mut recipient_sends: HashMap<String, Vec<i64>> = HashMap::new();
        let mut sender_logs: HashMap<String, Vec<(i64, u32)>> = HashMap::new();
        let exempt = |c: &Claimed| c.priority == 0 && l.emergency_exempt;

        // What the limits read, in a few queries for the whole batch: the recipients' sends in
        // the last day, each sender's segments in the last second.
        let mut hashes: Vec<&str> = candidates
            .iter()
            .filter(|c| !exempt(c))
            .map(|c| c.to_hash.as_str())
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        for chunk in hashes.chunks(PARAMS) {
            let sql = format!(
                "SELECT to_hash, at FROM dispatch_log WHERE at > $1 AND to_hash IN ({})",
                numbered(2, chunk.len())
            );
            let rows = on_tx!(&mut tx, |conn| {
                let mut q = sqlx::query_as::<_, (String, i64)>(&sql).bind(now - DAY);
                for h in chunk {
                    q = q.bind(*h);
                }
                q.fetch_all(conn).await?
            });
            for h in chunk {
                recipient_sends.entry((*h).to_owned()).or_default();
            }
            for (h, at) in rows {
                recipient_sends.entry(h).or_default().push(at);
            }
        }
        let mut senders: Vec<String> = candidates
            .iter()
            .map(|c| Self::sender_key(&self.sender_of(c)).to_owned())
            .collect();
        senders.sort_unstable();
        senders.dedup();
        for key in senders {
            let log = on_tx!(&mut tx, |conn| sqlx::query_as::<_, (i64, i64)>(
                "SELECT at, units FROM sender_log WHERE sender = $1 AND at > $2"
            )
            .bind(&key)
            .bind(now - SECOND)
            .fetch_all(conn)
            .await?);
            let log = log
                .into_iter()
                .map(|(at, units)| (at, u32::try_from(units).unwrap_or(u32::MAX)))
                .collect();
            sender_logs.insert(key, log);
        }

        let mut claimed = Vec::new();
        let mut deferred: Vec<(i64, i64)> = Vec::new();
        let mut dispatches: Vec<(i64, Option<String>)> = Vec::new();
        // (sender, time) → segments logged there.
        let mut sender_rows: HashMap<(String, i64), u32> = HashMap::new();
        let lease_until = now + i64::try_from(self.config.lease.as_micros()).unwrap_or(HOUR);

        for c in candidates {
            if let Some(until) = c.validity_until
                && until <= now
            {
                expire(&mut tx, c.id, now).await?;
                step.expired += 1;
                continue;
            }
            if room <= 0 {
                // Everything left waits for the global limits; it stays due.
                break;
            }
            let exempt = exempt(&c);
            if !exempt {
                let times = &recipient_sends[&c.to_hash];
                let allowed_at = hour_limit
                    .check(times, now)
                    .next_allowed_at
                    .max(day_limit.check(times, now).next_allowed_at);
                if allowed_at > now {
                    deferred.push((c.id, allowed_at));
                    continue;
                }
            }
            // The sender's pace, in segments per second.
            let key = Self::sender_key(&self.sender_of(&c)).to_owned();
            let pace = WeightedWindow::new(settings.pace.for_sender(&key).max(1), SECOND as u64)
                .expect("a positive pace");
            let cost = u32::try_from(c.segments.max(1)).unwrap_or(u32::MAX);
            let log = sender_logs.get_mut(&key).expect("loaded above");
            let allowed_at = pace.next_allowed_at(log, now, cost);
            if allowed_at > now {
                deferred.push((c.id, allowed_at));
                continue;
            }
            for (at, units) in pace.chunks(now, cost) {
                log.push((at, units));
                *sender_rows.entry((key.clone(), at)).or_default() += units;
            }
            dispatches.push((c.id, (!exempt).then(|| c.to_hash.clone())));
            if !exempt {
                recipient_sends
                    .get_mut(&c.to_hash)
                    .expect("loaded above")
                    .push(now);
            }
            room -= 1;
            claimed.push(c);
        }

        // The batch's writes, a statement per kind.
        let ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
        update_ids(
            &mut tx,
            "UPDATE messages SET state = 'sending', lease_until = $1, attempts = attempts + 1,
                 in_doubt = (in_doubt OR state = 'sending'),
                 attempt_started_at = CASE WHEN in_doubt OR state = 'sending'
                     THEN attempt_started_at ELSE $2 END,
                 dispatched_at = $2, updated_at = $2",
            (lease_until, now),
            &ids,
        )
        .await?;
        for chunk in dispatches.chunks(PARAMS / 3) {
            let sql = format!(
                "INSERT INTO dispatch_log (at, to_hash, message_id) VALUES {}",
                tuples(1, chunk.len(), 3)
            );
            on_tx!(&mut tx, |conn| {
                let mut q = sqlx::query(&sql);
                for (id, hash) in chunk {
                    q = q.bind(now).bind(hash.as_deref()).bind(id);
                }
                q.execute(conn).await?.rows_affected()
            });
        }
        let sender_rows: Vec<((String, i64), u32)> = sender_rows.into_iter().collect();
        for chunk in sender_rows.chunks(PARAMS / 3) {
            let sql = format!(
                "INSERT INTO sender_log (sender, at, units) VALUES {}",
                tuples(1, chunk.len(), 3)
            );
            on_tx!(&mut tx, |conn| {
                let mut q = sqlx::query(&sql);
                for ((sender, at), units) in chunk {
                    q = q.bind(sender).bind(at).bind(i64::from(*units));
                }
                q.execute(conn).await?.rows_affected()
            });
        }
        step.deferred = deferred.len();
        telemetry::deferred(step.deferred);
        let mut by_due: HashMap<i64, Vec<i64>> = HashMap::new();
        for (id, due) in deferred {
            by_due.entry(due).or_default().push(id);
        }
        for (due, ids) in by_due {
            update_ids(
                &mut tx,
                "UPDATE messages SET due_at = $1, updated_at = $2",
                (due, now),
                &ids,
            )
            .await?;
        }
        // Keep the log to what the daily limit reads.
        on_tx!(&mut tx, |conn| sqlx::query(
            "DELETE FROM dispatch_log WHERE at < $1"
        )
        .bind(now - 2 * DAY)
        .execute(conn)
        .await?
        .rows_affected());
        on_tx!(&mut tx, |conn| sqlx::query(
            "DELETE FROM sender_log WHERE at < $1"
        )
        .bind(now - 2 * SECOND)
        .execute(conn)
        .await?
        .rows_affected());
        let next = on_tx!(&mut tx, |conn| sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MIN(due_at) FROM messages WHERE state = 'waiting'"
        )
        .fetch_one(conn)
        .await?);
        tx.commit().await?;
        step.next_due = match (next, global_free_at) {
            (Some(n), Some(g)) => Some(n.max(g)),
            (n, None) => n,
            (None, Some(_)) => None,
        };
        Ok(claimed)
    }

    async fn dispatch(&self, c: &Claimed, now: i64, settings: &SendingSettings) -> Outcome {
        let Ok(to) = self.key.decrypt(&c.to_encrypted) else {
            return Outcome::Undecryptable;
        };
        let in_doubt = c.in_doubt || c.state == "sending";
        if in_doubt {
            let started = c.attempt_started_at.unwrap_or(now);
            let day = DateTime::from_timestamp_micros(started)
                .unwrap_or_default()
                .date_naive();
            match self.provider.list_to(&to, day).await {
                Ok(found) => {
                    // Created for this message: same body, not before the attempt (a minute of
                    // clock difference allowed).
                    let earliest = started - MINUTE;
                    if let Some(m) = found.into_iter().find(|m| {
                        m.body == c.body
                            && m.date_created
                                .is_none_or(|d| d.timestamp_micros() >= earliest)
                    }) {
                        return Outcome::FoundSent(m);
                    }
                }
                Err(e) => return Outcome::Unknown(e),
            }
        }
        let validity_period = c.validity_until.map(|until| {
            u32::try_from(((until - now) / SECOND).clamp(1, 36_000)).unwrap_or(36_000)
        });
        let message = NewMessage {
            to,
            sender: self.sender_of(c),
            body: c.body.clone(),
            status_callback: self.config.status_callback.clone(),
            validity_period,
            smart_encoded: c.smart_encoded.then_some(true),
            attempt: u32::try_from(c.attempts + 1).ok(),
        };
        match self.provider.create(&message, now, settings).await {
            Ok(m) => Outcome::Sent(m),
            Err(e) if e.in_doubt() => Outcome::Unknown(e),
            Err(e) => Outcome::Refused(e),
        }
    }

    async fn record(
        &self,
        outcomes: Vec<(Claimed, Outcome)>,
        now: i64,
        settings: &SendingSettings,
        step: &mut Step,
    ) -> Result<(), WorkerError> {
        let mut tx = self.db.begin().await?;
        let mut sent: Vec<(i64, twilio::Message, bool)> = Vec::new();
        // Not started (an earlier attempt in doubt stays so: the claim marked it).
        let mut untried: Vec<i64> = Vec::new();
        for (c, outcome) in outcomes {
            let attempts = c.attempts + 1;
            match outcome {
                Outcome::Sent(m) => {
                    telemetry::dispatched("sent", None);
                    sent.push((c.id, m, false));
                    step.sent += 1;
                }
                Outcome::FoundSent(m) => {
                    telemetry::dispatched("found_sent", None);
                    sent.push((c.id, m, true));
                    step.sent += 1;
                    step.found_in_doubt += 1;
                }
                Outcome::Unknown(e) => {
                    telemetry::dispatched("unknown", None);
                    if attempts >= i64::from(settings.retries.max_attempts) {
                        fail(
                            &mut tx,
                            c.id,
                            None,
                            &format!(
                                "no answer from Twilio after {attempts} attempts ({e}); it was not found in Twilio's message list either"
                            ),
                            now,
                        )
                        .await?;
                        step.failed += 1;
                    } else {
                        let due = now + backoff(settings, attempts);
                        retry(&mut tx, c.id, due, true, None, &e.to_string(), now).await?;
                        step.retry_scheduled += 1;
                    }
                }
                Outcome::Refused(e) => {
                    let code = match &e {
                        TwilioError::Api { code, .. } => *code,
                        _ => None,
                    };
                    let info = code.map(errors::lookup);
                    let disposition = info
                        .as_ref()
                        .map_or(Disposition::Permanent, |i| i.disposition());
                    let allowed = match disposition {
                        Disposition::RetryWithBackoff => i64::from(settings.retries.max_attempts),
                        Disposition::RetryLater { max_retries } => {
                            i64::from(settings.retries.max_attempts).min(1 + i64::from(max_retries))
                        }
                        Disposition::Permanent | Disposition::OptOut => 0,
                    };
                    let reason = match &info {
                        Some(i) => format!("{} ({e}). {}", i.meaning(), i.operator_action()),
                        None => e.to_string(),
                    };
                    if let Some(i) = &info
                        && i.alert_admins()
                    {
                        alert(&mut tx, i.code(), &reason, now).await?;
                    }
                    if disposition == Disposition::OptOut
                        && let Ok(to) = self.key.decrypt(&c.to_encrypted)
                    {
                        consent::record(
                            &mut tx,
                            &self.key,
                            &to,
                            consent::Action::OptOut,
                            "twilio_21610",
                            &format!("Twilio refused a send with error {}: {e}", 21610),
                            now,
                        )
                        .await?;
                    }
                    if attempts < allowed {
                        telemetry::dispatched("retry", code);
                        let due = now + backoff(settings, attempts);
                        retry(&mut tx, c.id, due, false, code, &reason, now).await?;
                        step.retry_scheduled += 1;
                    } else {
                        telemetry::dispatched("failed", code);
                        fail(&mut tx, c.id, code, &reason, now).await?;
                        step.failed += 1;
                    }
                }
                Outcome::NotStarted => {
                    telemetry::dispatched("not_started", None);
                    untried.push(c.id);
                    step.not_started += 1;
                }
                Outcome::Undecryptable => {
                    telemetry::dispatched("undecryptable", None);
                    fail(
                        &mut tx,
                        c.id,
                        None,
                        "the recipient's number does not decrypt with this SMSDESK_DATA_KEY: was the key changed?",
                        now,
                    )
                    .await?;
                    step.failed += 1;
                }
            }
        }
        record_sent(&mut tx, &sent, now).await?;
        // Due again at once, the attempt not counted, its dispatch no longer logged (the sender's
        // pace keeps it: a second's worth, on the safe side).
        for chunk in untried.chunks(PARAMS) {
            let sql = format!(
                "DELETE FROM dispatch_log WHERE at = $1 AND message_id IN ({})",
                numbered(2, chunk.len())
            );
            on_tx!(&mut tx, |conn| {
                let mut q = sqlx::query(&sql).bind(now);
                for id in chunk {
                    q = q.bind(id);
                }
                q.execute(conn).await?.rows_affected()
            });
        }
        update_ids(
            &mut tx,
            "UPDATE messages SET state = 'waiting', due_at = $1, lease_until = NULL,
                 attempts = attempts - 1, updated_at = $2",
            (now, now),
            &untried,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// One row of a message's timeline.
struct NewEvent<'a> {
    kind: &'a str,
    status: Option<&'a str>,
    error_code: Option<i64>,
    detail: &'a str,
    provider_sid: Option<&'a str>,
}

async fn event(tx: &mut Tx, message_id: i64, at: i64, e: NewEvent<'_>) -> Result<(), DbError> {
    let NewEvent {
        kind,
        status,
        error_code,
        detail,
        provider_sid,
    } = e;
    on_tx!(tx, |conn| {
        sqlx::query(
        "INSERT INTO message_events (message_id, at, kind, status, error_code, detail, provider_sid)
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    .bind(message_id)
    .bind(at)
    .bind(kind)
    .bind(status)
    .bind(error_code)
    .bind(detail)
    .bind(provider_sid)
    .execute(conn)
    .await?
    .rows_affected()
    });
    Ok(())
}

/// Parameters per statement. Not more: SQLite finds a numbered parameter's name by walking the
/// list of names, and sqlx asks for every one, so binding costs grow with the square of the count
/// (a 1,600-parameter insert spent most of its time there).
pub(crate) const PARAMS: usize = 120;

/// Runs `update` (which binds `$1` and `$2`) on the messages `ids`, a statement per
/// [`PARAMS`] ids.
async fn update_ids(
    tx: &mut Tx,
    update: &str,
    (first, second): (i64, i64),
    ids: &[i64],
) -> Result<(), DbError> {
    for chunk in ids.chunks(PARAMS) {
        let sql = format!("{update} WHERE id IN ({})", numbered(3, chunk.len()));
        on_tx!(tx, |conn| {
            let mut q = sqlx::query(&sql).bind(first).bind(second);
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(conn).await?.rows_affected()
        });
    }
    Ok(())
}

/// `$first, $first+1, …` for `n` parameters.
fn numbered(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($first, …), (…)`: `rows` tuples of `width` parameters.
fn tuples(first: usize, rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", numbered(first + r * width, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn expire(tx: &mut Tx, id: i64, now: i64) -> Result<(), DbError> {
    let text = "not sent: its validity period ended while it waited in smsdesk's outbox";
    on_tx!(tx, |conn| sqlx::query(
        "UPDATE messages SET state = 'done', status = 'failed', error_code = 30036,
             error_message = $1, lease_until = NULL, updated_at = $2 WHERE id = $3"
    )
    .bind(text)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected());
    event(
        tx,
        id,
        now,
        NewEvent {
            kind: "expired",
            status: Some("failed"),
            error_code: Some(30036),
            detail: text,
            provider_sid: None,
        },
    )
    .await
}

/// Records messages Twilio accepted (or that were found already sent), a statement per kind for
/// the whole batch: `(message id, Twilio's message, found while in doubt)`.
async fn record_sent(
    tx: &mut Tx,
    sent: &[(i64, twilio::Message, bool)],
    now: i64,
) -> Result<(), DbError> {
    for chunk in sent.chunks(PARAMS / 2) {
        let sql = format!(
            "INSERT INTO provider_sids (sid, message_id) VALUES {} ON CONFLICT (sid) DO NOTHING",
            tuples(1, chunk.len(), 2)
        );
        on_tx!(tx, |conn| {
            let mut q = sqlx::query(&sql);
            for (id, m, _) in chunk {
                q = q.bind(&m.sid).bind(id);
            }
            q.execute(conn).await?.rows_affected()
        });
    }
    for chunk in sent.chunks(PARAMS / 4) {
        let rows = (0..chunk.len())
            .map(|r| {
                let p = 2 + r * 4;
                format!(
                    "(CAST(${} AS BIGINT), CAST(${} AS TEXT), CAST(${} AS TEXT), CAST(${} AS BIGINT))",
                    p,
                    p + 1,
                    p + 2,
                    p + 3
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "WITH v (id, status, sid, price) AS (VALUES {rows})
             UPDATE messages SET state = 'done', status = v.status, provider_sid = v.sid,
                 in_doubt = FALSE, lease_until = NULL, error_code = NULL, error_message = NULL,
                 price_micros = COALESCE(v.price, messages.price_micros), updated_at = $1
             FROM v WHERE messages.id = v.id"
        );
        on_tx!(tx, |conn| {
            let mut q = sqlx::query(&sql).bind(now);
            for (id, m, _) in chunk {
                q = q
                    .bind(id)
                    .bind(m.status.as_str())
                    .bind(&m.sid)
                    .bind(m.price.map(|p| p.micros()));
            }
            q.execute(conn).await?.rows_affected()
        });
    }
    for chunk in sent.chunks(PARAMS / 6) {
        let sql = format!(
            "INSERT INTO message_events (message_id, at, kind, status, detail, provider_sid) VALUES {}",
            tuples(1, chunk.len(), 6)
        );
        on_tx!(tx, |conn| {
            let mut q = sqlx::query(&sql);
            for (id, m, found_in_doubt) in chunk {
                let (kind, detail) = if *found_in_doubt {
                    (
                        "found",
                        format!(
                            "found in Twilio's message list as {} ({}): the earlier attempt went out, not sent again",
                            m.sid, m.status
                        ),
                    )
                } else {
                    (
                        "submitted",
                        format!("handed to Twilio as {} ({})", m.sid, m.status),
                    )
                };
                q = q
                    .bind(id)
                    .bind(now)
                    .bind(kind)
                    .bind(m.status.as_str())
                    .bind(detail)
                    .bind(&m.sid);
            }
            q.execute(conn).await?.rows_affected()
        });
    }
    Ok(())
}

async fn retry(
    tx: &mut Tx,
    id: i64,
    due: i64,
    in_doubt: bool,
    code: Option<u32>,
    reason: &str,
    now: i64,
) -> Result<(), DbError> {
    let reason = &mask_numbers(reason);
    on_tx!(tx, |conn| sqlx::query(
        "UPDATE messages SET state = 'waiting', due_at = $1, in_doubt = $2, lease_until = NULL,
             error_code = $3, error_message = $4, updated_at = $5 WHERE id = $6"
    )
    .bind(due)
    .bind(in_doubt)
    .bind(code.map(i64::from))
    .bind(reason)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected());
    let when = DateTime::from_timestamp_micros(due)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    let detail = if in_doubt {
        format!("outcome unknown ({reason}); Twilio will be asked before trying again at {when}")
    } else {
        format!("{reason}; trying again at {when}")
    };
    event(
        tx,
        id,
        now,
        NewEvent {
            kind: "retry",
            status: None,
            error_code: code.map(i64::from),
            detail: &detail,
            provider_sid: None,
        },
    )
    .await
}

async fn fail(
    tx: &mut Tx,
    id: i64,
    code: Option<u32>,
    reason: &str,
    now: i64,
) -> Result<(), DbError> {
    let reason = &mask_numbers(reason);
    on_tx!(tx, |conn| {
        sqlx::query(
        "UPDATE messages SET state = 'done', status = 'failed', in_doubt = FALSE, lease_until = NULL,
             error_code = $1, error_message = $2, updated_at = $3 WHERE id = $4"
    )
    .bind(code.map(i64::from))
    .bind(reason)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected()
    });
    event(
        tx,
        id,
        now,
        NewEvent {
            kind: "failed",
            status: Some("failed"),
            error_code: code.map(i64::from),
            detail: reason,
            provider_sid: None,
        },
    )
    .await
}

/// Alerts for one code are raised at most once in this long (a revoked token fails every send).
pub const ALERT_EVERY_MICROS: i64 = 3_600 * 1_000_000;

/// Tells the administrators, once per code and [`ALERT_EVERY_MICROS`] however many messages hit
/// it: in the log at error level and in the audit log they read.
async fn alert(tx: &mut Tx, code: u32, reason: &str, now: i64) -> Result<(), DbError> {
    let raised = on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO alerts (code, raised_at) VALUES ($1, $2)
             ON CONFLICT (code) DO UPDATE SET raised_at = excluded.raised_at
             WHERE alerts.raised_at <= $3"
    )
    .bind(i64::from(code))
    .bind(now)
    .bind(now - ALERT_EVERY_MICROS)
    .execute(conn)
    .await?
    .rows_affected());
    if raised == 0 {
        return Ok(());
    }
    let reason = mask_numbers(reason);
    tracing::error!(
        code,
        reason,
        "Twilio account problem: every send will fail until it is fixed"
    );
    crate::audit::record(
        tx,
        &crate::audit::Actor::system(),
        "alert.twilio",
        &format!("twilio_error:{code}"),
        None,
        Some(serde_json::json!({ "code": code, "reason": reason })),
    )
    .await
}

/// A status callback, as read from Twilio's form.
#[derive(Debug, Clone)]
pub struct Callback {
    pub sid: String,
    pub status: MessageStatus,
    pub error_code: Option<u32>,
    pub error_message: Option<String>,
    pub price_micros: Option<i64>,
}

/// What a callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// No message of smsdesk's has that sid.
    UnknownSid,
    /// The same (sid, status) was recorded before.
    Duplicate,
    /// Recorded; `advanced` says whether the message's status moved.
    Recorded { advanced: bool, retry: bool },
}

/// Records a status callback: one event per distinct (sid, status), the status only forward (and
/// only from the message's current attempt), a retry for the codes that call for one.
pub async fn record_callback(
    db: &Db,
    key: &DataKey,
    cb: &Callback,
    now: i64,
) -> Result<CallbackOutcome, WorkerError> {
    let message_id = on_db!(db, |pool| sqlx::query_scalar::<_, i64>(
        "SELECT message_id FROM provider_sids WHERE sid = $1"
    )
    .bind(&cb.sid)
    .fetch_optional(pool)
    .await?);
    let Some(message_id) = message_id else {
        return Ok(CallbackOutcome::UnknownSid);
    };
    let span = tracing::info_span!("callback", message_id, status = cb.status.as_str());
    record_known_callback(db, key, cb, message_id, now)
        .instrument(span)
        .await
}

/// [`record_callback`] for a message smsdesk has.
async fn record_known_callback(
    db: &Db,
    key: &DataKey,
    cb: &Callback,
    message_id: i64,
    now: i64,
) -> Result<CallbackOutcome, WorkerError> {
    let settings = settings::sending(db).await?;
    let mut tx = db.begin().await?;
    // Twilio's texts may name the recipient: stored masked, as everything outside the
    // encrypted column.
    let error_message = cb.error_message.as_deref().map(mask_numbers);
    let detail = match (&cb.error_code, &error_message) {
        (Some(code), Some(text)) => format!("Twilio: {} (error {code}: {text})", cb.status),
        (Some(code), None) => format!(
            "Twilio: {} (error {code}: {})",
            cb.status,
            errors::lookup(*code).meaning()
        ),
        _ => format!("Twilio: {}", cb.status),
    };
    let inserted = on_tx!(&mut tx, |conn| {
        sqlx::query(
        "INSERT INTO message_events (message_id, at, kind, status, error_code, detail, provider_sid, dedupe)
             VALUES ($1, $2, 'callback', $3, $4, $5, $6, $7)
             ON CONFLICT (message_id, dedupe) DO NOTHING"
    )
    .bind(message_id)
    .bind(now)
    .bind(cb.status.as_str())
    .bind(cb.error_code.map(i64::from))
    .bind(&detail)
    .bind(&cb.sid)
    .bind(format!("{}:{}", cb.sid, cb.status.as_str()))
    .execute(conn)
    .await?
    .rows_affected()
    });
    if inserted == 0 {
        return Ok(CallbackOutcome::Duplicate);
    }
    let lock = match &tx {
        Tx::Postgres(_) => " FOR UPDATE",
        Tx::Sqlite(..) => "",
    };
    let sql = format!(
        "SELECT status, provider_sid, attempts, to_encrypted FROM messages WHERE id = $1{lock}"
    );
    let (current, provider_sid, attempts, to_encrypted) = on_tx!(&mut tx, |conn| {
        sqlx::query_as::<_, (String, Option<String>, i64, String)>(&sql)
            .bind(message_id)
            .fetch_one(conn)
            .await?
    });
    let current: MessageStatus = current.parse().unwrap_or(MessageStatus::Accepted);
    let is_current_attempt = provider_sid.as_deref() == Some(cb.sid.as_str());
    let advanced = is_current_attempt && current.advance(cb.status) == Transition::Advance;
    let mut retry_scheduled = false;
    if advanced {
        on_tx!(&mut tx, |conn| sqlx::query(
            "UPDATE messages SET status = $1, error_code = COALESCE($2, error_code),
                 error_message = COALESCE($3, error_message),
                 price_micros = COALESCE($4, price_micros), updated_at = $5 WHERE id = $6"
        )
        .bind(cb.status.as_str())
        .bind(cb.error_code.map(i64::from))
        .bind(&error_message)
        .bind(cb.price_micros)
        .bind(now)
        .bind(message_id)
        .execute(conn)
        .await?
        .rows_affected());
        if cb.status.is_failure()
            && let Some(code) = cb.error_code
        {
            let info = errors::lookup(code);
            if info.alert_admins() {
                alert(&mut tx, code, info.meaning(), now).await?;
            }
            match info.disposition() {
                Disposition::OptOut => {
                    if let Ok(to) = key.decrypt(&to_encrypted) {
                        consent::record(
                            &mut tx,
                            key,
                            &to,
                            consent::Action::OptOut,
                            "twilio_callback",
                            &detail,
                            now,
                        )
                        .await?;
                    }
                }
                Disposition::RetryLater { max_retries } => {
                    let allowed =
                        i64::from(settings.retries.max_attempts).min(1 + i64::from(max_retries));
                    if attempts < allowed {
                        let due = now + backoff(&settings, attempts);
                        // A new attempt starts over: a new Twilio message, from `accepted`.
                        on_tx!(&mut tx, |conn| sqlx::query(
                            "UPDATE messages SET status = 'accepted' WHERE id = $1"
                        )
                        .bind(message_id)
                        .execute(conn)
                        .await?
                        .rows_affected());
                        retry(
                            &mut tx,
                            message_id,
                            due,
                            false,
                            Some(code),
                            &format!("{} (error {code})", info.meaning()),
                            now,
                        )
                        .await?;
                        retry_scheduled = true;
                    }
                }
                Disposition::RetryWithBackoff | Disposition::Permanent => {}
            }
        }
    }
    tx.commit().await?;
    Ok(CallbackOutcome::Recorded {
        advanced,
        retry: retry_scheduled,
    })
}
