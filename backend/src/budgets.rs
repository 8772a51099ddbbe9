//! Budgets that really stop sending (migration 0013).
//!
//! Intake calls [`reserve`] inside the transaction that accepts messages: it locks the budgets
//! (PostgreSQL `FOR UPDATE`; SQLite has one writer already), reads what each budget's period has
//! reserved so far, admits the messages by [`domain::budget::admit`], adds the admitted estimates
//! to `budget_spend` and records each warning level reached for the first time in the period.
//! So no number of simultaneous sends, on one instance or several, passes a hard stop.
//!
//! A budget counts the estimates intake reserved (segments × the price table), less messages
//! canceled before they were sent; what Twilio later reports is compared on the spend page.

use domain::budget::{self, Budget, Charge, Period};
use domain::template::Category;
use serde::{Deserialize, Serialize};

use crate::audit::{self, Actor};
use crate::db::{Db, DbError, Tx};
use crate::{on_db, on_tx};

const DAY: i64 = 86_400_000_000;

/// A budget as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub id: i64,
    pub budget: Budget,
    pub updated_at: i64,
}

/// A budget with where its current period stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    pub id: i64,
    pub budget: Budget,
    /// What the current period has reserved, µ$.
    pub spent_micros: i64,
    pub period_start: i64,
    /// When the period ends and the budget starts again from zero.
    pub resets_at: i64,
    /// The warning levels already raised this period.
    pub raised: Vec<u8>,
}

/// A warning level reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub period: Period,
    pub category: Option<Category>,
    pub period_start: i64,
    pub level: u8,
    pub amount_micros: i64,
    pub spent_micros: i64,
    pub raised_at: i64,
}

/// Why intake refused a message for a budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub budget: Budget,
    pub spent_micros: i64,
    pub resets_at: i64,
}

impl Exceeded {
    /// What the sender reads: which budget, where it stands, when it resets.
    pub fn explain(&self, estimate_micros: i64) -> String {
        let reset = chrono::DateTime::from_timestamp_micros(self.resets_at)
            .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        format!(
            "the {} would pass its hard stop: {} of {} reserved, this message is estimated at {}; it resets at {reset}",
            describe(&self.budget),
            dollars(self.spent_micros),
            dollars(self.budget.amount_micros),
            dollars(estimate_micros),
        )
    }
}

/// "daily budget", "monthly shipment budget".
pub fn describe(b: &Budget) -> String {
    name(b.period, b.category)
}

/// The name of the budget for `period` and `category`.
pub fn name(period: Period, category: Option<Category>) -> String {
    let period = match period {
        Period::Day => "daily",
        Period::Month => "monthly",
    };
    match category {
        Some(c) => format!("{period} {} budget", c.as_str()),
        None => format!("{period} budget"),
    }
}

impl Alert {
    /// The name of the budget that raised it.
    pub fn budget_name(&self) -> String {
        name(self.period, self.category)
    }
}

fn dollars(micros: i64) -> String {
    domain::money::Money::from_micros(micros).to_string()
}

fn category_text(c: Option<Category>) -> &'static str {
    c.map_or("", Category::as_str)
}

fn read_category(text: &str) -> Result<Option<Category>, DbError> {
    if text.is_empty() {
        return Ok(None);
    }
    Category::ALL
        .into_iter()
        .find(|c| c.as_str() == text)
        .map(Some)
        .ok_or_else(|| unreadable("category", text))
}

fn unreadable(column: &'static str, value: &str) -> DbError {
    tracing::error!(column, value, "unreadable value in budgets");
    DbError::Unreadable {
        table: "budgets",
        id: 0,
        column,
        value: value.to_owned(),
    }
}

type Row = (i64, String, String, i64, String, bool, i64);

fn stored(row: Row) -> Result<Stored, DbError> {
    let (id, period, category, amount_micros, warn, hard_stop, updated_at) = row;
    let period = period
        .parse::<Period>()
        .map_err(|_| unreadable("period", &period))?;
    let warn_percents =
        budget::parse_warn_percents(&warn).map_err(|_| unreadable("warn_percents", &warn))?;
    Ok(Stored {
        id,
        budget: Budget {
            period,
            category: read_category(&category)?,
            amount_micros,
            warn_percents,
            hard_stop,
        },
        updated_at,
    })
}

const COLUMNS: &str = "id, period, category, amount_micros, warn_percents, hard_stop, updated_at";

