//! The worker: a state machine over the outbox, driven one step at a time by
//! [`Worker::try_execute_task`] (the server calls it in a loop; tests call it by hand, with the
//! time they choose).
//!
//! One step:
//! 1. **Claim** ([`claim`]), in one transaction that every instance serializes on (a write to
//!    `worker_lock` first): the due messages in priority order (emergency, two-factor, the rest;
//!    FIFO within one), each admitted only if the global limits (per second, minute, hour: exact
//!    counts over the dispatch log), the recipient's limits (hour, day; emergency exempt if so
//!    set) and the sender's pace (segments per second) allow it now; otherwise it waits
//!    (`due_at` moves to the moment it would be allowed). The rule is pure
//!    (`domain::admission::admit`); the claim reads what it needs and writes what it answers. A
//!    claimed message is leased, its attempt counted and its dispatch logged, so a limit is never
//!    exceeded even if the send then fails.
//! 2. **Send** ([`dispatch`]) each claimed message (concurrently, outside any transaction). A
//!    message whose last attempt's outcome was never recorded (a timeout, a 5xx, a crash: the
//!    lease ran out) is *in doubt*: Twilio's Message list is asked first whether it went out.
//! 3. **Record** ([`record`]) every outcome in one transaction: the provider sid and status, or
//!    what [`crate::outcome`] decides a failure means (a retry with exponential backoff and
//!    jitter, or a final failure with Twilio's reason, an opt-out on 21610, an admin alert on
//!    account errors). Status callbacks go through the same decision.
//!
//! Time comes from the caller: every step decides at the `now` it is given, never at the clock.
//! The one exception is deliberate: while the sends of a step run, the send gate and the start
//! window read the step's clock, `now` moved on by the real time elapsed since the claim (see
//! [`Worker::try_execute_task`]).

pub mod breaker;
mod claim;
mod dispatch;
mod record;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use domain::admission;
use futures::StreamExt;
use tracing::Instrument;

use self::breaker::{Allowed, Breaker};
use crate::crypto::DataKey;
use crate::db::{Db, DbError, Tx};
use crate::on_tx;
use crate::settings::{self, SendingSettings, SettingsStoreError};
use crate::simulator::Simulator;
use crate::telemetry;
use crate::twilio::{self, NewMessage, Sender, TwilioClient, TwilioError};

pub use record::{ALERT_EVERY_MICROS, Callback, CallbackOutcome, record_callback};

const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;

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
            Provider::Simulator(sim) => {
                // The simulator charges what the price table says, as Twilio charges its list.
                let region = domain::phone::PhoneNumber::parse(&message.to, None)
                    .map(|n| n.region().to_owned())
                    .unwrap_or_default();
                let kind = match &message.sender {
                    twilio::Sender::From(from) => Some(domain::sending::SenderKind::of(from)),
                    twilio::Sender::MessagingService(_) => None,
                };
                let per_segment = domain::pricing::lookup(&settings.prices, &region, kind);
                sim.create_priced(message, now, &settings.simulator, per_segment)
            }
        }
    }

    /// One message as the provider has it now (its price, once known).
    pub async fn fetch(&self, sid: &str) -> Result<twilio::Message, TwilioError> {
        match self {
            Provider::Twilio(client) => client.fetch_message(sid).await,
            Provider::Simulator(sim) => sim.fetch(sid),
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

/// Which provider carried an attempt (or is asked about it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    Primary,
    Fallback,
}

impl Carrier {
    pub fn as_str(self) -> &'static str {
        match self {
            Carrier::Primary => "primary",
            Carrier::Fallback => "fallback",
        }
    }

    /// A stored name; `None` for one this code does not know (then every provider is asked).
    pub fn parse(s: &str) -> Option<Carrier> {
        match s {
            "primary" => Some(Carrier::Primary),
            "fallback" => Some(Carrier::Fallback),
            _ => None,
        }
    }
}

/// A second provider (another Twilio account or any API with Twilio's Messages shape): used
/// while the primary is in a storm (its breaker paused), and for messages the primary refuses
/// with one of the failover codes in the settings.
#[derive(Debug, Clone)]
pub struct Fallback {
    pub provider: Provider,
    /// The sender on the fallback's account.
    pub sender: Sender,
    /// The fallback's own health.
    pub breaker: Breaker,
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
    /// Whether Twilio is in a storm (429s, 5xx, timeouts) and sending pauses; shared by all
    /// this instance's worker loops.
    pub breaker: Breaker,
    /// The second provider, if one is configured.
    pub fallback: Option<Fallback>,
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
        let rules = admission::global_rules(&settings.limits);
        let margin = admission::network_margin(&settings.limits);
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
            breaker: Breaker::default(),
            fallback: None,
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
    /// Claimed but not started (past the start window, or Twilio's storm paused sending): back
    /// in the outbox, untried.
    pub not_started: usize,
    /// Nothing sent and back in the outbox for later, the attempt not counted: refused for
    /// Twilio's rate (429), or its provider is paused.
    pub held: usize,
    /// Sending is paused until then (µs): Twilio is in a storm (`breaker`); nothing was claimed.
    pub paused_until: Option<i64>,
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
    /// Where the last attempt went, as recorded (`Carrier`), if known.
    attempt_provider: Option<String>,
    /// Its category as stored (failover routes read it).
    category: Option<String>,
}

