//! Step 1, the claim, in named steps inside one transaction: [`lock_and_count`] (take turns with
//! every other claimer, count the global windows), [`select_due`], [`read_usage`] (the recent
//! sends the limits read), `domain::admission::admit` (the rule, pure), then [`lease`] (its
//! writes) and [`tidy_and_next_due`].

use std::collections::HashMap;

use domain::admission::{self, Admission, Candidate, GlobalCount, Usage};
use domain::sending::RateLimits;
use domain::template::Priority;

use super::{
    Claimed, HOUR, NewEvent, PARAMS, SECOND, Step, Worker, WorkerError, event, numbered, tuples,
    update_ids,
};
use crate::db::{DbError, Tx};
use crate::outbox::priority_rank;
use crate::settings::SendingSettings;
use crate::{on_tx, telemetry};

const DAY: i64 = 24 * HOUR;

impl Worker {
    /// Claims up to `limit` messages that may be sent at `now`; counts what expired and what
    /// must wait in `step`.
    pub(super) async fn claim(
        &self,
        now: i64,
        limit: usize,
        settings: &SendingSettings,
        step: &mut Step,
    ) -> Result<Vec<Claimed>, WorkerError> {
        let limits = &settings.limits;
        let mut tx = self.db.begin().await?;
        let global = lock_and_count(&mut tx, limits, now).await?;
        let due = select_due(&mut tx, now, limit).await?;
        let candidates: Vec<Candidate> = due.iter().map(|c| self.candidate(c, limits)).collect();
        let usage = read_usage(&mut tx, &candidates, now).await?;
        let admitted = admission::admit(&candidates, usage, &global, limits, &settings.pace, now);
        let lease_until = now + i64::try_from(self.config.lease.as_micros()).unwrap_or(HOUR);
        lease(&mut tx, &candidates, &admitted, lease_until, now).await?;
        step.expired = admitted.expired.len();
        step.deferred = admitted.deferred.len();
        telemetry::deferred(step.deferred);
        let next = tidy_and_next_due(&mut tx, now).await?;
        tx.commit().await?;
        step.next_due = match (next, admission::global_free_at(&global, now)) {
            (Some(n), Some(g)) => Some(n.max(g)),
            (n, None) => n,
            (None, Some(_)) => None,
        };
        // In the order admitted, which is the order they are sent.
        let mut due: HashMap<i64, Claimed> = due.into_iter().map(|c| (c.id, c)).collect();
        Ok(admitted
            .claimed
            .iter()
            .filter_map(|id| due.remove(id))
            .collect())
    }

    /// A due message as the admission sees it.
    fn candidate(&self, c: &Claimed, limits: &RateLimits) -> Candidate {
        Candidate {
            id: c.id,
            priority: c.priority,
            recipient: c.to_hash.clone(),
            sender: Self::sender_key(&self.sender_of(c)).to_owned(),
            segments: u32::try_from(c.segments.max(1)).unwrap_or(u32::MAX),
            validity_until: c.validity_until,
            exempt: (c.priority == priority_rank(Priority::Emergency) && limits.emergency_exempt)
                || (c.priority == priority_rank(Priority::TwoFactor) && limits.two_factor_exempt),
        }
    }
}

/// Takes the claim's turn and counts the global windows (widened by the network margin, as the
/// send gate counts: `domain::admission`).
///
/// A write first: takes SQLite's write lock at once, and makes claims on PostgreSQL take turns
/// across instances, so limits are decided on counts nobody else is changing.
async fn lock_and_count(
    tx: &mut Tx,
    limits: &RateLimits,
    now: i64,
) -> Result<Vec<GlobalCount>, DbError> {
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO worker_lock (id, at) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET at = excluded.at"
    )
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected());
    let margin = admission::network_margin(limits);
    let mut counts = Vec::new();
    for rule in admission::global_rules(limits) {
        let window = rule.window + margin;
        let count = on_tx!(tx, |conn| sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM dispatch_log WHERE at > $1"
        )
        .bind(now - window)
        .fetch_one(conn)
        .await?);
        let mut counted = GlobalCount {
            limit: rule.limit,
            window,
            count,
            blocking: None,
        };
        if counted.room() == 0 {
            // The send whose leaving brings the count under the limit: only a full limit needs it.
            counted.blocking = on_tx!(tx, |conn| sqlx::query_scalar::<_, i64>(
                "SELECT at FROM dispatch_log WHERE at > $1 ORDER BY at LIMIT 1 OFFSET $2"
            )
            .bind(now - window)
            .bind(count - i64::from(rule.limit))
            .fetch_optional(conn)
            .await?);
        }
        counts.push(counted);
    }
    Ok(counts)
}

