//! The outbox: its rows (a message, its state and where it came from), how they are written
//! (intake calls [`insert_many`]), how they are read back as [`MessageView`]s, idempotent
//! requests, and the estimate of when a batch will be sent.

use domain::status::MessageStatus;
use domain::template::{Category, Priority};
use serde::{Deserialize, Serialize};

use crate::crypto::DataKey;
use crate::db::{Db, DbError, Tx};
use crate::intake::Prepared;
use crate::settings::{SendingSettings, random_sid};
use crate::worker::PARAMS;
use crate::{on_db, on_tx};

/// Where a message is in smsdesk's own hands (its `status` is where it is in Twilio's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// In the outbox, due at `due_at`.
    Waiting,
    /// Claimed by a worker until its lease ends.
    Sending,
    /// Handed to the provider, or ended without being sent.
    Done,
}

impl MessageState {
    pub const ALL: [MessageState; 3] = [
        MessageState::Waiting,
        MessageState::Sending,
        MessageState::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Waiting => "waiting",
            MessageState::Sending => "sending",
            MessageState::Done => "done",
        }
    }
}

impl std::str::FromStr for MessageState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageState::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown message state {s:?}"))
    }
}

/// Who sent a message: the API key of a service (JSON API or Twilio-compatible endpoint), or a
/// console user. Stored as `api_key:SK…` or `user:<e-mail>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    ApiKey(String),
    User(String),
    /// smsdesk itself, for the named purpose (`budget_alert`).
    System(String),
}

impl Source {
    /// Whether free text from this sender may carry emergency priority: console users (people
    /// with the send permission, audited) may; services use emergency templates.
    pub fn may_send_emergency(&self) -> bool {
        matches!(self, Source::User(_))
    }

    /// The label metrics count by (never an id or an address).
    pub fn kind(&self) -> &'static str {
        match self {
            Source::ApiKey(_) => "api_key",
            Source::User(_) => "console",
            Source::System(_) => "system",
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::ApiKey(id) => write!(f, "api_key:{id}"),
            Source::User(email) => write!(f, "user:{email}"),
            Source::System(what) => write!(f, "system:{what}"),
        }
    }
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("api_key", id)) if !id.is_empty() => Ok(Source::ApiKey(id.to_owned())),
            Some(("user", email)) if !email.is_empty() => Ok(Source::User(email.to_owned())),
            Some(("system", what)) if !what.is_empty() => Ok(Source::System(what.to_owned())),
            _ => Err(format!("unknown message source {s:?}")),
        }
    }
}

/// The priority column: lower goes first.
pub fn priority_rank(priority: Priority) -> i64 {
    match priority {
        Priority::Emergency => 0,
        Priority::TwoFactor => 1,
        Priority::Normal => 2,
    }
}

/// The priority a stored rank stands for.
pub fn priority_of_rank(rank: i64) -> Option<Priority> {
    Priority::ALL
        .into_iter()
        .find(|&p| priority_rank(p) == rank)
}

/// A message written to the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub id: i64,
    pub sid: String,
    /// When it was written (µs, UTC).
    pub created_at: i64,
}

/// One message row as intake writes it (the JSON each insert statement reads its rows from).
#[derive(Serialize)]
struct NewRow<'a> {
    sid: &'a str,
    to_encrypted: String,
    to_hash: &'a str,
    to_masked: &'a str,
    to_region: &'a str,
    sender: Option<&'a str>,
    body: &'a str,
    template_key: Option<&'a str>,
    category: Option<&'static str>,
    priority: i64,
    encoding: &'static str,
    segments: i64,
    smart_encoded: bool,
    validity_until: Option<i64>,
    source: String,
    estimated_micros: Option<i64>,
}

/// A message's first event.
#[derive(Serialize)]
struct NewEventRow {
    message_id: i64,
    detail: String,
}

/// The columns of a row set read from JSON, for PostgreSQL's `jsonb_to_recordset`.
const ROW_TYPES: &str = "sid text, to_encrypted text, to_hash text, to_masked text, to_region text,
    sender text, body text, template_key text, category text, priority bigint, encoding text,
    segments bigint, smart_encoded boolean, validity_until bigint, source text,
    estimated_micros bigint";