/// What became of one claimed message.
enum Outcome {
    Sent(twilio::Message),
    FoundSent(twilio::Message),
    Refused(TwilioError),
    Unknown(TwilioError),
    Undecryptable,
    /// The start window had passed, or sending paused: nothing was sent.
    NotStarted,
    /// Nothing was sent, and it must wait until then (µs), its attempt not counted.
    Held(i64, Hold),
    /// The primary refused it with this failover code; the fallback carried it.
    FailedOver(twilio::Message, u32),
}

/// Why a message waits without its attempt counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// A provider answered 429 Too Many Requests: it refused the request, not the message.
    RateLimited,
    /// The provider it must ask or use is paused (a storm).
    Paused,
    /// The primary refused it with this failover code, and the fallback is paused.
    FallbackPaused(u32),
}

/// A claimed message, what became of it, and the provider its attempt is with (for a message
/// in doubt: the one to ask; `None`: unknown, ask every one).
type Sent = (Claimed, Outcome, Option<Carrier>);

impl Claimed {
    /// Where the last attempt went, as recorded.
    fn recorded_carrier(&self) -> Option<Carrier> {
        self.attempt_provider.as_deref().and_then(Carrier::parse)
    }
}

pub struct Worker {
    db: Db,
    key: DataKey,
    provider: Provider,
    config: WorkerConfig,
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
    ///
    /// The claim, every send's request and the record all decide at `now`. Only the send gate
    /// and the start window read the step's clock, `now` moved on by the real time elapsed since
    /// the claim: sends wait for lanes and for the gate, and whether a send may still start, and
    /// when it starts, is about the moment it actually leaves, not the moment of the claim.
    pub async fn try_execute_task(&self, now: i64) -> Result<Step, WorkerError> {
        let settings = settings::sending(&self.db).await?;
        let mut step = Step::default();
        let fallback = self
            .config
            .fallback
            .as_ref()
            .map(|f| f.breaker.allowed(now));
        let limit = match (self.config.breaker.allowed(now), fallback) {
            (Allowed::Batch, _) | (_, Some(Allowed::Batch)) => self.config.batch_size,
            (Allowed::Probe, _) | (_, Some(Allowed::Probe)) => 1,
            (Allowed::PausedUntil(a), other) => {
                let until = match other {
                    Some(Allowed::PausedUntil(b)) => a.min(b),
                    _ => a,
                };
                step.paused_until = Some(until);
                step.next_due = Some(until);
                return Ok(step);
            }
        };
        let claimed = self
            .claim(now, limit, &settings, &mut step)
            .instrument(tracing::debug_span!("claim"))
            .await?;
        step.claimed = claimed.len();
        if claimed.is_empty() {
            return Ok(step);
        }
        // The step's clock (see above).
        let claimed_at = std::time::Instant::now();
        let clock = move || now + i64::try_from(claimed_at.elapsed().as_micros()).unwrap_or(0);
        let deadline = now + i64::try_from(self.config.start_window.as_micros()).unwrap_or(HOUR);
        let settings_ref = &settings;
        let clock = &clock;
        let outcomes: Vec<Sent> = futures::stream::iter(claimed)
            .map(|c| async move {
                // Started only when a lane is free and the limits allow it, by the start
                // window's end: too late, and it goes back untried.
                let Some(start) = self.config.gate.reserve(clock(), deadline, settings_ref) else {
                    let carrier = c.recorded_carrier();
                    return (c, Outcome::NotStarted, carrier);
                };
                let wait = start - clock();
                if wait > 0 {
                    tokio::time::sleep(Duration::from_micros(wait.unsigned_abs())).await;
                }
                telemetry::limit_wait((start - c.due_at) as f64 / SECOND as f64);
                // Measured, not decided on: the latency metric.
                let started = std::time::Instant::now();
                let (outcome, carrier) = self
                    .dispatch(&c, now, settings_ref, clock)
                    .instrument(tracing::info_span!("send", message_id = c.id))
                    .await;
                telemetry::dispatch_latency(started.elapsed().as_secs_f64());
                (c, outcome, carrier)
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        self.record(outcomes, now, &settings, &mut step).await?;
        Ok(step)
    }

    fn sender_key(sender: &Sender) -> &str {
        match sender {
            Sender::From(s) | Sender::MessagingService(s) => s,
        }
    }
}

/// SET clauses that remove a two-factor code's body once it has left smsdesk (handed to Twilio,
/// failed, expired or canceled): no read shows it and nothing keeps it. `now` names the
/// statement's parameter that holds the time.
pub(crate) fn forget_two_factor(now: &str) -> String {
    format!(
        "body = CASE WHEN messages.category = 'two_factor' THEN '' ELSE messages.body END,
         redacted_at = CASE WHEN messages.category = 'two_factor' THEN CAST({now} AS BIGINT)
             ELSE messages.redacted_at END"
    )
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