fn warn_text(levels: &[u8]) -> String {
    levels
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Every budget, by period then category.
pub async fn list(db: &Db) -> Result<Vec<Stored>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM budgets ORDER BY period, category");
    let rows: Vec<Row> = on_db!(db, |pool| sqlx::query_as(&sql).fetch_all(pool).await?);
    rows.into_iter().map(stored).collect()
}

/// Every budget with its current period's spend and alerts.
pub async fn standings(db: &Db, now: i64) -> Result<Vec<Standing>, DbError> {
    let budgets = list(db).await?;
    let spend = spend_rows(db, Period::Month.start(now).min(Period::Day.start(now))).await?;
    let raised = raised_rows(db, now).await?;
    Ok(budgets
        .into_iter()
        .map(|s| {
            let b = &s.budget;
            Standing {
                id: s.id,
                spent_micros: spent_in(b, &spend, now),
                period_start: b.period.start(now),
                resets_at: b.period.next_start(now),
                raised: {
                    let mut levels: Vec<u8> = raised
                        .iter()
                        .filter(|a| a.period == b.period && a.category == b.category)
                        .map(|a| a.level)
                        .collect();
                    levels.sort_unstable();
                    levels
                },
                budget: s.budget,
            }
        })
        .collect())
}

/// The warning levels raised in the periods running at `now`, highest level first per budget.
pub async fn current_alerts(db: &Db, now: i64) -> Result<Vec<Alert>, DbError> {
    let budgets = list(db).await?;
    // A budget removed takes its banner with it.
    let mut alerts: Vec<Alert> = raised_rows(db, now)
        .await?
        .into_iter()
        .filter(|a| {
            budgets
                .iter()
                .any(|b| b.budget.period == a.period && b.budget.category == a.category)
        })
        .collect();
    alerts.sort_by(|a, b| {
        (
            a.period,
            category_text(a.category),
            std::cmp::Reverse(a.level),
        )
            .cmp(&(
                b.period,
                category_text(b.category),
                std::cmp::Reverse(b.level),
            ))
    });
    alerts.dedup_by(|a, b| a.period == b.period && a.category == b.category);
    Ok(alerts)
}

/// Sets the budget for a period and category (replacing the one there was). Audited
/// `budget.set` with the values before and after.
pub async fn set(
    db: &Db,
    actor: &Actor,
    b: &Budget,
    now: i64,
) -> Result<Result<Stored, String>, DbError> {
    if let Err(e) = b.validate() {
        return Ok(Err(e));
    }
    let mut tx = db.begin().await?;
    let before = find(&mut tx, b.period, b.category).await?;
    let sql = format!(
        "INSERT INTO budgets (period, category, amount_micros, warn_percents, hard_stop, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (period, category) DO UPDATE SET amount_micros = excluded.amount_micros,
             warn_percents = excluded.warn_percents, hard_stop = excluded.hard_stop,
             updated_at = excluded.updated_at
         RETURNING {COLUMNS}"
    );
    let row: Row = on_tx!(&mut tx, |conn| sqlx::query_as(&sql)
        .bind(b.period.as_str())
        .bind(category_text(b.category))
        .bind(b.amount_micros)
        .bind(warn_text(&b.warn_percents))
        .bind(b.hard_stop)
        .bind(now)
        .fetch_one(conn)
        .await?);
    let saved = stored(row)?;
    audit::record(
        &mut tx,
        actor,
        "budget.set",
        &describe(b),
        before.map(|s| serde_json::json!(s.budget)),
        Some(serde_json::json!(saved.budget)),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(saved))
}