/// Up to `batch_size` due messages: first those whose lease ran out (in doubt), then those
/// waiting whose time has come, each in priority order.
async fn select_due(tx: &mut Tx, now: i64, batch_size: usize) -> Result<Vec<Claimed>, DbError> {
    let mut due = on_tx!(tx, |conn| sqlx::query_as::<_, Claimed>(
        "SELECT id, to_encrypted, to_hash, sender, body, segments, priority, smart_encoded,
                 validity_until, state, in_doubt, attempts, attempt_started_at, due_at,
                 attempt_provider, category
             FROM messages WHERE state = 'sending' AND lease_until < $1
             ORDER BY priority, id LIMIT $2"
    )
    .bind(now)
    .bind(batch_size as i64)
    .fetch_all(conn)
    .await?);
    let more = batch_size.saturating_sub(due.len());
    if more > 0 {
        due.extend(on_tx!(tx, |conn| sqlx::query_as::<_, Claimed>(
            "SELECT id, to_encrypted, to_hash, sender, body, segments, priority, smart_encoded,
                     validity_until, state, in_doubt, attempts, attempt_started_at, due_at,
                     attempt_provider, category
                 FROM messages WHERE state = 'waiting' AND due_at <= $1
                 ORDER BY priority, id LIMIT $2"
        )
        .bind(now)
        .bind(more as i64)
        .fetch_all(conn)
        .await?));
    }
    Ok(due)
}

/// What the limits read, in a few queries for the whole batch: the (non-exempt) recipients'
/// sends in the last day, each sender's segments in the last second.
async fn read_usage(tx: &mut Tx, candidates: &[Candidate], now: i64) -> Result<Usage, DbError> {
    let mut usage = Usage::default();
    let mut recipients: Vec<&str> = candidates
        .iter()
        .filter(|c| !c.exempt)
        .map(|c| c.recipient.as_str())
        .collect();
    recipients.sort_unstable();
    recipients.dedup();
    for chunk in recipients.chunks(PARAMS) {
        let sql = format!(
            "SELECT to_hash, at FROM dispatch_log WHERE at > $1 AND to_hash IN ({})",
            numbered(2, chunk.len())
        );
        let rows = on_tx!(tx, |conn| {
            let mut q =
                sqlx::query_as::<_, (String, i64)>(&sql).bind(now - admission::RECIPIENT_LOOKBACK);
            for h in chunk {
                q = q.bind(*h);
            }
            q.fetch_all(conn).await?
        });
        for h in chunk {
            usage.recipient_sends.entry((*h).to_owned()).or_default();
        }
        for (h, at) in rows {
            usage.recipient_sends.entry(h).or_default().push(at);
        }
    }
    let mut senders: Vec<&str> = candidates.iter().map(|c| c.sender.as_str()).collect();
    senders.sort_unstable();
    senders.dedup();
    for sender in senders {
        let log = on_tx!(tx, |conn| sqlx::query_as::<_, (i64, i64)>(
            "SELECT at, units FROM sender_log WHERE sender = $1 AND at > $2"
        )
        .bind(sender)
        .bind(now - admission::SENDER_LOOKBACK)
        .fetch_all(conn)
        .await?);
        let log = log
            .into_iter()
            .map(|(at, units)| (at, u32::try_from(units).unwrap_or(u32::MAX)))
            .collect();
        usage.sender_logs.insert(sender.to_owned(), log);
    }
    Ok(usage)
}

