//! Data protection: bodies removed after the retention period set in Settings. The record stays
//! (who, when, status, price, segments...); only the text goes, and when it went is kept.
//!
//! One job does it for outgoing and incoming messages, at most once per [`PERIOD`] across every
//! instance ([`claim`]): each run reads on from where the last one stopped (a cursor per table),
//! in batches, each batch its own short transaction, so a large first run never holds the
//! database for long and a crash loses nothing but the batch in flight. What a run removed is
//! audited. Two-factor codes do not wait for it: the worker removes a code's body as soon as the
//! code has left (`worker::FORGET_TWO_FACTOR`).

use crate::audit::{self, Actor};
use crate::db::{Db, DbError};
use crate::{on_db, on_tx};

const SECOND: i64 = 1_000_000;
const DAY: i64 = 86_400 * SECOND;
/// How often the job runs (across all instances together).
pub const PERIOD: i64 = 600 * SECOND;
/// Rows read per batch.
const BATCH: i64 = 1_000;
const JOB: &str = "redact_bodies";

/// How many bodies one run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redacted {
    pub messages: u64,
    pub inbound: u64,
}

/// Moves a periodic job's due time on by `period` if it is due at `now`: true for exactly one
/// caller per period, whatever the number of instances asking (a conditional update).
pub async fn claim(db: &Db, name: &str, now: i64, period: i64) -> Result<bool, DbError> {
    // In turn with this process's transactions (SQLite), so none of them finds the database
    // changed under it between its first read and its first write.
    let _turn = db.write_turn().await;
    let won = on_db!(db, |pool| sqlx::query(
        "UPDATE periodic_jobs SET due_at = $1 WHERE name = $2 AND due_at <= $3"
    )
    .bind(now + period)
    .bind(name)
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected());
    Ok(won == 1)
}

/// Runs the retention job if this instance wins its period: removes the bodies of messages
/// (finished ones: never one still to be sent) and of incoming messages older than
/// `retention_days`, and audits what it removed. `None` when another instance has this period.
pub async fn run(db: &Db, retention_days: u32, now: i64) -> Result<Option<Redacted>, DbError> {
    if !claim(db, JOB, now, PERIOD).await? {
        return Ok(None);
    }
    let cutoff = now - i64::from(retention_days) * DAY;
    let done = Redacted {
        messages: redact(db, Source::Messages, cutoff, now).await?,
        inbound: redact(db, Source::Inbound, cutoff, now).await?,
    };
    if done != Redacted::default() {
        let mut tx = db.begin().await?;
        audit::record(
            &mut tx,
            &Actor::system(),
            "retention.redacted",
            "message bodies",
            None,
            Some(serde_json::json!({
                "messages": done.messages,
                "inbound_messages": done.inbound,
                "retention_days": retention_days,
                "written_before": cutoff,
            })),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            messages = done.messages,
            inbound = done.inbound,
            retention_days,
            "bodies past their retention removed"
        );
    }
    Ok(Some(done))
}

#[derive(Debug, Clone, Copy)]
enum Source {
    Messages,
    Inbound,
}

impl Source {
    fn table(self) -> &'static str {
        match self {
            Source::Messages => "messages",
            Source::Inbound => "inbound_messages",
        }
    }

    /// The condition a row must still meet when its body goes (a message sent again since
    /// it was read keeps its body).
    fn finished(self) -> &'static str {
        match self {
            Source::Messages => " AND state = 'done'",
            Source::Inbound => "",
        }
    }

    /// A row's time, and whether it is finished (a message still to be sent keeps its body,
    /// and the cursor waits for it).
    fn rows_sql(self) -> &'static str {
        match self {
            Source::Messages => {
                "SELECT id, created_at, state = 'done' FROM messages WHERE id > $1 ORDER BY id LIMIT $2"
            }
            Source::Inbound => {
                "SELECT id, received_at, TRUE FROM inbound_messages WHERE id > $1 ORDER BY id LIMIT $2"
            }
        }
    }
}

/// Removes the bodies of `source` written before `cutoff`, from its cursor on, batch by batch.
/// Rows are read in id order and the cursor stops at the first row too young (or unfinished):
/// ids follow the time of writing, so what lies beyond is younger still.
async fn redact(db: &Db, source: Source, cutoff: i64, now: i64) -> Result<u64, DbError> {
    let table = source.table();
    let mut removed = 0;
    loop {
        let through: i64 = on_db!(db, |pool| sqlx::query_scalar(
            "SELECT through FROM redaction_cursors WHERE source = $1"
        )
        .bind(table)
        .fetch_one(pool)
        .await?);
        let rows: Vec<(i64, i64, bool)> = on_db!(db, |pool| sqlx::query_as(source.rows_sql())
            .bind(through)
            .bind(BATCH)
            .fetch_all(pool)
            .await?);
        let ripe = rows
            .iter()
            .take_while(|(_, at, finished)| *at < cutoff && *finished)
            .count();
        let Some(&(last, _, _)) = rows[..ripe].last() else {
            return Ok(removed);
        };
        let mut tx = db.begin().await?;
        // Another run that overlaps this one (a run longer than the period) moved the cursor:
        // it does this batch; this run stops. (On PostgreSQL the row lock taken here also
        // makes an overlapping run wait for this one.)
        let moved = on_tx!(&mut tx, |conn| sqlx::query(
            "UPDATE redaction_cursors SET through = $1 WHERE source = $2 AND through = $3"
        )
        .bind(last)
        .bind(table)
        .bind(through)
        .execute(conn)
        .await?
        .rows_affected());
        if moved == 0 {
            return Ok(removed);
        }
        let sql = format!(
            "UPDATE {table} SET body = '', redacted_at = $1
             WHERE id > $2 AND id <= $3 AND redacted_at IS NULL{}",
            source.finished()
        );
        let done = on_tx!(&mut tx, |conn| sqlx::query(&sql)
            .bind(now)
            .bind(through)
            .bind(last)
            .execute(conn)
            .await?
            .rows_affected());
        // A message sent again since it was read (back in the outbox) kept its body: the
        // cursor stops just before it, so a later run removes its body once it has gone out.
        let kept: Option<i64> = on_tx!(&mut tx, |conn| sqlx::query_scalar(&format!(
            "SELECT MIN(id) FROM {table} WHERE id > $1 AND id <= $2 AND redacted_at IS NULL"
        ))
        .bind(through)
        .bind(last)
        .fetch_one(conn)
        .await?);
        if let Some(kept) = kept {
            on_tx!(&mut tx, |conn| sqlx::query(
                "UPDATE redaction_cursors SET through = $1 WHERE source = $2"
            )
            .bind(kept - 1)
            .bind(table)
            .execute(conn)
            .await?
            .rows_affected());
            tx.commit().await?;
            return Ok(removed + done);
        }
        removed += done;
        tx.commit().await?;
        if ripe < rows.len() || rows.len() < BATCH as usize {
            return Ok(removed);
        }
    }
}
