//! Totals of the outbox per UTC day: how many messages, segments and dollars per status,
//! template, category, source, error code and destination region (migration 0011). The log's
//! counts (and the overview's, and later the spend charts) read these instead of every message:
//! a few thousand rows whatever the size of the outbox.
//!
//! The database keeps them: every statement that changes `messages` appends its difference to
//! `message_total_changes` through triggers, so no code path that writes a message can forget
//! them and concurrent writers only append (they never wait on one shared total). [`fold`] moves
//! the changes into `message_totals` (every instance calls it every [`FOLD_EVERY`]; PostgreSQL
//! lets one at a time through). A reader sums both tables in one statement, so what it reads is
//! exact at any moment, folded or not.

use domain::status::MessageStatus;
use domain::template::Category;

use crate::db::{Db, DbError, Tx};
use crate::{on_db, on_tx};

const DAY: i64 = 86_400_000_000;

/// How often each instance folds the changes into the totals, in µs.
pub const FOLD_EVERY: i64 = 2_000_000;

/// The PostgreSQL advisory lock a fold takes (an arbitrary constant: "totals" in ASCII).
const FOLD_LOCK: i64 = 0x746f_7461_6c73;

/// The grouped columns, in the primary key's order.
const KEY: &str = "day, status, template_key, category, source, error_code, region";

/// Which messages a total covers; every field set narrows it. Days are whole UTC days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub template_key: Option<String>,
    pub category: Option<Category>,
    /// A source as stored (`api_key:SK…`, `user:…`).
    pub source: Option<String>,
    pub error_code: Option<i64>,
    /// Created on or after the UTC day starting at this µs.
    pub from_day: Option<i64>,
    /// Created before the UTC day starting at this µs.
    pub until_day: Option<i64>,
}

/// Whether `micros` is the first µs of a UTC day, so the totals can stand for a time bound.
pub fn is_day_start(micros: i64) -> bool {
    micros.rem_euclid(DAY) == 0
}

/// Moves every change appended so far into the totals; answers how many change rows it folded
/// (0 also when another instance is folding at the same moment: its fold takes them).
pub async fn fold(db: &Db) -> Result<u64, DbError> {
    // Nothing to fold: no write (and no writer's turn taken from anyone else).
    let pending: Option<i64> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT id FROM message_total_changes LIMIT 1"
    )
    .fetch_optional(pool)
    .await?);
    if pending.is_none() {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    let sums = "SUM(messages), SUM(segments), SUM(price_micros), SUM(estimated_micros)";
    let upsert = format!(
        "ON CONFLICT ({KEY}) DO UPDATE SET
             messages = message_totals.messages + excluded.messages,
             segments = message_totals.segments + excluded.segments,
             price_micros = message_totals.price_micros + excluded.price_micros,
             estimated_micros = message_totals.estimated_micros + excluded.estimated_micros"
    );
    let folded = match &mut tx {
        // One writer at a time: nothing is appended between the two statements.
        Tx::Sqlite(t, _) => {
            sqlx::query(&format!(
                "INSERT INTO message_totals ({KEY}, messages, segments, price_micros, estimated_micros)
                 SELECT {KEY}, {sums} FROM message_total_changes WHERE true
                  GROUP BY {KEY} {upsert}"
            ))
            .execute(&mut **t)
            .await?;
            sqlx::query("DELETE FROM message_total_changes")
                .execute(&mut **t)
                .await?
                .rows_affected()
        }
        Tx::Postgres(t) => {
            let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(FOLD_LOCK)
                .fetch_one(&mut **t)
                .await?;
            if !ours {
                return Ok(0);
            }
            // One statement, one snapshot: exactly the rows deleted are added. Changes committed
            // meanwhile stay for the next fold.
            let moved: i64 = sqlx::query_scalar(&format!(
                "WITH moved AS (DELETE FROM message_total_changes
                                RETURNING {KEY}, messages, segments, price_micros, estimated_micros),
                      folded AS (INSERT INTO message_totals
                                     ({KEY}, messages, segments, price_micros, estimated_micros)
                                 SELECT {KEY}, {sums} FROM moved GROUP BY {KEY} ORDER BY {KEY}
                                 {upsert})
                 SELECT COUNT(*) FROM moved"
            ))
            .fetch_one(&mut **t)
            .await?;
            moved as u64
        }
    };
    on_tx!(&mut tx, |conn| sqlx::query(
        "DELETE FROM message_totals
          WHERE messages = 0 AND segments = 0 AND price_micros = 0 AND estimated_micros = 0"
    )
    .execute(conn)
    .await?
    .rows_affected());
    tx.commit().await?;
    Ok(folded)
}