/// Writes messages (from one or several sources) with their first events in the caller's
/// transaction: two statements whatever their number, the rows travelling as one JSON
/// parameter (SQLite's `json_each`, PostgreSQL's `jsonb_to_recordset`).
pub async fn insert_many(
    tx: &mut Tx,
    key: &DataKey,
    items: &[(&Prepared, &Source)],
    now: i64,
) -> Result<Vec<Accepted>, DbError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let sids: Vec<String> = items.iter().map(|_| random_sid("SM")).collect();
    let rows: Vec<NewRow> = items
        .iter()
        .zip(&sids)
        .map(|((p, source), sid)| NewRow {
            sid,
            to_encrypted: key.encrypt(&p.e164),
            to_hash: &p.to_hash,
            to_masked: &p.masked,
            to_region: &p.region,
            sender: p.sender.as_deref(),
            body: &p.body,
            template_key: p.template_key.as_deref(),
            category: p.category.map(Category::as_str),
            priority: priority_rank(p.priority),
            encoding: p.encoding,
            segments: i64::from(p.segments),
            smart_encoded: p.smart_encoded,
            validity_until: p.validity_seconds.map(|s| now + i64::from(s) * 1_000_000),
            source: source.to_string(),
            estimated_micros: p.estimated_micros,
        })
        .collect();
    let rows = serde_json::to_string(&rows).expect("rows serialize");
    const COLUMNS: &str = "sid, to_encrypted, to_hash, to_masked, to_region, sender, body,
        template_key, category, priority, encoding, segments, smart_encoded, validity_until,
        state, status, due_at, source, created_at, updated_at, estimated_micros";
    let returned: Vec<(i64, String)> = match tx {
        Tx::Sqlite(t, _) => {
            sqlx::query_as(&format!(
                "INSERT INTO messages ({COLUMNS})
                 SELECT r.value ->> 'sid', r.value ->> 'to_encrypted', r.value ->> 'to_hash',
                        r.value ->> 'to_masked', r.value ->> 'to_region', r.value ->> 'sender',
                        r.value ->> 'body', r.value ->> 'template_key', r.value ->> 'category',
                        r.value ->> 'priority', r.value ->> 'encoding', r.value ->> 'segments',
                        r.value ->> 'smart_encoded', r.value ->> 'validity_until',
                        'waiting', 'accepted', $2, r.value ->> 'source', $2, $2,
                        r.value ->> 'estimated_micros'
                   FROM json_each($1) r ORDER BY r.key
                 RETURNING id, sid"
            ))
            .bind(&rows)
            .bind(now)
            .fetch_all(&mut **t)
            .await?
        }
        Tx::Postgres(t) => {
            sqlx::query_as(&format!(
                "INSERT INTO messages ({COLUMNS})
                 SELECT sid, to_encrypted, to_hash, to_masked, to_region, sender, body,
                        template_key, category, priority, encoding, segments, smart_encoded,
                        validity_until, 'waiting', 'accepted', $2, source, $2, $2,
                        estimated_micros
                   FROM jsonb_to_recordset($1::text::jsonb) AS r({ROW_TYPES})
                 RETURNING id, sid"
            ))
            .bind(&rows)
            .bind(now)
            .fetch_all(&mut **t)
            .await?
        }
    };
    let ids: std::collections::HashMap<String, i64> =
        returned.into_iter().map(|(id, sid)| (sid, id)).collect();
    let mut accepted = Vec::with_capacity(sids.len());
    for sid in sids {
        let id = ids
            .get(&sid)
            .copied()
            .ok_or(DbError::Query(sqlx::Error::RowNotFound))?;
        accepted.push(Accepted {
            id,
            sid,
            created_at: now,
        });
    }
    let events: Vec<NewEventRow> = items
        .iter()
        .zip(&accepted)
        .map(|((p, source), a)| NewEventRow {
            message_id: a.id,
            detail: format!(
                "accepted from {source}: {} segment(s), {}",
                p.segments, p.encoding
            ),
        })
        .collect();
    let events = serde_json::to_string(&events).expect("events serialize");
    match tx {
        Tx::Sqlite(t, _) => {
            sqlx::query(
                "INSERT INTO message_events (message_id, at, kind, status, detail)
                 SELECT r.value ->> 'message_id', $2, 'accepted', 'accepted', r.value ->> 'detail'
                   FROM json_each($1) r",
            )
            .bind(&events)
            .bind(now)
            .execute(&mut **t)
            .await?;
        }
        Tx::Postgres(t) => {
            sqlx::query(
                "INSERT INTO message_events (message_id, at, kind, status, detail)
                 SELECT message_id, $2, 'accepted', 'accepted', detail
                   FROM jsonb_to_recordset($1::text::jsonb) AS r(message_id bigint, detail text)",
            )
            .bind(&events)
            .bind(now)
            .execute(&mut **t)
            .await?;
        }
    }
    Ok(accepted)
}