/// Removes the budget for a period and category; `false` when there was none. Audited.
pub async fn remove(
    db: &Db,
    actor: &Actor,
    period: Period,
    category: Option<Category>,
) -> Result<bool, DbError> {
    let mut tx = db.begin().await?;
    let Some(before) = find(&mut tx, period, category).await? else {
        return Ok(false);
    };
    on_tx!(&mut tx, |conn| sqlx::query(
        "DELETE FROM budgets WHERE id = $1"
    )
    .bind(before.id)
    .execute(conn)
    .await?
    .rows_affected());
    audit::record(
        &mut tx,
        actor,
        "budget.remove",
        &describe(&before.budget),
        Some(serde_json::json!(before.budget)),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

async fn find(
    tx: &mut Tx,
    period: Period,
    category: Option<Category>,
) -> Result<Option<Stored>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM budgets WHERE period = $1 AND category = $2");
    let row: Option<Row> = on_tx!(tx, |conn| sqlx::query_as(&sql)
        .bind(period.as_str())
        .bind(category_text(category))
        .fetch_optional(conn)
        .await?);
    row.map(stored).transpose()
}

/// Reserved µ$ per (day, category) from a day on.
const SPEND_SINCE: &str = "SELECT day, category, micros FROM budget_spend WHERE day >= $1";

/// Reserved µ$ per (day, category) from `since` on.
async fn spend_rows(db: &Db, since: i64) -> Result<Vec<(i64, String, i64)>, DbError> {
    Ok(on_db!(db, |pool| sqlx::query_as(SPEND_SINCE)
        .bind(since)
        .fetch_all(pool)
        .await?))
}

/// What `b`'s period holding `now` has reserved, from the (day, category, µ$) rows.
fn spent_in(b: &Budget, rows: &[(i64, String, i64)], now: i64) -> i64 {
    let (from, until) = (b.period.start(now), b.period.next_start(now));
    rows.iter()
        .filter(|(day, category, _)| {
            *day >= from
                && *day < until
                && (b.category.is_none() || category == category_text(b.category))
        })
        .map(|(_, _, micros)| *micros)
        .sum()
}

type AlertRow = (String, String, i64, i64, i64, i64, i64);

fn alert(row: AlertRow) -> Result<Alert, DbError> {
    let (period, category, period_start, level, amount_micros, spent_micros, raised_at) = row;
    Ok(Alert {
        period: period.parse().map_err(|_| unreadable("period", &period))?,
        category: read_category(&category)?,
        period_start,
        level: u8::try_from(level).map_err(|_| unreadable("level", &level.to_string()))?,
        amount_micros,
        spent_micros,
        raised_at,
    })
}

const ALERT_COLUMNS: &str =
    "period, category, period_start, level, amount_micros, spent_micros, raised_at";

fn raised_sql() -> String {
    format!(
        "SELECT {ALERT_COLUMNS} FROM budget_alerts
          WHERE (period = 'day' AND period_start = $1) OR (period = 'month' AND period_start = $2)"
    )
}

async fn raised_rows(db: &Db, now: i64) -> Result<Vec<Alert>, DbError> {
    let sql = raised_sql();
    let rows: Vec<AlertRow> = on_db!(db, |pool| sqlx::query_as(&sql)
        .bind(Period::Day.start(now))
        .bind(Period::Month.start(now))
        .fetch_all(pool)
        .await?);
    rows.into_iter().map(alert).collect()
}

/// Admits `charges` (in order) against every budget, inside intake's transaction: each one
/// `Ok(())` or the budget that refused it. The admitted estimates are reserved for the UTC day
/// of `now`; warning levels reached for the first time are recorded and audited.
pub async fn reserve(
    tx: &mut Tx,
    charges: &[Charge],
    now: i64,
) -> Result<Vec<Result<(), Exceeded>>, DbError> {
    if charges.is_empty() {
        return Ok(Vec::new());
    }
    // Locked until commit: a second transaction reads the spend only after this one's is in.
    let sql = match tx {
        Tx::Sqlite(..) => format!("SELECT {COLUMNS} FROM budgets ORDER BY id"),
        Tx::Postgres(_) => format!("SELECT {COLUMNS} FROM budgets ORDER BY id FOR UPDATE"),
    };
    let rows: Vec<Row> = on_tx!(tx, |conn| sqlx::query_as(&sql).fetch_all(conn).await?);
    let budgets: Vec<Budget> = rows
        .into_iter()
        .map(|r| stored(r).map(|s| s.budget))
        .collect::<Result<_, _>>()?;
    let mut outcome: Vec<Result<(), Exceeded>> = vec![Ok(()); charges.len()];
    let mut admitted: Vec<&Charge> = charges.iter().collect();
    if !budgets.is_empty() {
        let since = Period::Month.start(now).min(Period::Day.start(now));
        let spend: Vec<(i64, String, i64)> = on_tx!(tx, |conn| sqlx::query_as(SPEND_SINCE)
            .bind(since)
            .fetch_all(conn)
            .await?);
        let spent: Vec<i64> = budgets.iter().map(|b| spent_in(b, &spend, now)).collect();
        let admission = budget::admit(&budgets, &spent, charges);
        admitted.clear();
        for ((charge, refused), slot) in charges
            .iter()
            .zip(&admission.refused_by)
            .zip(outcome.iter_mut())
        {
            match refused {
                Some(r) => {
                    let b = &budgets[r.budget];
                    *slot = Err(Exceeded {
                        budget: b.clone(),
                        spent_micros: r.spent,
                        resets_at: b.period.next_start(now),
                    });
                }
                None => admitted.push(charge),
            }
        }
        raise_alerts(tx, &budgets, &admission.spent, now).await?;
    }
    add_spend(tx, Period::Day.start(now), admitted.into_iter(), 1).await?;
    Ok(outcome)
}

/// Adds (`sign` 1) or takes back (-1) estimates in `budget_spend` for `day`, one row per category.
async fn add_spend<'a>(
    tx: &mut Tx,
    day: i64,
    charges: impl Iterator<Item = &'a Charge>,
    sign: i64,
) -> Result<(), DbError> {
    let mut per_category: Vec<(&'static str, i64)> = Vec::new();
    for c in charges.filter(|c| c.micros != 0) {
        let name = category_text(c.category);
        match per_category.iter_mut().find(|(n, _)| *n == name) {
            Some((_, sum)) => *sum += c.micros * sign,
            None => per_category.push((name, c.micros * sign)),
        }
    }
    // In a fixed order, so two transactions never wait on each other's rows crosswise.
    per_category.sort_unstable();
    for (category, micros) in per_category {
        on_tx!(tx, |conn| {
            sqlx::query(
            "INSERT INTO budget_spend (day, category, micros) VALUES ($1, $2, $3)
             ON CONFLICT (day, category) DO UPDATE SET micros = budget_spend.micros + excluded.micros"
        )
        .bind(day)
        .bind(category)
        .bind(micros)
        .execute(conn)
        .await?
        .rows_affected()
        });
    }
    Ok(())
}

/// Gives back a canceled message's reservation (it was never sent), in the caller's transaction.
pub async fn release(
    tx: &mut Tx,
    created_at: i64,
    category: Option<Category>,
    estimate_micros: i64,
) -> Result<(), DbError> {
    let charge = Charge {
        category,
        micros: estimate_micros,
        exempt: false,
    };
    add_spend(
        tx,
        created_at.div_euclid(DAY) * DAY,
        std::iter::once(&charge),
        -1,
    )
    .await
}

/// Records each warning level `spent` has reached for the first time in its period, with an
/// audit entry; the webhook job posts them later.
async fn raise_alerts(
    tx: &mut Tx,
    budgets: &[Budget],
    spent: &[i64],
    now: i64,
) -> Result<(), DbError> {
    let reached: Vec<(&Budget, i64, u8)> = budgets
        .iter()
        .zip(spent)
        .flat_map(|(b, &s)| b.levels_reached(s).map(move |level| (b, s, level)))
        .collect();
    if reached.is_empty() {
        return Ok(());
    }
    let sql = raised_sql();
    let raised: Vec<AlertRow> = on_tx!(tx, |conn| sqlx::query_as(&sql)
        .bind(Period::Day.start(now))
        .bind(Period::Month.start(now))
        .fetch_all(conn)
        .await?);
    let raised: Vec<Alert> = raised.into_iter().map(alert).collect::<Result<_, _>>()?;
    for (b, spent, level) in reached {
        let already = raised
            .iter()
            .any(|a| a.period == b.period && a.category == b.category && a.level == level);
        if already {
            continue;
        }
        let new = on_tx!(tx, |conn| sqlx::query(&format!(
            "INSERT INTO budget_alerts ({ALERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT DO NOTHING"
        ))
        .bind(b.period.as_str())
        .bind(category_text(b.category))
        .bind(b.period.start(now))
        .bind(i64::from(level))
        .bind(b.amount_micros)
        .bind(spent)
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected());
        if new == 0 {
            continue;
        }
        tracing::warn!(
            budget = %describe(b),
            level,
            spent_micros = spent,
            amount_micros = b.amount_micros,
            "budget warning level reached"
        );
        audit::record(
            tx,
            &Actor::system(),
            "budget.alert",
            &describe(b),
            None,
            Some(serde_json::json!({
                "level_percent": level,
                "spent_micros": spent,
                "amount_micros": b.amount_micros,
                "period_start": b.period.start(now),
            })),
        )
        .await?;
    }
    Ok(())
}

/// Alerts not yet posted to the webhook, oldest first (at most 100).
pub async fn unnotified(db: &Db) -> Result<Vec<Alert>, DbError> {
    let sql = format!(
        "SELECT {ALERT_COLUMNS} FROM budget_alerts WHERE notified_at IS NULL
          ORDER BY raised_at LIMIT 100"
    );
    let rows: Vec<AlertRow> = on_db!(db, |pool| sqlx::query_as(&sql).fetch_all(pool).await?);
    rows.into_iter().map(alert).collect()
}

/// Marks an alert posted; `false` when another instance marked it first.
pub async fn mark_notified(db: &Db, a: &Alert, now: i64) -> Result<bool, DbError> {
    let _turn = db.write_turn().await;
    let changed = on_db!(db, |pool| sqlx::query(
        "UPDATE budget_alerts SET notified_at = $1
          WHERE period = $2 AND category = $3 AND period_start = $4 AND level = $5
            AND notified_at IS NULL"
    )
    .bind(now)
    .bind(a.period.as_str())
    .bind(category_text(a.category))
    .bind(a.period_start)
    .bind(i64::from(a.level))
    .execute(pool)
    .await?
    .rows_affected());
    Ok(changed == 1)
}

/// What a batch would do to one budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effect {
    pub budget: Budget,
    pub spent_micros: i64,
    /// Reserved after the batch (the messages its hard stop would refuse left out).
    pub after_micros: i64,
    /// How many of the batch's messages its hard stop would refuse.
    pub refused: usize,
    pub resets_at: i64,
}

