//! Prices Twilio reports late. A status callback carries no price, and Twilio often fills a
//! message's `price` minutes after it left, so every minute one instance (a periodic job) asks
//! Twilio for the messages it took at least [`SETTLE`] ago that have no price yet, in batches
//! of [`BATCH`] (up to [`BATCHES`] a run, while there are that many due), [`CONCURRENCY`] at a
//! time, each at most once an hour and for [`GIVE_UP`] after sending. A message that ended `failed` gets Twilio's failed-message fee
//! this way where Twilio charges one.
//!
//! A run marks the messages it takes before asking, so a run that outlasts its minute and the
//! next one (perhaps on another instance) never ask about the same message. A message Twilio no
//! longer holds (404, deleted or gone from the simulator's ledger) is not asked about again. A
//! run stops asking when Twilio limits its rate or stops answering; what it did not ask about is
//! due again at the next run.
//!
//! A price in another currency than USD is not mixed in: it is logged and the message is left
//! without a price (the spend page lists it).

use std::sync::atomic::{AtomicUsize, Ordering};

use domain::money::Money;
use futures::StreamExt;

use crate::db::{Db, DbError};
use crate::twilio::TwilioError;
use crate::worker::Provider;
use crate::{on_db, on_tx};

const MINUTE: i64 = 60_000_000;
/// How long after sending a price is first asked for.
pub const SETTLE: i64 = 2 * MINUTE;
/// How long smsdesk keeps asking.
pub const GIVE_UP: i64 = 7 * 24 * 60 * MINUTE;
/// Messages taken at once: at [`CONCURRENCY`] requests answered in about 150 ms each, Twilio
/// answers 3,000 in about 45 s.
pub const BATCH: i64 = 3_000;
/// Batches a run takes back to back while each finds a full batch due: a run catches up with
/// up to 30,000 messages (a minute of 500 a second), however long Twilio takes to answer them.
pub const BATCHES: usize = 10;
/// Requests to Twilio at once (Twilio's default limit is 100 concurrent per account; sending
/// needs the rest).
pub const CONCURRENCY: usize = 10;
/// Failures in a row (no answer, 5xx) after which a run stops asking.
const FAILURES_TO_STOP: usize = 5;
/// `price_checked_at` of a message Twilio no longer holds: never due again.
pub const GONE: i64 = i64::MAX;
/// The periodic job's name and period.
const JOB: &str = "fetch_prices";
pub const PERIOD: i64 = MINUTE;

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Messages asked about.
    pub asked: usize,
    /// Of those, priced now.
    pub priced: usize,
    /// Of those, no longer held by Twilio (404): not asked about again.
    pub gone: usize,
    /// Taken but not asked about (Twilio limited the rate or stopped answering): due at the
    /// next run.
    pub skipped: usize,
}

/// Runs the job if this instance wins the minute: `None` when another instance has it.
pub async fn run(
    db: &Db,
    provider: &Provider,
    fallback: Option<&Provider>,
    now: i64,
) -> Result<Option<Fetched>, DbError> {
    if !crate::retention::claim(db, JOB, now, PERIOD).await? {
        return Ok(None);
    }
    catch_up(db, provider, fallback, now, BATCH, BATCHES)
        .await
        .map(Some)
}

/// Takes up to `batches` batches of `batch` messages back to back, while each finds a full
/// batch due and Twilio answers (see the module).
pub async fn catch_up(
    db: &Db,
    provider: &Provider,
    fallback: Option<&Provider>,
    now: i64,
    batch: i64,
    batches: usize,
) -> Result<Fetched, DbError> {
    let mut total = Fetched::default();
    for _ in 0..batches {
        let done = fetch_batch(db, provider, fallback, now, batch).await?;
        total.asked += done.asked;
        total.priced += done.priced;
        total.gone += done.gone;
        total.skipped += done.skipped;
        let taken = i64::try_from(done.asked + done.skipped).unwrap_or(i64::MAX);
        if taken < batch || done.skipped > 0 {
            break;
        }
    }
    Ok(total)
}

/// What one question to Twilio gave.
enum Answer {
    Price(Money),
    /// Twilio answered without a price in USD (none yet, or another currency).
    NoPrice,
    Gone,
    Failed(TwilioError),
    /// Not asked: the run had stopped asking.
    Skipped,
}