/// How long an `Idempotency-Key` and its stored answer are kept (Stripe's and Twilio's 24 hours):
/// a retry after that is a new request.
pub const IDEMPOTENCY_KEPT_MICROS: i64 = 24 * 3_600 * 1_000_000;

/// What an `Idempotency-Key` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotency {
    /// First use: go on, and store the answer with [`store_answer`] in the same transaction.
    New,
    /// The same request was answered before: send this again.
    Replay { status: u16, body: String },
    /// The key was used for another request.
    Mismatch,
}

/// Claims an idempotency key inside the caller's transaction. A concurrent request with the same
/// key waits (PostgreSQL) or is serialized (SQLite) until this transaction ends, then replays.
/// A key older than [`IDEMPOTENCY_KEPT_MICROS`] is forgotten first.
pub async fn claim_idempotency(
    tx: &mut Tx,
    key: &DataKey,
    api_key_id: &str,
    idempotency_key: &str,
    fingerprint: &str,
    now: i64,
) -> Result<Idempotency, DbError> {
    on_tx!(tx, |conn| sqlx::query(
        "DELETE FROM idempotency_keys WHERE api_key_id = $1 AND key = $2 AND created_at < $3"
    )
    .bind(api_key_id)
    .bind(idempotency_key)
    .bind(now - IDEMPOTENCY_KEPT_MICROS)
    .execute(conn)
    .await?
    .rows_affected());
    let inserted = on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO idempotency_keys (api_key_id, key, fingerprint, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (api_key_id, key) DO NOTHING"
    )
    .bind(api_key_id)
    .bind(idempotency_key)
    .bind(fingerprint)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected());
    if inserted == 1 {
        return Ok(Idempotency::New);
    }
    let (stored, status, body) = on_tx!(tx, |conn| sqlx::query_as::<
        _,
        (String, Option<i64>, Option<String>),
    >(
        "SELECT fingerprint, response_status, response_body FROM idempotency_keys
             WHERE api_key_id = $1 AND key = $2"
    )
    .bind(api_key_id)
    .bind(idempotency_key)
    .fetch_one(conn)
    .await?);
    if stored != fingerprint {
        return Ok(Idempotency::Mismatch);
    }
    // The answer holds the recipients' numbers: it is stored encrypted.
    let body = body
        .map(|b| key.decrypt(&b))
        .transpose()
        .map_err(|_| DbError::Undecryptable {
            what: "a stored idempotent answer",
        })?;
    Ok(Idempotency::Replay {
        status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(500),
        body: body.unwrap_or_default(),
    })
}

/// A request's fingerprint for idempotency: SHA-256 over its parts (path, body).
pub fn fingerprint(parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// Stores the answer to a request whose key [`claim_idempotency`] found new, encrypted (it
/// names the recipients).
pub async fn store_answer(
    tx: &mut Tx,
    key: &DataKey,
    api_key_id: &str,
    idempotency_key: &str,
    status: u16,
    body: &str,
) -> Result<(), DbError> {
    on_tx!(tx, |conn| sqlx::query(
        "UPDATE idempotency_keys SET response_status = $1, response_body = $2
             WHERE api_key_id = $3 AND key = $4"
    )
    .bind(i64::from(status))
    .bind(key.encrypt(body))
    .bind(api_key_id)
    .bind(idempotency_key)
    .execute(conn)
    .await?
    .rows_affected());
    Ok(())
}

/// Forgets idempotency keys older than [`IDEMPOTENCY_KEPT_MICROS`] (a periodic task).
pub async fn purge_idempotency(db: &Db, now: i64) -> Result<u64, DbError> {
    let _turn = db.write_turn().await;
    Ok(on_db!(db, |pool| sqlx::query(
        "DELETE FROM idempotency_keys WHERE created_at < $1"
    )
    .bind(now - IDEMPOTENCY_KEPT_MICROS)
    .execute(pool)
    .await?
    .rows_affected()))
}

/// A message as the API and the console show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: i64,
    pub sid: String,
    /// E.164, decrypted (for the API caller who sent it).
    pub to: String,
    pub to_masked: String,
    pub sender: Option<String>,
    /// The text; `None` for two-factor messages, whose codes no read returns.
    pub body: Option<String>,
    pub template_key: Option<String>,
    pub category: Option<Category>,
    pub priority: Priority,
    pub encoding: String,
    pub segments: i64,
    pub status: MessageStatus,
    pub state: MessageState,
    pub source: Source,
    pub attempts: i64,
    pub provider_sid: Option<String>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub price_micros: Option<i64>,
    /// What intake estimated it to cost (segments × the price table's price), µ$.
    pub estimated_micros: Option<i64>,
    pub validity_until: Option<i64>,
    pub due_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub dispatched_at: Option<i64>,
    /// When the body was removed (retention, or a two-factor code that has left); the body is
    /// then empty.
    pub redacted_at: Option<i64>,
}

