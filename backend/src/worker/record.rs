//! Step 3, the record: what became of each send, in one transaction; and Twilio's status
//! callbacks. A failure means what [`crate::outcome::decide`] says, on both paths; the helpers
//! here apply its parts (alert, opt-out, retry, failure) the same way for both.

use chrono::DateTime;
use domain::errors;
use domain::redact::mask_numbers;
use domain::status::{MessageStatus, Transition};
use rand::Rng;
use tracing::Instrument;

use super::{
    Carrier, Claimed, Hold, NewEvent, Outcome, PARAMS, Sent, Step, Worker, WorkerError, event,
    numbered, tuples, update_ids,
};
use crate::crypto::DataKey;
use crate::db::{Db, DbError, Tx};
use crate::outcome::{self, Decision, Failure, Next};
use crate::settings::{self, SendingSettings};
use crate::twilio::{self, TwilioError};
use crate::{consent, on_db, on_tx, telemetry};

impl Worker {
    /// Records every outcome of a step claimed at `now`.
    pub(super) async fn record(
        &self,
        outcomes: Vec<Sent>,
        now: i64,
        settings: &SendingSettings,
        step: &mut Step,
    ) -> Result<(), WorkerError> {
        let mut tx = self.db.begin().await?;
        let mut sent: Vec<Handed> = Vec::new();
        // Where each attempt now is, for the next in-doubt lookup (the claim cleared it).
        let mut carriers: Vec<(i64, Carrier)> = Vec::new();
        // Not started (an earlier attempt in doubt stays so: the claim marked it).
        let mut untried: Vec<i64> = Vec::new();
        // Nothing sent and must wait (a 429, a paused provider): back in the outbox for then,
        // the attempt not counted.
        let mut held: Vec<(i64, i64, Hold)> = Vec::new();
        for (c, outcome, carrier) in outcomes {
            let attempt = c.attempts + 1;
            if let Some(carrier) = carrier {
                carriers.push((c.id, carrier));
            }
            let by = carrier.unwrap_or(Carrier::Primary);
            match outcome {
                Outcome::Sent(m) => {
                    telemetry::dispatched("sent", None);
                    sent.push((c.id, m, false, by));
                    step.sent += 1;
                }
                Outcome::FoundSent(m) => {
                    telemetry::dispatched("found_sent", None);
                    sent.push((c.id, m, true, by));
                    step.sent += 1;
                    step.found_in_doubt += 1;
                }
                Outcome::Unknown(e) => {
                    telemetry::dispatched("unknown", None);
                    let decision =
                        outcome::decide(Failure::NoAnswer(&e), attempt, &settings.retries);
                    self.apply_send_failure(&mut tx, &c, &decision, &e, now, step)
                        .await?;
                }
                Outcome::Held(until, why) => {
                    let code = match why {
                        Hold::RateLimited => Some(20429),
                        Hold::FallbackPaused(code) => Some(code),
                        Hold::Paused => None,
                    };
                    telemetry::dispatched("held", code);
                    held.push((c.id, until, why));
                    step.held += 1;
                }
                Outcome::FailedOver(m, code) => {
                    telemetry::dispatched("failed_over", Some(code));
                    // The primary cannot send: the administrators hear of it as if it had failed.
                    let info = errors::lookup(code);
                    if info.alert_admins() {
                        let reason = format!(
                            "{} (error {code} from the primary provider; the fallback carries its messages meanwhile)",
                            info.meaning()
                        );
                        alert(&mut tx, code, &reason, now).await?;
                    }
                    sent.push((c.id, m, false, Carrier::Fallback));
                    step.sent += 1;
                }
                Outcome::Refused(e) => {
                    let decision =
                        outcome::decide(Failure::Refused(&e), attempt, &settings.retries);
                    let kind = match decision.next {
                        Next::Retry { .. } => "retry",
                        Next::Fail => "failed",
                    };
                    telemetry::dispatched(kind, decision.code);
                    self.apply_send_failure(&mut tx, &c, &decision, &e, now, step)
                        .await?;
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
        for carrier in [Carrier::Primary, Carrier::Fallback] {
            let ids: Vec<i64> = carriers
                .iter()
                .filter(|(_, k)| *k == carrier)
                .map(|(id, _)| *id)
                .collect();
            for chunk in ids.chunks(PARAMS) {
                let sql = format!(
                    "UPDATE messages SET attempt_provider = $1 WHERE id IN ({})",
                    numbered(2, chunk.len())
                );
                on_tx!(&mut tx, |conn| {
                    let mut q = sqlx::query(&sql).bind(carrier.as_str());
                    for id in chunk {
                        q = q.bind(id);
                    }
                    q.execute(conn).await?.rows_affected()
                });
            }
        }
        // Due again at once (throttled ones after the pause), the attempt not counted, its
        // dispatch no longer logged (the sender's pace keeps it: a second's worth, on the safe
        // side).
        let unsent: Vec<i64> = untried
            .iter()
            .copied()
            .chain(held.iter().map(|(id, _, _)| *id))
            .collect();
        for chunk in unsent.chunks(PARAMS) {
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
        for (id, until, why) in held {
            hold(&mut tx, id, until.max(now), why, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Applies the decision about a failed send of `c`: alert, opt-out, then the retry or the
    /// failure.
    async fn apply_send_failure(
        &self,
        tx: &mut Tx,
        c: &Claimed,
        decision: &Decision,
        error: &TwilioError,
        now: i64,
        step: &mut Step,
    ) -> Result<(), DbError> {
        alert_if_decided(tx, decision, now).await?;
        if decision.record_opt_out {
            record_opt_out(
                tx,
                &self.key,
                &c.to_encrypted,
                "twilio_21610",
                &format!("Twilio refused a send with error 21610: {error}"),
                now,
            )
            .await?;
        }
        match decision.next {
            Next::Retry { delay, in_doubt } => {
                schedule_retry(tx, c.id, delay, in_doubt, decision, now).await?;
                step.retry_scheduled += 1;
            }
            Next::Fail => {
                fail(tx, c.id, decision.code, &decision.reason, now).await?;
                step.failed += 1;
            }
        }
        Ok(())
    }
}

/// A message a provider accepted (or that was found already sent): its id, the provider's
/// message, whether it was found while in doubt, and the provider.
type Handed = (i64, twilio::Message, bool, Carrier);

/// Records messages Twilio accepted (or that were found already sent), a statement per kind for
/// the whole batch.
async fn record_sent(tx: &mut Tx, sent: &[Handed], now: i64) -> Result<(), DbError> {
    for chunk in sent.chunks(PARAMS / 2) {
        let sql = format!(
            "INSERT INTO provider_sids (sid, message_id) VALUES {} ON CONFLICT (sid) DO NOTHING",
            tuples(1, chunk.len(), 2)
        );
        on_tx!(tx, |conn| {
            let mut q = sqlx::query(&sql);
            for (id, m, _, _) in chunk {
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
                 price_micros = COALESCE(v.price, messages.price_micros), updated_at = $1, {}
             FROM v WHERE messages.id = v.id",
            super::forget_two_factor("$1")
        );
        on_tx!(tx, |conn| {
            let mut q = sqlx::query(&sql).bind(now);
            for (id, m, _, _) in chunk {
                q = q
                    .bind(id)
                    .bind(m.status.as_str())
                    .bind(&m.sid)
                    .bind(m.price.map(|p| p.micros()));
            }
            q.execute(conn).await?.rows_affected()
        });
    }
    for chunk in sent.chunks(PARAMS / 7) {
        let sql = format!(
            "INSERT INTO message_events (message_id, at, kind, status, detail, provider_sid, provider)
                 VALUES {}",
            tuples(1, chunk.len(), 7)
        );
        on_tx!(tx, |conn| {
            let mut q = sqlx::query(&sql);
            for (id, m, found_in_doubt, carrier) in chunk {
                let via = match carrier {
                    Carrier::Primary => "",
                    Carrier::Fallback => " (the fallback provider)",
                };
                let (kind, detail) = if *found_in_doubt {
                    (
                        "found",
                        format!(
                            "found in Twilio's message list{via} as {} ({}): the earlier attempt went out, not sent again",
                            m.sid, m.status
                        ),
                    )
                } else {
                    (
                        "submitted",
                        format!("handed to Twilio{via} as {} ({})", m.sid, m.status),
                    )
                };
                q = q
                    .bind(id)
                    .bind(now)
                    .bind(kind)
                    .bind(m.status.as_str())
                    .bind(detail)
                    .bind(&m.sid)
                    .bind(carrier.as_str());
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
    retry_event(tx, id, now, code, &detail).await
}

/// The timeline's line for a retry.
async fn retry_event(
    tx: &mut Tx,
    id: i64,
    now: i64,
    code: Option<u32>,
    detail: &str,
) -> Result<(), DbError> {
    event(
        tx,
        id,
        now,
        NewEvent {
            kind: "retry",
            status: None,
            error_code: code.map(i64::from),
            detail,
            provider_sid: None,
        },
    )
    .await
}

/// Puts a message that nothing was sent for back in the outbox, due at `until`, its attempt not
/// counted, with a line in its timeline saying why.
async fn hold(tx: &mut Tx, id: i64, until: i64, why: Hold, now: i64) -> Result<(), DbError> {
    let when = DateTime::from_timestamp_micros(until)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    let (code, reason) = match why {
        Hold::RateLimited => (
            Some(20429),
            "Twilio answered 429 Too Many Requests (error 20429): the request was refused, not the message; sending paused".to_owned(),
        ),
        Hold::Paused => (
            None,
            "the provider is in a storm (429s, 5xx answers or timeouts) and sending to it is paused".to_owned(),
        ),
        Hold::FallbackPaused(code) => (
            Some(code),
            format!(
                "the primary provider refused it (error {code}, a failover code) and the fallback provider is paused"
            ),
        ),
    };
    on_tx!(tx, |conn| sqlx::query(
        "UPDATE messages SET state = 'waiting', due_at = $1, lease_until = NULL,
             attempts = attempts - 1, error_code = $2, error_message = $3, updated_at = $4
         WHERE id = $5"
    )
    .bind(until)
    .bind(code.map(i64::from))
    .bind(&reason)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected());
    let detail = format!("{reason}; trying again at {when} (this attempt does not count)");
    retry_event(tx, id, now, code, &detail).await
}

async fn fail(
    tx: &mut Tx,
    id: i64,
    code: Option<u32>,
    reason: &str,
    now: i64,
) -> Result<(), DbError> {
    let reason = &mask_numbers(reason);
    let sql = format!(
        "UPDATE messages SET state = 'done', status = 'failed', in_doubt = FALSE, lease_until = NULL,
             error_code = $1, error_message = $2, updated_at = $3, {} WHERE id = $4",
        super::forget_two_factor("$3")
    );
    on_tx!(tx, |conn| {
        sqlx::query(&sql)
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

/// `delay` ±20 %, so retries of a burst do not all come back at once. The one random part of a
/// retry: the decision itself ([`outcome::decide`]) is deterministic.
fn jittered(delay: i64) -> i64 {
    let jitter = delay / 5;
    delay + rand::rng().random_range(-jitter..=jitter)
}

/// Puts the message back in the outbox, due `delay` (jittered) after `now`, with the decision's
/// code and reason.
async fn schedule_retry(
    tx: &mut Tx,
    id: i64,
    delay: i64,
    in_doubt: bool,
    decision: &Decision,
    now: i64,
) -> Result<(), DbError> {
    let due = now + jittered(delay);
    retry(tx, id, due, in_doubt, decision.code, &decision.reason, now).await
}

/// Raises the decision's alert, if it has one.
async fn alert_if_decided(tx: &mut Tx, decision: &Decision, now: i64) -> Result<(), DbError> {
    match &decision.alert {
        Some(a) => alert(tx, a.code, &a.reason, now).await,
        None => Ok(()),
    }
}

/// Records that the recipient (`to_encrypted`) opted out, in the consent ledger; `source` and
/// `evidence` say how smsdesk learnt it. A number that does not decrypt cannot be recorded (its
/// message fails for that reason anyway).
async fn record_opt_out(
    tx: &mut Tx,
    key: &DataKey,
    to_encrypted: &str,
    source: &str,
    evidence: &str,
    now: i64,
) -> Result<(), DbError> {
    match key.decrypt(to_encrypted) {
        Ok(to) => {
            consent::record(tx, key, &to, consent::Action::OptOut, source, evidence, now).await
        }
        Err(_) => Ok(()),
    }
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
            let decision = outcome::decide(Failure::Callback { code }, attempts, &settings.retries);
            alert_if_decided(&mut tx, &decision, now).await?;
            if decision.record_opt_out {
                record_opt_out(&mut tx, key, &to_encrypted, "twilio_callback", &detail, now)
                    .await?;
            }
            // On `Next::Fail` the status just written is the failure: nothing more to do.
            if let Next::Retry { delay, in_doubt } = decision.next {
                // A new attempt starts over: a new Twilio message, from `accepted`.
                on_tx!(&mut tx, |conn| sqlx::query(
                    "UPDATE messages SET status = 'accepted' WHERE id = $1"
                )
                .bind(message_id)
                .execute(conn)
                .await?
                .rows_affected());
                schedule_retry(&mut tx, message_id, delay, in_doubt, &decision, now).await?;
                retry_scheduled = true;
            }
        }
    }
    tx.commit().await?;
    Ok(CallbackOutcome::Recorded {
        advanced,
        retry: retry_scheduled,
    })
}