/// Asks the provider that carried each message still without a price for it (see the module):
/// the primary, or the `fallback` for what it carried; one batch of [`BATCH`].
pub async fn fetch(
    db: &Db,
    provider: &Provider,
    fallback: Option<&Provider>,
    now: i64,
) -> Result<Fetched, DbError> {
    fetch_batch(db, provider, fallback, now, BATCH).await
}

async fn fetch_batch(
    db: &Db,
    provider: &Provider,
    fallback: Option<&Provider>,
    now: i64,
    batch: i64,
) -> Result<Fetched, DbError> {
    let due: Vec<(i64, String, Option<String>)> = {
        let _turn = db.write_turn().await;
        on_db!(db, |pool| sqlx::query_as(
            "UPDATE messages SET price_checked_at = $1
              WHERE id IN (SELECT id FROM messages
                            WHERE price_micros IS NULL AND provider_sid IS NOT NULL
                              AND dispatched_at < $2 AND dispatched_at >= $3
                              AND (price_checked_at IS NULL OR price_checked_at < $4)
                            ORDER BY dispatched_at LIMIT $5)
              RETURNING id, provider_sid, attempt_provider"
        )
        .bind(now)
        .bind(now - SETTLE)
        .bind(now - GIVE_UP)
        .bind(now - 60 * MINUTE)
        .bind(batch)
        .fetch_all(pool)
        .await?)
    };
    if due.is_empty() {
        return Ok(Fetched::default());
    }
    let failures = AtomicUsize::new(0);
    let answers: Vec<(i64, Answer)> = futures::stream::iter(due)
        .map(|(id, sid, carrier)| {
            let carrier = match (carrier.as_deref(), fallback) {
                (Some("fallback"), Some(f)) => f,
                _ => provider,
            };
            let failures = &failures;
            async move {
                if failures.load(Ordering::Relaxed) >= FAILURES_TO_STOP {
                    return (id, Answer::Skipped);
                }
                let answer = match carrier.fetch(&sid).await {
                    Ok(m) => {
                        failures.store(0, Ordering::Relaxed);
                        match (m.price, m.price_unit.as_deref()) {
                            (Some(p), None | Some("USD" | "usd")) => Answer::Price(p),
                            (Some(_), Some(unit)) => {
                                tracing::warn!(
                                    message_id = id,
                                    unit,
                                    "Twilio priced a message in another currency than USD: left without a price (smsdesk counts USD)"
                                );
                                Answer::NoPrice
                            }
                            (None, _) => Answer::NoPrice,
                        }
                    }
                    Err(TwilioError::Api { status: 404, .. }) => Answer::Gone,
                    Err(e) => {
                        if e.rate_limited() {
                            failures.store(FAILURES_TO_STOP, Ordering::Relaxed);
                        } else if e.in_doubt() {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        Answer::Failed(e)
                    }
                };
                (id, answer)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;

    let mut done = Fetched::default();
    let mut failed = 0usize;
    let mut first_error: Option<&TwilioError> = None;
    let mut tx = db.begin().await?;
    for (id, answer) in &answers {
        let (price, checked_at) = match answer {
            Answer::Price(p) => (Some(p.micros()), now),
            Answer::Gone => (None, GONE),
            // Due again at the next run.
            Answer::Skipped => (None, 0),
            Answer::NoPrice | Answer::Failed(_) => continue,
        };
        on_tx!(&mut tx, |conn| sqlx::query(
            "UPDATE messages SET price_micros = COALESCE($1, price_micros), price_checked_at = $2
              WHERE id = $3"
        )
        .bind(price)
        .bind(checked_at)
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected());
    }
    tx.commit().await?;
    for (_, answer) in &answers {
        match answer {
            Answer::Skipped => {
                done.skipped += 1;
                continue;
            }
            Answer::Price(_) => done.priced += 1,
            Answer::Gone => done.gone += 1,
            Answer::Failed(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Answer::NoPrice => {}
        }
        done.asked += 1;
    }
    if let Some(first) = first_error {
        tracing::warn!(
            failed,
            skipped = done.skipped,
            error = %first,
            "could not fetch some messages' prices; asking again in an hour"
        );
    }
    if done.gone > 0 {
        tracing::info!(
            gone = done.gone,
            "Twilio no longer holds some messages (404): their prices are not asked for again"
        );
    }
    Ok(done)
}
