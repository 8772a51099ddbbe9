//! The outbox's intake: a submission is checked (number, country, consent, template, body,
//! sender, validity), then written with its first event in one transaction, before the caller
//! hears "accepted". Nothing is sent here: the worker takes it from the outbox.

use std::collections::BTreeMap;

use domain::phone::PhoneNumber;
use domain::segments::{MAX_BODY_CHARS, SegmentedMessage};
use domain::status::MessageStatus;
use domain::template::{Category, DEFAULT_TWO_FACTOR_TTL_SECONDS, MAX_TTL_SECONDS, Priority};
use serde::{Deserialize, Serialize};

use crate::crypto::DataKey;
use crate::db::{Db, DbError, Tx};
use crate::settings::{SendingSettings, is_alphanumeric_id, random_sid};
use crate::worker::PARAMS;
use crate::{consent, on_db, on_tx, templates};

/// Longest `ValidityPeriod` Twilio takes (and its default), in seconds.
pub const MAX_VALIDITY_SECONDS: u32 = MAX_TTL_SECONDS;

/// What a caller asks to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    pub to: String,
    pub content: Content,
    pub category: Option<Category>,
    /// A number (E.164) among the configured senders, or the alphanumeric id.
    pub sender: Option<String>,
    pub validity_seconds: Option<u32>,
}

/// A body as given, or a template and its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    Body(String),
    Template {
        key: String,
        variables: BTreeMap<String, String>,
    },
}

/// Why a submission was refused. `code` is stable for programs, `field` names the input,
/// `twilio_code` is the Twilio error code with the same meaning where Twilio has one (the
/// Twilio-compatible endpoint answers with it), `message` says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: RefusalCode,
    pub field: String,
    pub message: String,
    pub twilio_code: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    MissingTo,
    InvalidNumber,
    CountryNotAllowed,
    OptedOut,
    UnknownTemplate,
    UnknownVariable,
    TemplateValues,
    EmptyBody,
    BodyTooLong,
    InvalidSender,
    CategoryMismatch,
    InvalidValidity,
}

impl RefusalCode {
    /// The stable name programs match on (`invalid_number`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::MissingTo => "missing_to",
            RefusalCode::InvalidNumber => "invalid_number",
            RefusalCode::CountryNotAllowed => "country_not_allowed",
            RefusalCode::OptedOut => "opted_out",
            RefusalCode::UnknownTemplate => "unknown_template",
            RefusalCode::UnknownVariable => "unknown_variable",
            RefusalCode::TemplateValues => "template_values",
            RefusalCode::EmptyBody => "empty_body",
            RefusalCode::BodyTooLong => "body_too_long",
            RefusalCode::InvalidSender => "invalid_sender",
            RefusalCode::CategoryMismatch => "category_mismatch",
            RefusalCode::InvalidValidity => "invalid_validity",
        }
    }
}

fn refuse(code: RefusalCode, field: &str, twilio_code: Option<u32>, message: String) -> Refusal {
    Refusal {
        code,
        field: field.to_owned(),
        message,
        twilio_code,
    }
}

/// A submission that passed every check, ready for the outbox.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub e164: String,
    pub region: String,
    pub masked: String,
    pub body: String,
    pub template_key: Option<String>,
    pub category: Option<Category>,
    pub priority: Priority,
    pub encoding: &'static str,
    pub segments: u32,
    pub smart_encoded: bool,
    pub validity_seconds: Option<u32>,
    pub sender: Option<String>,
}

/// The priority column: lower goes first.
pub fn priority_rank(priority: Priority) -> i64 {
    match priority {
        Priority::Emergency => 0,
        Priority::TwoFactor => 1,
        Priority::Normal => 2,
    }
}