/// The body a read may show: two-factor messages carry codes, which are never shown again.
fn visible_body(category: Option<Category>, body: String) -> Option<String> {
    (category != Some(Category::TwoFactor)).then_some(body)
}

impl MessageView {
    /// A message intake has just written, as stored (without reading it back).
    pub fn written(p: Prepared, a: Accepted, source: Source, now: i64) -> MessageView {
        MessageView {
            id: a.id,
            sid: a.sid,
            to: p.e164,
            to_masked: p.masked,
            sender: p.sender,
            body: visible_body(p.category, p.body),
            template_key: p.template_key,
            category: p.category,
            priority: p.priority,
            encoding: p.encoding.to_owned(),
            segments: i64::from(p.segments),
            status: MessageStatus::Accepted,
            state: MessageState::Waiting,
            source,
            attempts: 0,
            provider_sid: None,
            error_code: None,
            error_message: None,
            price_micros: None,
            estimated_micros: p.estimated_micros,
            validity_until: p.validity_seconds.map(|s| now + i64::from(s) * 1_000_000),
            due_at: a.created_at,
            created_at: a.created_at,
            updated_at: a.created_at,
            dispatched_at: None,
            redacted_at: None,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ViewRow {
    id: i64,
    sid: String,
    to_encrypted: String,
    to_masked: String,
    sender: Option<String>,
    body: String,
    template_key: Option<String>,
    category: Option<String>,
    priority: i64,
    encoding: String,
    segments: i64,
    status: String,
    state: String,
    source: String,
    attempts: i64,
    provider_sid: Option<String>,
    error_code: Option<i64>,
    error_message: Option<String>,
    price_micros: Option<i64>,
    estimated_micros: Option<i64>,
    validity_until: Option<i64>,
    due_at: i64,
    created_at: i64,
    updated_at: i64,
    dispatched_at: Option<i64>,
    redacted_at: Option<i64>,
}

pub(crate) const VIEW_COLUMNS: &str =
    "id, sid, to_encrypted, to_masked, sender, body, template_key, category,
    priority, encoding, segments, status, state, source, attempts, provider_sid, error_code,
    error_message, price_micros, estimated_micros, validity_until, due_at, created_at, updated_at,
    dispatched_at, redacted_at";

impl ViewRow {
    /// The view of a stored row. A value this code cannot read (a newer version's state, a
    /// damaged row) is an error naming the row, never mapped to another value.
    pub(crate) fn into_view(self, key: &DataKey) -> Result<MessageView, DbError> {
        let id = self.id;
        let unreadable = |column: &'static str, value: String| {
            tracing::error!(message_id = id, column, value = %value, "unreadable message row");
            DbError::Unreadable {
                table: "messages",
                id,
                column,
                value,
            }
        };
        let category = self
            .category
            .map(|c| c.parse::<Category>().map_err(|_| unreadable("category", c)))
            .transpose()?;
        let priority = priority_of_rank(self.priority)
            .ok_or_else(|| unreadable("priority", self.priority.to_string()))?;
        let status = self
            .status
            .parse::<MessageStatus>()
            .map_err(|_| unreadable("status", self.status.clone()))?;
        let state = self
            .state
            .parse::<MessageState>()
            .map_err(|_| unreadable("state", self.state.clone()))?;
        let source = self
            .source
            .parse::<Source>()
            .map_err(|_| unreadable("source", self.source.clone()))?;
        let to = key.decrypt(&self.to_encrypted).map_err(|_| {
            unreadable(
                "to_encrypted",
                "(cannot be decrypted with this data key)".into(),
            )
        })?;
        Ok(MessageView {
            to,
            id,
            sid: self.sid,
            to_masked: self.to_masked,
            sender: self.sender,
            body: visible_body(category, self.body),
            template_key: self.template_key,
            category,
            priority,
            encoding: self.encoding,
            segments: self.segments,
            status,
            state,
            source,
            attempts: self.attempts,
            provider_sid: self.provider_sid,
            error_code: self.error_code,
            error_message: self.error_message,
            price_micros: self.price_micros,
            estimated_micros: self.estimated_micros,
            validity_until: self.validity_until,
            due_at: self.due_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            dispatched_at: self.dispatched_at,
            redacted_at: self.redacted_at,
        })
    }
}

/// One message by its sid (`SM...`).
pub async fn find(db: &Db, key: &DataKey, sid: &str) -> Result<Option<MessageView>, DbError> {
    let sql = format!("SELECT {VIEW_COLUMNS} FROM messages WHERE sid = $1");
    let row = on_db!(db, |pool| sqlx::query_as::<_, ViewRow>(&sql)
        .bind(sid)
        .fetch_optional(pool)
        .await?);
    row.map(|r| r.into_view(key)).transpose()
}

/// Messages by id, in id order (missing ones left out).
pub async fn find_many(db: &Db, key: &DataKey, ids: &[i64]) -> Result<Vec<MessageView>, DbError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(PARAMS) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {VIEW_COLUMNS} FROM messages WHERE id IN ({}) ORDER BY id",
            placeholders.join(", ")
        );
        let rows = on_db!(db, |pool| {
            let mut q = sqlx::query_as::<_, ViewRow>(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            q.fetch_all(pool).await?
        });
        for row in rows {
            out.push(row.into_view(key)?);
        }
    }
    Ok(out)
}