/// What sending `charges` now would do to each budget they fall under, without reserving
/// anything: for the send page's review and the API's dry run.
pub async fn preview(db: &Db, charges: &[Charge], now: i64) -> Result<Vec<Effect>, DbError> {
    let standings = standings(db, now).await?;
    let budgets: Vec<Budget> = standings.iter().map(|s| s.budget.clone()).collect();
    let spent: Vec<i64> = standings.iter().map(|s| s.spent_micros).collect();
    let admission = budget::admit(&budgets, &spent, charges);
    Ok(standings
        .into_iter()
        .enumerate()
        .filter(|(_, s)| charges.iter().any(|c| s.budget.covers(c.category)))
        .map(|(i, s)| Effect {
            refused: admission
                .refused_by
                .iter()
                .filter(|r| r.is_some_and(|r| r.budget == i))
                .count(),
            after_micros: admission.spent[i],
            spent_micros: s.spent_micros,
            resets_at: s.resets_at,
            budget: s.budget,
        })
        .collect())
}

/// Gives a claimed alert back (its post failed), so the next round posts it again.
async fn unmark_notified(db: &Db, a: &Alert) -> Result<(), DbError> {
    let _turn = db.write_turn().await;
    on_db!(db, |pool| sqlx::query(
        "UPDATE budget_alerts SET notified_at = NULL
          WHERE period = $1 AND category = $2 AND period_start = $3 AND level = $4"
    )
    .bind(a.period.as_str())
    .bind(category_text(a.category))
    .bind(a.period_start)
    .bind(i64::from(a.level))
    .execute(pool)
    .await?
    .rows_affected());
    Ok(())
}