/// Checks a submission against the current settings and consent.
pub async fn prepare(
    db: &Db,
    key: &DataKey,
    settings: &SendingSettings,
    submission: Submission,
) -> Result<Result<Prepared, Refusal>, DbError> {
    use RefusalCode as C;
    let to = submission.to.trim();
    if to.is_empty() {
        return Ok(Err(refuse(
            C::MissingTo,
            "to",
            Some(21604),
            "a recipient is required: give `to` as +14155552671".into(),
        )));
    }
    let number = match PhoneNumber::parse(to, Some(&settings.default_region)) {
        Ok(n) => n,
        Err(e) => {
            return Ok(Err(refuse(
                C::InvalidNumber,
                "to",
                Some(21211),
                format!("{to:?} is not a valid phone number: {e}"),
            )));
        }
    };
    if !settings
        .allowed_countries
        .iter()
        .any(|c| c == number.region())
    {
        return Ok(Err(refuse(
            C::CountryNotAllowed,
            "to",
            Some(21408),
            format!(
                "sending to {} ({}) is not allowed: the geo permissions allow {}; an admin can add the country in Settings",
                number.masked(),
                number.region(),
                settings.allowed_countries.join(", ")
            ),
        )));
    }
    if consent::is_opted_out(db, &key.lookup_hash(number.e164())).await? {
        return Ok(Err(refuse(
            C::OptedOut,
            "to",
            Some(21610),
            format!(
                "{} has opted out (replied STOP): smsdesk will not send to it until it replies START",
                number.masked()
            ),
        )));
    }
    // The validity when the submission gives none: the template's TTL; two-factor codes expire.
    let (body, template_key, category, priority, smart, default_validity) = match submission.content
    {
        Content::Body(body) => {
            let category = submission.category;
            let priority = category.map_or(Priority::Normal, Category::default_priority);
            let validity =
                (category == Some(Category::TwoFactor)).then_some(DEFAULT_TWO_FACTOR_TTL_SECONDS);
            (body, None, category, priority, false, validity)
        }
        Content::Template { key, variables } => {
            let stored = match templates::get(db, &key).await {
                Ok(Some(t)) => t,
                Ok(None) => {
                    return Ok(Err(refuse(
                        C::UnknownTemplate,
                        "template",
                        None,
                        format!(
                            "there is no template named {key:?}: the console's Templates page lists them"
                        ),
                    )));
                }
                Err(templates::TemplateStoreError::Db(e)) => return Err(e),
                Err(e) => {
                    return Ok(Err(refuse(
                        C::UnknownTemplate,
                        "template",
                        None,
                        e.to_string(),
                    )));
                }
            };
            let template = stored.template;
            let unknown: Vec<&str> = variables
                .keys()
                .map(String::as_str)
                .filter(|name| template.variable(name).is_none())
                .collect();
            if !unknown.is_empty() {
                let known: Vec<&str> = template.variables().iter().map(|v| v.name()).collect();
                return Ok(Err(refuse(
                    C::UnknownVariable,
                    "variables",
                    None,
                    format!(
                        "template {key:?} has no variable {}: it takes {}",
                        unknown.join(", "),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                )));
            }
            if let Some(given) = submission.category
                && given != template.category()
            {
                return Ok(Err(refuse(
                    C::CategoryMismatch,
                    "category",
                    None,
                    format!(
                        "template {key:?} is a {} template: leave `category` out or give {}",
                        template.category(),
                        template.category()
                    ),
                )));
            }
            let body = match template.render(&variables) {
                Ok(body) => body,
                Err(e) => {
                    return Ok(Err(refuse(
                        C::TemplateValues,
                        "variables",
                        None,
                        format!("template {key:?} cannot be rendered: {e}"),
                    )));
                }
            };
            (
                body,
                Some(key),
                Some(template.category()),
                template.priority(),
                template.smart_encoding(),
                template.validity_seconds(),
            )
        }
    };
    if body.trim().is_empty() {
        return Ok(Err(refuse(
            C::EmptyBody,
            "body",
            Some(21602),
            "the message body is empty: give `body` or a template".into(),
        )));
    }
    let analyzed = match SegmentedMessage::analyze(&body, smart) {
        Ok(a) => a,
        Err(e) => {
            return Ok(Err(refuse(
                C::BodyTooLong,
                "body",
                Some(21617),
                e.to_string(),
            )));
        }
    };
    let sender = match submission.sender.as_deref().map(str::trim) {
        None | Some("") => settings.alphanumeric_id.clone().filter(|_| {
            settings
                .alphanumeric_countries
                .iter()
                .any(|c| c == number.region())
        }),
        Some(s) if settings.extra_senders.iter().any(|e| e == s) => Some(s.to_owned()),
        Some(s) if settings.alphanumeric_id.as_deref() == Some(s) => {
            if !settings
                .alphanumeric_countries
                .iter()
                .any(|c| c == number.region())
            {
                return Ok(Err(refuse(
                    C::InvalidSender,
                    "sender",
                    Some(21212),
                    format!(
                        "the alphanumeric sender {s:?} is allowed only for {}: leave `sender` out to use the number",
                        settings.alphanumeric_countries.join(", ")
                    ),
                )));
            }
            Some(s.to_owned())
        }
        Some(s) => {
            let what = if is_alphanumeric_id(s) {
                "is not the configured alphanumeric sender id"
            } else {
                "is not one of smsdesk's sender numbers"
            };
            return Ok(Err(refuse(
                C::InvalidSender,
                "sender",
                Some(21212),
                format!(
                    "sender {s:?} {what}: leave `sender` out to use the default, or ask an admin to add it in Settings"
                ),
            )));
        }
    };
    let validity_seconds = match submission.validity_seconds {
        Some(v) if (1..=MAX_VALIDITY_SECONDS).contains(&v) => Some(v),
        Some(v) => {
            return Ok(Err(refuse(
                C::InvalidValidity,
                "validity_seconds",
                Some(21626),
                format!(
                    "validity of {v} seconds is out of range: give 1 to {MAX_VALIDITY_SECONDS}"
                ),
            )));
        }
        None => default_validity,
    };
    debug_assert!(body.chars().count() <= MAX_BODY_CHARS);
    Ok(Ok(Prepared {
        e164: number.e164().to_owned(),
        region: number.region().to_owned(),
        masked: number.masked(),
        encoding: analyzed.encoding().as_str(),
        segments: u32::try_from(analyzed.segment_count()).unwrap_or(u32::MAX),
        body,
        template_key,
        category,
        priority,
        smart_encoded: smart,
        validity_seconds,
        sender,
    }))
}

/// A message written to the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub id: i64,
    pub sid: String,
    /// When it was written (µs, UTC).
    pub created_at: i64,
}