/// One event of a message's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Event {
    pub at: i64,
    pub kind: String,
    pub status: Option<String>,
    pub error_code: Option<i64>,
    pub detail: String,
    pub provider_sid: Option<String>,
}

/// Which provider carried the message the provider knows as `sid`: `None` when smsdesk knows no
/// such message, else its `attempt_provider` (`primary`, `fallback`, or `None`: not recorded).
pub async fn carrier_of(db: &Db, sid: &str) -> Result<Option<Option<String>>, DbError> {
    Ok(on_db!(db, |pool| sqlx::query_scalar::<_, Option<String>>(
        "SELECT m.attempt_provider FROM provider_sids p JOIN messages m ON m.id = p.message_id
          WHERE p.sid = $1"
    )
    .bind(sid)
    .fetch_optional(pool)
    .await?))
}

/// A message's events, oldest first.
pub async fn events(db: &Db, message_id: i64) -> Result<Vec<Event>, DbError> {
    Ok(on_db!(db, |pool| sqlx::query_as::<_, Event>(
        "SELECT at, kind, status, error_code, detail, provider_sid FROM message_events
             WHERE message_id = $1 ORDER BY id"
    )
    .bind(message_id)
    .fetch_all(pool)
    .await?))
}

/// The outbox's waiting messages: how many per priority, and when the oldest was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Queue {
    pub waiting: Vec<(Priority, i64)>,
    /// When the oldest waiting message was written (µs), if any waits.
    pub oldest_created_at: Option<i64>,
    /// Waiting messages whose last attempt's outcome is unknown (Twilio is asked first).
    pub in_doubt: i64,
}

/// Reads the queue (for `/metrics`): one query.
pub async fn queue(db: &Db) -> Result<Queue, DbError> {
    let rows = on_db!(db, |pool| sqlx::query_as::<_, (i64, i64, i64, i64)>(
        "SELECT priority, COUNT(*), MIN(created_at), SUM(CASE WHEN in_doubt THEN 1 ELSE 0 END)
             FROM messages WHERE state = 'waiting' GROUP BY priority"
    )
    .fetch_all(pool)
    .await?);
    let mut queue = Queue {
        waiting: Priority::ALL.into_iter().map(|p| (p, 0)).collect(),
        oldest_created_at: None,
        in_doubt: 0,
    };
    for (rank, count, oldest, in_doubt) in rows {
        queue.in_doubt += in_doubt;
        let Some(priority) = priority_of_rank(rank) else {
            tracing::error!(priority = rank, "waiting messages with an unknown priority");
            continue;
        };
        if let Some(slot) = queue.waiting.iter_mut().find(|(p, _)| *p == priority) {
            slot.1 = count;
        }
        queue.oldest_created_at = Some(queue.oldest_created_at.map_or(oldest, |o| o.min(oldest)));
    }
    Ok(queue)
}

/// How many messages are waiting or being sent, by priority rank (for progress and the send page).
pub async fn backlog(db: &Db) -> Result<i64, DbError> {
    Ok(on_db!(db, |pool| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM messages WHERE state <> 'done'"
    )
    .fetch_one(pool)
    .await?))
}

