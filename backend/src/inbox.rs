//! The inbox: replies that are not keywords (a driver answering "Running 20 min late"), for
//! dispatchers, newest first. Each is threaded with the last message smsdesk sent to that number
//! before the reply came in, found through the recipient's keyed hash, and is read or unread.
//! Keywords (STOP, START, HELP) are answered by the webhook and belong to the consent ledger.

use crate::crypto::DataKey;
use crate::db::{Db, DbError};
use crate::on_db;
use crate::outbox::{self, MessageView};

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub id: i64,
    pub sid: String,
    /// E.164 (or the sender as Twilio gave it), decrypted.
    pub from: String,
    pub from_masked: String,
    /// The number it was sent to (one of smsdesk's senders).
    pub to: String,
    /// Empty once removed after the retention period (`redacted_at`).
    pub body: String,
    pub received_at: i64,
    pub read_at: Option<i64>,
    pub redacted_at: Option<i64>,
    /// The last message smsdesk sent to that number before the reply came in.
    pub in_reply_to: Option<MessageView>,
}

/// Which replies to show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    pub unread_only: bool,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    sid: String,
    from_encrypted: String,
    from_masked: String,
    to_number: String,
    body: String,
    received_at: i64,
    read_at: Option<i64>,
    redacted_at: Option<i64>,
    thread_id: Option<i64>,
}

/// At most `limit` replies older than the reply `before` (an id; `None`: the newest), newest
/// first, each with its thread. Two queries whatever the page's size.
pub async fn list(
    db: &Db,
    key: &DataKey,
    filter: Filter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Reply>, DbError> {
    let unread = if filter.unread_only {
        " AND i.read_at IS NULL"
    } else {
        ""
    };
    // The thread: the newest message to the same number written no later than the reply.
    let sql = format!(
        "SELECT i.id, i.sid, i.from_encrypted, i.from_masked, i.to_number, i.body, i.received_at,
             i.read_at, i.redacted_at,
             (SELECT m.id FROM messages m
                 WHERE m.to_hash = i.from_hash AND m.created_at <= i.received_at
                 ORDER BY m.id DESC LIMIT 1) AS thread_id
         FROM inbound_messages i
         WHERE i.keyword = 'other' AND i.id < $1{unread}
         ORDER BY i.id DESC LIMIT $2"
    );
    let rows: Vec<Row> = on_db!(db, |pool| sqlx::query_as::<_, Row>(&sql)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, 500))
        .fetch_all(pool)
        .await?);
    let ids: Vec<i64> = rows.iter().filter_map(|r| r.thread_id).collect();
    let threads = outbox::find_many(db, key, &ids).await?;
    rows.into_iter()
        .map(|r| {
            let from = key.decrypt(&r.from_encrypted).map_err(|_| {
                tracing::error!(
                    reply_id = r.id,
                    "an incoming message's sender does not decrypt"
                );
                DbError::Unreadable {
                    table: "inbound_messages",
                    id: r.id,
                    column: "from_encrypted",
                    value: "(does not decrypt with this SMSDESK_DATA_KEY)".to_owned(),
                }
            })?;
            Ok(Reply {
                in_reply_to: r
                    .thread_id
                    .and_then(|id| threads.iter().find(|m| m.id == id).cloned()),
                id: r.id,
                sid: r.sid,
                from,
                from_masked: r.from_masked,
                to: r.to_number,
                body: r.body,
                received_at: r.received_at,
                read_at: r.read_at,
                redacted_at: r.redacted_at,
            })
        })
        .collect()
}

/// How many replies nobody has read yet.
pub async fn unread(db: &Db) -> Result<i64, DbError> {
    Ok(on_db!(db, |pool| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM inbound_messages WHERE keyword = 'other' AND read_at IS NULL"
    )
    .fetch_one(pool)
    .await?))
}

/// Marks a reply read (at `now`; one read already keeps its first time) or unread again.
/// False when there is no such reply.
pub async fn mark(db: &Db, id: i64, read: bool, now: i64) -> Result<bool, DbError> {
    let _turn = db.write_turn().await;
    let changed = on_db!(db, |pool| sqlx::query(
        "UPDATE inbound_messages
         SET read_at = CASE WHEN CAST($1 AS BIGINT) IS NULL THEN NULL
             ELSE COALESCE(read_at, CAST($1 AS BIGINT)) END
         WHERE id = $2 AND keyword = 'other'"
    )
    .bind(read.then_some(now))
    .bind(id)
    .execute(pool)
    .await?
    .rows_affected());
    Ok(changed == 1)
}