/// How many messages `filter` covers in each status, in [`MessageStatus::ALL`]'s order, zeros
/// left out. One statement over the totals and the changes not yet folded.
pub async fn by_status(db: &Db, filter: &Filter) -> Result<Vec<(MessageStatus, i64)>, DbError> {
    let mut conditions = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    let mut ints: Vec<i64> = Vec::new();
    // Placeholders are numbered in the order the values are bound: texts first, then numbers.
    let mut text = |value: String, column: &str, conditions: &mut Vec<String>| {
        texts.push(value);
        conditions.push(format!("{column} = ${}", texts.len()));
    };
    if let Some(t) = &filter.template_key {
        text(t.clone(), "template_key", &mut conditions);
    }
    if let Some(c) = filter.category {
        text(c.as_str().to_owned(), "category", &mut conditions);
    }
    if let Some(s) = &filter.source {
        text(s.clone(), "source", &mut conditions);
    }
    let first_int = texts.len();
    for (value, condition) in [
        (filter.error_code, "error_code ="),
        (filter.from_day, "day >="),
        (filter.until_day, "day <"),
    ] {
        if let Some(v) = value {
            ints.push(v);
            conditions.push(format!("{condition} ${}", first_int + ints.len()));
        }
    }
    let where_clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT status, CAST(SUM(messages) AS BIGINT) FROM (
             SELECT status, messages FROM message_totals {where_clause}
             UNION ALL
             SELECT status, messages FROM message_total_changes {where_clause}
         ) AS t GROUP BY status HAVING SUM(messages) <> 0"
    );
    let rows: Vec<(String, i64)> = on_db!(db, |pool| {
        let mut q = sqlx::query_as::<_, (String, i64)>(&sql);
        for t in &texts {
            q = q.bind(t);
        }
        for i in &ints {
            q = q.bind(i);
        }
        q.fetch_all(pool).await?
    });
    let mut counts = Vec::with_capacity(rows.len());
    for (status, n) in rows {
        let status = status.parse::<MessageStatus>().map_err(|_| {
            tracing::error!(value = %status, "unreadable status in the message totals");
            DbError::Unreadable {
                table: "message_totals",
                id: 0,
                column: "status",
                value: status,
            }
        })?;
        counts.push((status, n));
    }
    counts.sort_by_key(|(s, _)| MessageStatus::ALL.iter().position(|a| a == s));
    Ok(counts)
}

/// Outbound SMS on one UTC day as Twilio's usage counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayUsage {
    /// The day's first µs.
    pub day: i64,
    pub messages: i64,
    pub segments: i64,
    /// What Twilio reported, µ$ (messages without a price yet count nothing).
    pub price_micros: i64,
}

/// Statuses of messages still with smsdesk (or never sent): not Twilio's usage.
const NOT_SENT: &str = "'accepted', 'scheduled', 'canceled'";

/// Outbound SMS per day from `from_day` to before `until_day` (µs), days without any left out,
/// in order: every message smsdesk handed to Twilio or that ended failed, with its segments and
/// reported price. One statement over the totals and the changes not yet folded.
pub async fn usage_per_day(
    db: &Db,
    from_day: i64,
    until_day: i64,
) -> Result<Vec<DayUsage>, DbError> {
    let part = |table: &str| {
        format!(
            "SELECT day, messages, segments, price_micros FROM {table}
              WHERE day >= $1 AND day < $2 AND status NOT IN ({NOT_SENT})"
        )
    };
    let sql = format!(
        "SELECT day, CAST(SUM(messages) AS BIGINT), CAST(SUM(segments) AS BIGINT),
                CAST(SUM(price_micros) AS BIGINT)
           FROM ({} UNION ALL {}) AS t
          GROUP BY day HAVING SUM(messages) <> 0 ORDER BY day",
        part("message_totals"),
        part("message_total_changes")
    );
    let rows: Vec<(i64, i64, i64, i64)> = on_db!(db, |pool| sqlx::query_as(&sql)
        .bind(from_day)
        .bind(until_day)
        .fetch_all(pool)
        .await?);
    Ok(rows
        .into_iter()
        .map(|(day, messages, segments, price_micros)| DayUsage {
            day,
            messages,
            segments,
            price_micros,
        })
        .collect())
}

/// The first day any message was written on (µs), if any.
pub async fn first_day(db: &Db) -> Result<Option<i64>, DbError> {
    Ok(on_db!(db, |pool| sqlx::query_scalar::<_, Option<i64>>(
        "SELECT MIN(day) FROM (SELECT MIN(day) AS day FROM message_totals
                               UNION ALL SELECT MIN(day) FROM message_total_changes) AS t"
    )
    .fetch_one(pool)
    .await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_start_is_midnight_utc() {
        assert!(is_day_start(0));
        assert!(is_day_start(20_000 * DAY));
        assert!(!is_day_start(20_000 * DAY + 1));
        assert!(!is_day_start(-1));
        assert!(is_day_start(-DAY));
    }
}