/// Where a set of messages stands (the send page's progress).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub total: i64,
    /// In smsdesk's outbox, not yet handed to Twilio (or waiting for a retry).
    pub waiting: i64,
    /// Handed to Twilio, no final status yet.
    pub in_flight: i64,
    pub delivered: i64,
    pub failed: i64,
}

/// Counts `sids` by where they stand.
pub async fn progress(db: &Db, sids: &[String]) -> Result<Progress, DbError> {
    let mut p = Progress::default();
    for chunk in sids.chunks(PARAMS) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT state, status, COUNT(*) FROM messages WHERE sid IN ({}) GROUP BY state, status",
            placeholders.join(", ")
        );
        let rows = on_db!(db, |pool| {
            let mut q = sqlx::query_as::<_, (String, String, i64)>(&sql);
            for sid in chunk {
                q = q.bind(sid);
            }
            q.fetch_all(pool).await?
        });
        for (state, status, n) in rows {
            p.total += n;
            match (state.as_str(), status.as_str()) {
                (_, "delivered" | "read") => p.delivered += n,
                (_, "failed" | "undelivered" | "canceled") => p.failed += n,
                ("done", _) => p.in_flight += n,
                _ => p.waiting += n,
            }
        }
    }
    Ok(p)
}

/// About how long (µs from now) until the last of `segments` (one entry per message, in order,
/// after `backlog` one-segment messages already waiting) is handed to Twilio at the current
/// global limits and the sender's pace. Recipients' own limits are not counted.
pub fn estimate_last_send(
    settings: &SendingSettings,
    sender: &str,
    backlog: u64,
    segments: &[u32],
) -> i64 {
    use std::collections::VecDeque;
    const SECOND: i64 = 1_000_000;
    let l = &settings.limits;
    let mut rules: Vec<(usize, i64, VecDeque<i64>)> = [
        (l.per_second, SECOND),
        (l.per_minute, 60 * SECOND),
        (l.per_hour, 3_600 * SECOND),
    ]
    .into_iter()
    .map(|(limit, window)| (limit.max(1) as usize, window, VecDeque::new()))
    .collect();
    let pace = i64::from(settings.pace.for_sender(sender).max(1));
    let mut pace_free = 0i64;
    let mut t = 0i64;
    let all = std::iter::repeat_n(1u32, usize::try_from(backlog).unwrap_or(usize::MAX))
        .chain(segments.iter().copied());
    for s in all {
        t = t.max(pace_free);
        for (limit, window, sent) in &mut rules {
            while sent.front().is_some_and(|&f| f <= t - *window) {
                sent.pop_front();
            }
            if sent.len() >= *limit {
                t = t.max(sent[sent.len() - *limit] + *window);
            }
        }
        for (_, window, sent) in &mut rules {
            while sent.front().is_some_and(|&f| f <= t - *window) {
                sent.pop_front();
            }
            sent.push_back(t);
        }
        pace_free = t + (i64::from(s.max(1)) * SECOND + pace - 1) / pace;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_lowercase_hex_of_sha256_over_length_prefixed_parts() {
        // Stored with idempotency keys: the text must not change between versions.
        assert_eq!(
            fingerprint(&[b"/api/v1/messages", br#"{"to":"+14155552671"}"#]),
            "7ee2ff3709e9ff3c3af883dca957e1175f18e06e1a48c4e6da4cb5b43cf43307"
        );
    }

    #[test]
    fn the_estimate_follows_the_tightest_limit() {
        let mut s = SendingSettings::default();
        s.pace.long_code = 1_000_000;
        // 10/s, 100/min, 1000/h: the 101st message waits for the minute (and 1 µs per segment).
        let one = vec![1u32; 101];
        assert_eq!(estimate_last_send(&s, "+14155550100", 0, &one[..10]), 9);
        assert_eq!(
            estimate_last_send(&s, "+14155550100", 0, &one[..11]),
            1_000_000
        );
        assert_eq!(estimate_last_send(&s, "+14155550100", 0, &one), 60_000_000);
        // A long code at 1 segment a second: 3 two-segment messages take 4 s to start the last.
        s.pace.long_code = 1;
        assert_eq!(
            estimate_last_send(&s, "+14155550100", 0, &[2, 2, 2]),
            4_000_000
        );
        assert_eq!(estimate_last_send(&s, "+14155550100", 2, &[1]), 2_000_000);
    }
}