/// Where a submission came from (kept with the message): `api_key:SK...`, `user:email`.
pub type Source<'a> = &'a str;

/// Writes prepared messages with their first event, all in the caller's transaction.
pub async fn insert(
    tx: &mut Tx,
    key: &DataKey,
    items: &[Prepared],
    source: Source<'_>,
    now: i64,
) -> Result<Vec<Accepted>, DbError> {
    let with_source: Vec<(&Prepared, &str)> = items.iter().map(|p| (p, source)).collect();
    insert_many(tx, key, &with_source, now).await
}

/// Columns bound per message row.
const MESSAGE_COLUMNS: usize = 16;

/// Writes messages from several sources in one transaction, a statement per hundred messages:
/// what intake's group commit and batches use.
pub async fn insert_many(
    tx: &mut Tx,
    key: &DataKey,
    items: &[(&Prepared, &str)],
    now: i64,
) -> Result<Vec<Accepted>, DbError> {
    let sids: Vec<String> = items.iter().map(|_| random_sid("SM")).collect();
    let mut ids: std::collections::HashMap<String, i64> =
        std::collections::HashMap::with_capacity(items.len());
    let rows_per_statement = PARAMS / MESSAGE_COLUMNS;
    for (chunk, chunk_sids) in items
        .chunks(rows_per_statement)
        .zip(sids.chunks(rows_per_statement))
    {
        let rows = (0..chunk.len())
            .map(|r| {
                let p = 1 + r * MESSAGE_COLUMNS;
                let n = |i: usize| format!("${}", p + i);
                format!(
                    "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, 'waiting', 'accepted', {}, {}, {}, {})",
                    n(0), n(1), n(2), n(3), n(4), n(5), n(6), n(7), n(8), n(9), n(10), n(11),
                    n(12), n(13), n(14), n(15), n(14), n(14)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO messages (sid, to_encrypted, to_hash, to_masked, to_region, sender, body,
                 template_key, category, priority, encoding, segments, smart_encoded, validity_until,
                 state, status, due_at, source, created_at, updated_at)
             VALUES {rows} RETURNING id, sid"
        );
        let returned = on_tx!(tx, |conn| {
            let mut q = sqlx::query_as::<_, (i64, String)>(&sql);
            for ((item, source), sid) in chunk.iter().zip(chunk_sids) {
                q = q
                    .bind(sid)
                    .bind(key.encrypt(&item.e164))
                    .bind(key.lookup_hash(&item.e164))
                    .bind(&item.masked)
                    .bind(&item.region)
                    .bind(&item.sender)
                    .bind(&item.body)
                    .bind(&item.template_key)
                    .bind(item.category.map(Category::as_str))
                    .bind(priority_rank(item.priority))
                    .bind(item.encoding)
                    .bind(i64::from(item.segments))
                    .bind(item.smart_encoded)
                    .bind(
                        item.validity_seconds
                            .map(|s| now + i64::from(s) * 1_000_000),
                    )
                    .bind(now)
                    .bind(*source);
            }
            q.fetch_all(conn).await?
        });
        ids.extend(returned.into_iter().map(|(id, sid)| (sid, id)));
    }
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
    for (chunk, chunk_accepted) in items.chunks(PARAMS / 2).zip(accepted.chunks(PARAMS / 2)) {
        let rows = (0..chunk.len())
            .map(|r| {
                let p = 2 + r * 2;
                format!("(${p}, $1, 'accepted', 'accepted', ${})", p + 1)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO message_events (message_id, at, kind, status, detail) VALUES {rows}"
        );
        on_tx!(tx, |conn| {
            let mut q = sqlx::query(&sql).bind(now);
            for ((item, source), a) in chunk.iter().zip(chunk_accepted) {
                q = q.bind(a.id).bind(format!(
                    "accepted from {source}: {} segment(s), {}",
                    item.segments, item.encoding
                ));
            }
            q.execute(conn).await?.rows_affected()
        });
    }
    Ok(accepted)
}

/// Intake's group commit: requests hand their checked messages to one writer task, which writes
/// everything waiting in one transaction (up to 1,000 messages), so concurrent requests share a
/// commit instead of queueing for one each.
#[derive(Clone, Debug)]
pub struct Writer {
    jobs: tokio::sync::mpsc::Sender<Job>,
}

#[derive(Debug)]
struct Job {
    items: Vec<Prepared>,
    source: String,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Accepted>, std::sync::Arc<DbError>>>,
}

impl Writer {
    /// Starts the writer task; it ends when every `Writer` is dropped.
    pub fn spawn(db: Db, key: DataKey) -> Writer {
        let (jobs, mut queue) = tokio::sync::mpsc::channel::<Job>(4_096);
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                let mut count = batch[0].items.len();
                while count < 1_000 {
                    match queue.try_recv() {
                        Ok(job) => {
                            count += job.items.len();
                            batch.push(job);
                        }
                        Err(_) => break,
                    }
                }
                let now = crate::db::now_micros();
                let written = async {
                    let all: Vec<(&Prepared, &str)> = batch
                        .iter()
                        .flat_map(|j| j.items.iter().map(|p| (p, j.source.as_str())))
                        .collect();
                    let mut tx = db.begin().await?;
                    let accepted = insert_many(&mut tx, &key, &all, now).await?;
                    tx.commit().await?;
                    Ok::<_, DbError>(accepted)
                }
                .await;
                match written {
                    Ok(accepted) => {
                        let mut rest = accepted.into_iter();
                        for job in batch {
                            let mine: Vec<Accepted> = rest.by_ref().take(job.items.len()).collect();
                            let _ = job.reply.send(Ok(mine));
                        }
                    }
                    Err(e) => {
                        let e = std::sync::Arc::new(e);
                        for job in batch {
                            let _ = job.reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        Writer { jobs }
    }

    /// Writes `items` (from `source`) with the next group commit; returns once it is durable.
    pub async fn write(
        &self,
        items: Vec<Prepared>,
        source: String,
    ) -> Result<Vec<Accepted>, std::sync::Arc<DbError>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || std::sync::Arc::new(DbError::Query(sqlx::Error::PoolClosed));
        self.jobs
            .send(Job {
                items,
                source,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

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
pub async fn claim_idempotency(
    tx: &mut Tx,
    api_key_id: &str,
    key: &str,
    fingerprint: &str,
    now: i64,
) -> Result<Idempotency, DbError> {
    let inserted = on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO idempotency_keys (api_key_id, key, fingerprint, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (api_key_id, key) DO NOTHING"
    )
    .bind(api_key_id)
    .bind(key)
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
    .bind(key)
    .fetch_one(conn)
    .await?);
    if stored != fingerprint {
        return Ok(Idempotency::Mismatch);
    }
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
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Stores the answer to a request whose key [`claim_idempotency`] found new.
pub async fn store_answer(
    tx: &mut Tx,
    api_key_id: &str,
    key: &str,
    status: u16,
    body: &str,
) -> Result<(), DbError> {
    on_tx!(tx, |conn| sqlx::query(
        "UPDATE idempotency_keys SET response_status = $1, response_body = $2
             WHERE api_key_id = $3 AND key = $4"
    )
    .bind(i64::from(status))
    .bind(body)
    .bind(api_key_id)
    .bind(key)
    .execute(conn)
    .await?
    .rows_affected());
    Ok(())
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
    pub body: String,
    pub template_key: Option<String>,
    pub category: Option<String>,
    pub priority: i64,
    pub encoding: String,
    pub segments: i64,
    pub status: MessageStatus,
    /// waiting | sending | done
    pub state: String,
    pub attempts: i64,
    pub provider_sid: Option<String>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub price_micros: Option<i64>,
    pub validity_until: Option<i64>,
    pub due_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub dispatched_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ViewRow {
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
    attempts: i64,
    provider_sid: Option<String>,
    error_code: Option<i64>,
    error_message: Option<String>,
    price_micros: Option<i64>,
    validity_until: Option<i64>,
    due_at: i64,
    created_at: i64,
    updated_at: i64,
    dispatched_at: Option<i64>,
}

const VIEW_COLUMNS: &str = "id, sid, to_encrypted, to_masked, sender, body, template_key, category,
    priority, encoding, segments, status, state, attempts, provider_sid, error_code, error_message,
    price_micros, validity_until, due_at, created_at, updated_at, dispatched_at";

impl ViewRow {
    fn into_view(self, key: &DataKey) -> MessageView {
        MessageView {
            to: key
                .decrypt(&self.to_encrypted)
                .unwrap_or_else(|_| self.to_masked.clone()),
            id: self.id,
            sid: self.sid,
            to_masked: self.to_masked,
            sender: self.sender,
            body: self.body,
            template_key: self.template_key,
            category: self.category,
            priority: self.priority,
            encoding: self.encoding,
            segments: self.segments,
            status: self.status.parse().unwrap_or(MessageStatus::Failed),
            state: self.state,
            attempts: self.attempts,
            provider_sid: self.provider_sid,
            error_code: self.error_code,
            error_message: self.error_message,
            price_micros: self.price_micros,
            validity_until: self.validity_until,
            due_at: self.due_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            dispatched_at: self.dispatched_at,
        }
    }
}

/// One message by its sid (`SM...`).
pub async fn find(db: &Db, key: &DataKey, sid: &str) -> Result<Option<MessageView>, DbError> {
    let sql = format!("SELECT {VIEW_COLUMNS} FROM messages WHERE sid = $1");
    let row = on_db!(db, |pool| sqlx::query_as::<_, ViewRow>(&sql)
        .bind(sid)
        .fetch_optional(pool)
        .await?);
    Ok(row.map(|r| r.into_view(key)))
}

/// Messages by sid, in the order asked (missing ones left out).
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
        out.extend(rows.into_iter().map(|r| r.into_view(key)));
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
