//! Message history at size, for benchmarks and for trying the console with a realistic log:
//! `smsdesk seed messages --count 1000000` and the delivery-log benchmark write finished
//! messages spread evenly over the last days (oldest first, so ids follow time as they do in
//! use), with Twilio's outcomes in realistic shares, eight templates, four categories, a handful
//! of senders, 50,000 recipients and the error codes failures carry. Written straight into the
//! outbox (history, not traffic: no intake, no worker, no events), 5,000 rows per statement.
//! The same seed writes the same content (sids are fresh each time).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::crypto::DataKey;
use crate::db::{Db, DbError, Tx};

/// What to write.
#[derive(Debug, Clone)]
pub struct Spec {
    pub count: u64,
    /// Spread over this many days before `now`.
    pub days: u32,
    pub now: i64,
    pub seed: u64,
}

/// The templates seeded messages use (keys only: no template rows are written).
pub const TEMPLATES: [&str; 8] = [
    "shipment_created",
    "shipment_picked_up",
    "shipment_delayed",
    "shipment_delivered",
    "driver_assignment",
    "driver_route_change",
    "emergency_spill",
    "login_code",
];

/// Who sent them.
pub const SOURCES: [&str; 5] = [
    "api_key:SK00000000000000000000000000000001",
    "api_key:SK00000000000000000000000000000002",
    "api_key:SK00000000000000000000000000000003",
    "user:dispatch@safeshipper.example",
    "user:alice@safeshipper.example",
];

/// Distinct recipients.
pub const RECIPIENTS: u32 = 50_000;

/// The recipient number `n` of the seeded set (US numbers).
pub fn recipient(n: u32) -> String {
    format!("+1415{:07}", 2_000_000 + n % RECIPIENTS)
}

const ROWS_PER_STATEMENT: usize = 5_000;

#[derive(Serialize)]
struct Row<'a> {
    sid: String,
    to_encrypted: &'a str,
    to_hash: &'a str,
    to_masked: &'a str,
    body: String,
    template_key: &'static str,
    category: &'static str,
    priority: i64,
    status: &'static str,
    error_code: Option<i64>,
    error_message: Option<&'static str>,
    price_micros: Option<i64>,
    source: &'static str,
    created_at: i64,
    dispatched_at: i64,
}

struct Recipient {
    encrypted: String,
    hash: String,
    masked: String,
}

/// (status, share in thousandths, error code, error text) of seeded outcomes.
const OUTCOMES: [(&str, u32, Option<i64>, Option<&str>); 7] = [
    ("delivered", 860, None, None),
    ("sent", 50, None, None),
    ("read", 10, None, None),
    (
        "undelivered",
        30,
        Some(30003),
        Some("Unreachable destination handset"),
    ),
    (
        "undelivered",
        15,
        Some(30005),
        Some("Unknown destination handset"),
    ),
    (
        "failed",
        20,
        Some(30007),
        Some("Message filtered by the carrier"),
    ),
    (
        "failed",
        15,
        Some(21610),
        Some("Attempt to send to unsubscribed recipient"),
    ),
];

const PLACES: [&str; 6] = [
    "Depot 3",
    "Port Botany",
    "Yard 12",
    "Dock 4",
    "Gate B",
    "Hub 7",
];

/// Whether the outbox holds no message at all (seeding adds fake ones).
pub async fn outbox_is_empty(db: &Db) -> Result<bool, DbError> {
    let any: Option<i64> = crate::on_db!(db, |pool| sqlx::query_scalar(
        "SELECT id FROM messages LIMIT 1"
    )
    .fetch_optional(pool)
    .await?);
    Ok(any.is_none())
}