/// The JSON an alert is posted as.
pub fn alert_json(a: &Alert) -> serde_json::Value {
    let at = |micros: i64| {
        chrono::DateTime::from_timestamp_micros(micros)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    let money = |m: i64| domain::money::Money::from_micros(m).to_decimal();
    serde_json::json!({
        "type": "budget.alert",
        "budget": a.budget_name(),
        "period": a.period.as_str(),
        "category": a.category.map(Category::as_str),
        "level_percent": a.level,
        "spent_usd": money(a.spent_micros),
        "amount_usd": money(a.amount_micros),
        "period_start": at(a.period_start),
        "raised_at": at(a.raised_at),
    })
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`: the `X-Smsdesk-Signature` header.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Where alerts go: the settings' URL and the deployment's secret.
pub struct AlertHook<'a> {
    pub url: &'a str,
    pub secret: &'a [u8],
}

/// Posts each alert not yet posted, once across instances (claimed before the post, given
/// back when it fails). Without a hook, alerts are marked done (the banner and the audit log
/// have them). Answers the alerts done this round (posted, or nowhere to post), for the SMS.
pub async fn post_alerts(
    db: &Db,
    http: &reqwest::Client,
    hook: Option<AlertHook<'_>>,
    now: i64,
) -> Result<Vec<Alert>, DbError> {
    let mut done = Vec::new();
    for alert in unnotified(db).await? {
        if !mark_notified(db, &alert, now).await? {
            continue;
        }
        let Some(hook) = &hook else {
            done.push(alert);
            continue;
        };
        let body = alert_json(&alert).to_string();
        let sent = http
            .post(hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                "X-Smsdesk-Signature",
                signature(hook.secret, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        match sent {
            Ok(_) => done.push(alert),
            Err(e) => {
                tracing::warn!(error = %e, level = alert.level, "could not post a budget alert to the webhook; trying again shortly");
                unmark_notified(db, &alert).await?;
                break;
            }
        }
    }
    Ok(done)
}

/// The SMS an alert is sent as to finance's numbers.
pub fn alert_text(a: &Alert) -> String {
    let money = |m: i64| domain::money::Money::from_micros(m).to_string();
    let name = a.budget_name();
    format!(
        "smsdesk: the {name} has reached {} % ({} of {}).",
        a.level,
        money(a.spent_micros),
        money(a.amount_micros)
    )
}

/// What alerts are posted with.
pub type HttpClient = reqwest::Client;

/// The HTTP client alerts are posted with (10 s per post).
pub fn alert_client() -> HttpClient {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

/// A number texted on every budget alert, as shown (masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertNumber {
    pub id: i64,
    pub masked: String,
}

/// Most numbers texted on an alert.
pub const MAX_ALERT_NUMBERS: usize = 10;

/// The numbers texted on every alert, masked.
pub async fn alert_numbers(db: &Db) -> Result<Vec<AlertNumber>, DbError> {
    let rows: Vec<(i64, String)> = on_db!(db, |pool| sqlx::query_as(
        "SELECT id, masked FROM budget_alert_numbers ORDER BY id"
    )
    .fetch_all(pool)
    .await?);
    Ok(rows
        .into_iter()
        .map(|(id, masked)| AlertNumber { id, masked })
        .collect())
}

/// The numbers texted on every alert, whole (decrypted), for the SMS only.
pub async fn alert_numbers_e164(
    db: &Db,
    key: &crate::crypto::DataKey,
) -> Result<Vec<String>, DbError> {
    let rows: Vec<String> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT number_enc FROM budget_alert_numbers ORDER BY id"
    )
    .fetch_all(pool)
    .await?);
    rows.iter()
        .map(|enc| {
            key.decrypt(enc).map_err(|_| DbError::Undecryptable {
                what: "a budget alert number",
            })
        })
        .collect()
}

/// Adds a number (E.164, checked by the caller) to those texted on alerts; `Err` says why not
/// (already there, or too many). Audited with the number masked.
pub async fn add_alert_number(
    db: &Db,
    key: &crate::crypto::DataKey,
    actor: &Actor,
    e164: &str,
    masked: &str,
    now: i64,
) -> Result<Result<(), String>, DbError> {
    let mut tx = db.begin().await?;
    let (count, present): (i64, i64) = on_tx!(&mut tx, |conn| sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN number_hash = $1 THEN 1 ELSE 0 END), 0)
           FROM budget_alert_numbers"
    )
    .bind(key.lookup_hash(e164))
    .fetch_one(conn)
    .await?);
    if present > 0 {
        return Ok(Err(format!("{masked} is already texted on alerts")));
    }
    if count >= MAX_ALERT_NUMBERS as i64 {
        return Ok(Err(format!(
            "at most {MAX_ALERT_NUMBERS} numbers are texted on alerts: remove one first"
        )));
    }
    on_tx!(&mut tx, |conn| sqlx::query(
        "INSERT INTO budget_alert_numbers (number_enc, number_hash, masked, added_at)
         VALUES ($1, $2, $3, $4)"
    )
    .bind(key.encrypt(e164))
    .bind(key.lookup_hash(e164))
    .bind(masked)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected());
    audit::record(
        &mut tx,
        actor,
        "budget.alert_number.add",
        masked,
        None,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// Stops texting alerts to a number; `false` when it was not there. Audited.
pub async fn remove_alert_number(db: &Db, actor: &Actor, id: i64) -> Result<bool, DbError> {
    let mut tx = db.begin().await?;
    let masked: Option<String> = on_tx!(&mut tx, |conn| sqlx::query_scalar(
        "DELETE FROM budget_alert_numbers WHERE id = $1 RETURNING masked"
    )
    .bind(id)
    .fetch_optional(conn)
    .await?);
    let Some(masked) = masked else {
        return Ok(false);
    };
    audit::record(
        &mut tx,
        actor,
        "budget.alert_number.remove",
        &masked,
        None,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