/// Writes what the admission decided, a statement per kind for the batch: the expired end
/// failed, the claimed are leased (their attempt counted, their dispatch and their segments
/// logged, so a limit holds even if the send then fails), the deferred are due when allowed.
async fn lease(
    tx: &mut Tx,
    candidates: &[Candidate],
    admitted: &Admission,
    lease_until: i64,
    now: i64,
) -> Result<(), DbError> {
    for &id in &admitted.expired {
        expire(tx, id, now).await?;
    }
    update_ids(
        tx,
        "UPDATE messages SET state = 'sending', lease_until = $1, attempts = attempts + 1,
             in_doubt = (in_doubt OR state = 'sending'),
             attempt_started_at = CASE WHEN in_doubt OR state = 'sending'
                 THEN attempt_started_at ELSE $2 END,
             dispatched_at = $2, updated_at = $2, attempt_provider = NULL",
        (lease_until, now),
        &admitted.claimed,
    )
    .await?;
    // The recipient's limits count only the sends they apply to: not an exempt emergency.
    let by_id: HashMap<i64, &Candidate> = candidates.iter().map(|c| (c.id, c)).collect();
    let dispatches: Vec<(i64, Option<&str>)> = admitted
        .claimed
        .iter()
        .map(|id| {
            let c = by_id[id];
            (c.id, (!c.exempt).then_some(c.recipient.as_str()))
        })
        .collect();
    for chunk in dispatches.chunks(PARAMS / 3) {
        let sql = format!(
            "INSERT INTO dispatch_log (at, to_hash, message_id) VALUES {}",
            tuples(1, chunk.len(), 3)
        );
        on_tx!(tx, |conn| {
            let mut q = sqlx::query(&sql);
            for (id, hash) in chunk {
                q = q.bind(now).bind(*hash).bind(id);
            }
            q.execute(conn).await?.rows_affected()
        });
    }
    let sender_rows: Vec<(&(String, i64), &u32)> = admitted.sender_log.iter().collect();
    for chunk in sender_rows.chunks(PARAMS / 3) {
        let sql = format!(
            "INSERT INTO sender_log (sender, at, units) VALUES {}",
            tuples(1, chunk.len(), 3)
        );
        on_tx!(tx, |conn| {
            let mut q = sqlx::query(&sql);
            for ((sender, at), units) in chunk {
                q = q.bind(sender).bind(at).bind(i64::from(**units));
            }
            q.execute(conn).await?.rows_affected()
        });
    }
    let mut by_due: HashMap<i64, Vec<i64>> = HashMap::new();
    for &(id, due) in &admitted.deferred {
        by_due.entry(due).or_default().push(id);
    }
    for (due, ids) in by_due {
        update_ids(
            tx,
            "UPDATE messages SET due_at = $1, updated_at = $2",
            (due, now),
            &ids,
        )
        .await?;
    }
    Ok(())
}

/// Keeps the logs to what the limits read (the daily limit, the pace's second), and says when
/// the next waiting message is due.
async fn tidy_and_next_due(tx: &mut Tx, now: i64) -> Result<Option<i64>, DbError> {
    on_tx!(tx, |conn| sqlx::query(
        "DELETE FROM dispatch_log WHERE at < $1"
    )
    .bind(now - 2 * DAY)
    .execute(conn)
    .await?
    .rows_affected());
    on_tx!(tx, |conn| sqlx::query(
        "DELETE FROM sender_log WHERE at < $1"
    )
    .bind(now - 2 * SECOND)
    .execute(conn)
    .await?
    .rows_affected());
    Ok(on_tx!(tx, |conn| sqlx::query_scalar::<_, Option<i64>>(
        "SELECT MIN(due_at) FROM messages WHERE state = 'waiting'"
    )
    .fetch_one(conn)
    .await?))
}

async fn expire(tx: &mut Tx, id: i64, now: i64) -> Result<(), DbError> {
    let text = "not sent: its validity period ended while it waited in smsdesk's outbox";
    let sql = format!(
        "UPDATE messages SET state = 'done', status = 'failed', error_code = 30036,
             error_message = $1, lease_until = NULL, updated_at = $2, {} WHERE id = $3",
        super::forget_two_factor("$2")
    );
    on_tx!(tx, |conn| sqlx::query(&sql)
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
