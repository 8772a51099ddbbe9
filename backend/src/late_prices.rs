//! Prices Twilio reports late. A status callback carries no price, and Twilio often fills a
//! message's `price` minutes after it left, so every minute one instance (a periodic job) asks
//! Twilio for the messages it took at least [`SETTLE`] ago that have no price yet, at most
//! [`BATCH`] a run, each at most once an hour and for [`GIVE_UP`] after sending. A message that
//! ended `failed` gets Twilio's failed-message fee this way where Twilio charges one.
//!
//! A price in another currency than USD is not mixed in: it is logged and the message is left
//! without a price (the spend page lists it).

use domain::money::Money;

use crate::db::{Db, DbError};
use crate::on_db;
use crate::worker::Provider;

const MINUTE: i64 = 60_000_000;
/// How long after sending a price is first asked for.
pub const SETTLE: i64 = 2 * MINUTE;
/// How long smsdesk keeps asking.
pub const GIVE_UP: i64 = 7 * 24 * 60 * MINUTE;
/// Most messages asked about per run.
pub const BATCH: i64 = 100;
/// The periodic job's name and period.
const JOB: &str = "fetch_prices";
pub const PERIOD: i64 = MINUTE;

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fetched {
    pub asked: usize,
    pub priced: usize,
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
    fetch(db, provider, fallback, now).await.map(Some)
}

/// Asks the provider that carried each message still without a price for it (see the module):
/// the primary, or the `fallback` for what it carried.
pub async fn fetch(
    db: &Db,
    provider: &Provider,
    fallback: Option<&Provider>,
    now: i64,
) -> Result<Fetched, DbError> {
    let due: Vec<(i64, String, Option<String>)> = on_db!(db, |pool| sqlx::query_as(
        "SELECT id, provider_sid, attempt_provider FROM messages
          WHERE price_micros IS NULL AND provider_sid IS NOT NULL
            AND dispatched_at < $1 AND dispatched_at >= $2
            AND (price_checked_at IS NULL OR price_checked_at < $3)
          ORDER BY dispatched_at LIMIT $4"
    )
    .bind(now - SETTLE)
    .bind(now - GIVE_UP)
    .bind(now - 60 * MINUTE)
    .bind(BATCH)
    .fetch_all(pool)
    .await?);
    let mut done = Fetched::default();
    for (id, sid, carrier) in due {
        done.asked += 1;
        let carrier = match (carrier.as_deref(), fallback) {
            (Some("fallback"), Some(f)) => f,
            _ => provider,
        };
        let price = match carrier.fetch(&sid).await {
            Ok(m) => match (m.price, m.price_unit.as_deref()) {
                (Some(p), None | Some("USD" | "usd")) => Some(p),
                (Some(_), Some(unit)) => {
                    tracing::warn!(
                        message_id = id,
                        unit,
                        "Twilio priced a message in another currency than USD: left without a price (smsdesk counts USD)"
                    );
                    None
                }
                (None, _) => None,
            },
            Err(e) => {
                tracing::warn!(message_id = id, error = %e, "could not fetch a message's price; asking again in an hour");
                None
            }
        };
        let _turn = db.write_turn().await;
        on_db!(db, |pool| sqlx::query(
            "UPDATE messages SET price_micros = COALESCE($1, price_micros), price_checked_at = $2
              WHERE id = $3"
        )
        .bind(price.map(Money::micros))
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected());
        if price.is_some() {
            done.priced += 1;
        }
    }
    Ok(done)
}