/// Writes the messages; `progress` is told how many so far after each statement. Returns the
/// number written.
pub async fn messages(
    db: &Db,
    key: &DataKey,
    spec: &Spec,
    mut progress: impl FnMut(u64),
) -> Result<u64, DbError> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let recipients: Vec<Recipient> = (0..RECIPIENTS)
        .map(|n| {
            let e164 = recipient(n);
            Recipient {
                encrypted: key.encrypt(&e164),
                hash: key.lookup_hash(&e164),
                masked: domain::redact::mask_numbers(&e164),
            }
        })
        .collect();
    let span = i64::from(spec.days.max(1)) * 86_400_000_000;
    let start = spec.now - span;
    let step = span / spec.count.max(1) as i64;
    let mut written = 0u64;
    while written < spec.count {
        let n = (spec.count - written).min(ROWS_PER_STATEMENT as u64);
        let mut rows = Vec::with_capacity(n as usize);
        for i in written..written + n {
            let created_at = start + i as i64 * step;
            let to = &recipients[rng.random_range(0..RECIPIENTS) as usize];
            let template = rng.random_range(0..TEMPLATES.len());
            let (category, priority) = match template {
                0..=3 => ("shipment", 2),
                4 | 5 => ("driver", 2),
                6 => ("emergency", 0),
                _ => ("two_factor", 1),
            };
            let mut pick = rng.random_range(0..1000u32);
            let outcome = OUTCOMES
                .iter()
                .find(|o| {
                    if pick < o.1 {
                        true
                    } else {
                        pick -= o.1;
                        false
                    }
                })
                .unwrap_or(&OUTCOMES[0]);
            let place = PLACES[rng.random_range(0..PLACES.len())];
            let body = match template {
                7 => format!(
                    "Your SafeShipper code is {:06}",
                    rng.random_range(0..1_000_000)
                ),
                6 => format!("EMERGENCY at {place}: leave the area now and follow the wardens."),
                _ => format!(
                    "Shipment SS{:08} ({}): {place}, bay {}.",
                    rng.random_range(0..100_000_000u32),
                    TEMPLATES[template].replace('_', " "),
                    rng.random_range(1..40)
                ),
            };
            rows.push(Row {
                // Fresh every time, so seeding twice adds rather than collides.
                sid: crate::settings::random_sid("SM"),
                to_encrypted: &to.encrypted,
                to_hash: &to.hash,
                to_masked: &to.masked,
                body,
                template_key: TEMPLATES[template],
                category,
                priority,
                status: outcome.0,
                error_code: outcome.2,
                error_message: outcome.3,
                price_micros: (outcome.0 != "failed").then_some(7_900),
                source: SOURCES[rng.random_range(0..SOURCES.len())],
                created_at,
                dispatched_at: created_at + rng.random_range(100_000..2_000_000),
            });
        }
        let json = serde_json::to_string(&rows).expect("rows serialize");
        let mut tx = db.begin().await?;
        insert(&mut tx, &json).await?;
        tx.commit().await?;
        // Folded as it goes, so the changes to the totals never pile up.
        crate::totals::fold(db).await?;
        written += n;
        progress(written);
    }
    Ok(written)
}

const COLUMNS: &str =
    "sid, to_encrypted, to_hash, to_masked, to_region, sender, body, template_key,
    category, priority, encoding, segments, smart_encoded, state, status, due_at, attempts,
    dispatched_at, provider_sid, error_code, error_message, price_micros, source, created_at,
    updated_at, estimated_micros";

/// What each seeded message (one GSM-7 segment to the US) was estimated at: the US price a new
/// installation starts with.
fn estimate_micros() -> i64 {
    domain::pricing::lookup(&domain::pricing::starting_prices(), "US", None)
        .map_or(0, domain::money::Money::micros)
}

async fn insert(tx: &mut Tx, json: &str) -> Result<(), DbError> {
    let estimate = estimate_micros();
    match tx {
        Tx::Sqlite(t, _) => {
            sqlx::query(&format!(
                "INSERT INTO messages ({COLUMNS})
                 SELECT r.value ->> 'sid', r.value ->> 'to_encrypted', r.value ->> 'to_hash',
                        r.value ->> 'to_masked', 'US', NULL, r.value ->> 'body',
                        r.value ->> 'template_key', r.value ->> 'category',
                        r.value ->> 'priority', 'GSM-7', 1, 0, 'done', r.value ->> 'status',
                        r.value ->> 'created_at', 1, r.value ->> 'dispatched_at',
                        'SM' || substr(r.value ->> 'sid', 3), r.value ->> 'error_code',
                        r.value ->> 'error_message', r.value ->> 'price_micros',
                        r.value ->> 'source', r.value ->> 'created_at', r.value ->> 'dispatched_at',
                        {estimate}
                   FROM json_each($1) r ORDER BY r.key"
            ))
            .bind(json)
            .execute(&mut **t)
            .await?;
        }
        Tx::Postgres(t) => {
            sqlx::query(&format!(
                "INSERT INTO messages ({COLUMNS})
                 SELECT sid, to_encrypted, to_hash, to_masked, 'US', NULL, body, template_key,
                        category, priority, 'GSM-7', 1, FALSE, 'done', status, created_at, 1,
                        dispatched_at, 'SM' || substr(sid, 3), error_code, error_message,
                        price_micros, source, created_at, dispatched_at, {estimate}
                   FROM jsonb_to_recordset($1::text::jsonb) AS r(sid text, to_encrypted text,
                        to_hash text, to_masked text, body text, template_key text,
                        category text, priority bigint, status text, error_code bigint,
                        error_message text, price_micros bigint, source text,
                        created_at bigint, dispatched_at bigint)"
            ))
            .bind(json)
            .execute(&mut **t)
            .await?;
        }
    }
    Ok(())
}
