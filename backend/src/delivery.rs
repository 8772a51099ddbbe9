//! The delivery log: messages by any combination of filters, newest first, a page at a time
//! (keyset paging, so a page costs the same however deep it is and does not shift when new
//! messages arrive), the count per status for a filter, and the two things a dispatcher may do
//! to a message from it (send a failed one again, cancel a waiting one), audited. The console's
//! log, the JSON API's list and the Twilio-compatible list all read through [`list`].

pub use domain::delivery::Cursor;
use domain::delivery::LogQuery;
use domain::status::MessageStatus;
use domain::template::Category;
use serde::{Deserialize, Serialize};

use crate::audit::{self, Actor};
use crate::consent;
use crate::crypto::DataKey;
use crate::db::{Db, DbError, Tx};
use crate::outbox::{MessageState, MessageView, Source, VIEW_COLUMNS, ViewRow};
use crate::{on_db, on_tx};

/// Which statuses a filter keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    Is(MessageStatus),
    /// Failed or undelivered: what a dispatcher has to look at.
    Problems,
}

impl StatusFilter {
    /// The URL's name: a status (`delivered`) or `problems`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Is(s) => s.as_str(),
            StatusFilter::Problems => "problems",
        }
    }

    pub fn parse(s: &str) -> Option<StatusFilter> {
        if s == "problems" {
            return Some(StatusFilter::Problems);
        }
        s.parse().ok().map(StatusFilter::Is)
    }

    fn statuses(self) -> Vec<MessageStatus> {
        match self {
            StatusFilter::Is(s) => vec![s],
            StatusFilter::Problems => vec![MessageStatus::Failed, MessageStatus::Undelivered],
        }
    }
}

/// What to show of the log; every field set narrows it (they combine with AND).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub status: Option<StatusFilter>,
    pub template_key: Option<String>,
    pub category: Option<Category>,
    /// Who sent it: an API key or a console user.
    pub source: Option<Source>,
    /// The recipient's keyed hash (`DataKey::lookup_hash` of the E.164 number).
    pub to_hash: Option<String>,
    /// The sender. `default_sender` says which sender a message naming none went from.
    pub from: Option<String>,
    pub default_sender: Option<String>,
    /// Twilio's error code.
    pub error_code: Option<i64>,
    /// Text the body contains, in any case. Two-factor messages, whose bodies hold codes, are
    /// never found by their text.
    pub text: Option<String>,
    /// Written at or after / before these times, µs UTC.
    pub created_from: Option<i64>,
    pub created_until: Option<i64>,
    /// Sent (handed to Twilio) at or after / before these times, µs UTC.
    pub sent_from: Option<i64>,
    pub sent_until: Option<i64>,
}

/// A filter that cannot be applied: which one, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BadFilter {
    pub field: &'static str,
    pub message: String,
}

const DAY_MICROS: i64 = 86_400_000_000;

/// A day (`YYYY-MM-DD`, UTC: its first µs and the µs after its last) or an instant (RFC 3339).
fn day_or_instant(value: &str) -> Option<(i64, i64)> {
    if let Ok(day) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let start = day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros();
        return Some((start, start + DAY_MICROS));
    }
    let instant = chrono::DateTime::parse_from_rfc3339(value)
        .ok()?
        .timestamp_micros();
    Some((instant, instant))
}

impl Filter {
    /// The filter a log address (or API query) asks for. The recipient is read in any format
    /// (`default_region` for numbers written without a country code) and looked for by its keyed
    /// hash; a source given as an `SK…` id or an e-mail alone is read as such.
    pub fn parse(
        query: &LogQuery,
        key: &DataKey,
        default_region: Option<&str>,
    ) -> Result<Filter, BadFilter> {
        let bad = |field: &'static str, message: String| BadFilter { field, message };
        // PostgreSQL's text holds no NUL, and no filter value needs one.
        for name in LogQuery::NAMES {
            if query.get(name).is_some_and(|v| v.contains('\0')) {
                return Err(bad(name, "contains a NUL character: remove it".to_owned()));
            }
        }
        let mut filter = Filter::default();
        if let Some(s) = query.get("status") {
            filter.status = Some(StatusFilter::parse(s).ok_or_else(|| {
                bad(
                    "status",
                    format!(
                        "{s:?} is not a status: use problems or one of {}",
                        MessageStatus::ALL.map(MessageStatus::as_str).join(", ")
                    ),
                )
            })?);
        }
        filter.template_key = query.get("template").map(str::to_owned);
        if let Some(c) = query.get("category") {
            filter.category = Some(c.parse::<Category>().map_err(|_| {
                bad(
                    "category",
                    format!(
                        "{c:?} is not a category: use one of {}",
                        Category::ALL.map(Category::as_str).join(", ")
                    ),
                )
            })?);
        }
        if let Some(s) = query.get("source") {
            let source = s.parse::<Source>().ok().or_else(|| {
                if s.starts_with("SK") && !s.contains(':') {
                    Some(Source::ApiKey(s.to_owned()))
                } else if s.contains('@') && !s.contains(':') {
                    Some(Source::User(s.to_owned()))
                } else {
                    None
                }
            });
            filter.source = Some(source.ok_or_else(|| {
                bad(
                    "source",
                    format!("{s:?} is not a sender: use an API key's id (SK…) or a user's e-mail"),
                )
            })?);
        }
        if let Some(to) = query.get("to") {
            let number = domain::phone::PhoneNumber::parse(to, default_region).map_err(|e| {
                bad(
                    "to",
                    format!(
                        "{} is not a phone number: {e}",
                        domain::redact::mask_numbers(to)
                    ),
                )
            })?;
            filter.to_hash = Some(key.lookup_hash(number.e164()));
        }
        if let Some(code) = query.get("error_code") {
            filter.error_code = Some(code.parse::<u32>().map(i64::from).map_err(|_| {
                bad(
                    "error_code",
                    format!("{code:?} is not an error code: use Twilio's number, e.g. 30003"),
                )
            })?);
        }
        filter.text = query.get("text").map(str::to_owned);
        const DATES: &str = "use a day (YYYY-MM-DD, UTC) or an instant (2026-11-30T08:00:00Z)";
        if let Some(d) = query.get("date_from") {
            let (start, _) =
                day_or_instant(d).ok_or_else(|| bad("date_from", format!("{d:?}: {DATES}")))?;
            filter.created_from = Some(start);
        }
        if let Some(d) = query.get("date_to") {
            let (_, end) =
                day_or_instant(d).ok_or_else(|| bad("date_to", format!("{d:?}: {DATES}")))?;
            filter.created_until = Some(end);
        }
        Ok(filter)
    }
}

impl Filter {
    /// The same filter over the daily totals (its status choice left out), when they can answer
    /// it exactly.
    pub fn as_totals(&self) -> Option<crate::totals::Filter> {
        let whole_day = |t: Option<i64>| t.is_none_or(crate::totals::is_day_start);
        let narrowed_by_message = self.to_hash.is_some()
            || self.from.is_some()
            || self.text.as_deref().is_some_and(|t| !t.is_empty())
            || self.sent_from.is_some()
            || self.sent_until.is_some();
        if narrowed_by_message || !whole_day(self.created_from) || !whole_day(self.created_until) {
            return None;
        }
        Some(crate::totals::Filter {
            template_key: self.template_key.clone(),
            category: self.category,
            source: self.source.as_ref().map(ToString::to_string),
            error_code: self.error_code,
            from_day: self.created_from,
            until_day: self.created_until,
        })
    }
}

/// One page of the log, newest first, and the cursors to the pages beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub messages: Vec<MessageView>,
    /// Messages older than this page exist: [`Cursor::Older`] of its last id.
    pub older: Option<i64>,
    /// Messages newer than this page exist: [`Cursor::Newer`] of its first id.
    pub newer: Option<i64>,
}

enum Param {
    Text(String),
    Int(i64),
}

/// A filter as SQL conditions and their parameters (`$1`, `$2`, … in order).
struct Conditions {
    sql: Vec<String>,
    params: Vec<Param>,
    /// SQLite: the placeholder of a text search through the body index. The query then reads the
    /// index's hits newest first and each hit's message (so a page of a common text stops after
    /// a page of hits, and a rare text reads only its few).
    hits: Option<String>,
}

impl Conditions {
    fn new(db: &Db, filter: &Filter, with_status: bool) -> Conditions {
        let mut c = Conditions {
            sql: Vec::new(),
            params: Vec::new(),
            hits: None,
        };
        if with_status && let Some(status) = filter.status {
            let names: Vec<String> = status
                .statuses()
                .into_iter()
                .map(|s| c.bind(Param::Text(s.as_str().to_owned())))
                .collect();
            c.sql.push(format!("status IN ({})", names.join(", ")));
        }
        if let Some(t) = &filter.template_key {
            let n = c.bind(Param::Text(t.clone()));
            c.sql.push(format!("template_key = {n}"));
        }
        if let Some(category) = filter.category {
            let n = c.bind(Param::Text(category.as_str().to_owned()));
            c.sql.push(format!("category = {n}"));
        }
        if let Some(source) = &filter.source {
            let n = c.bind(Param::Text(source.to_string()));
            c.sql.push(format!("source = {n}"));
        }
        if let Some(h) = &filter.to_hash {
            let n = c.bind(Param::Text(h.clone()));
            c.sql.push(format!("to_hash = {n}"));
        }
        if let Some(from) = &filter.from {
            let n = c.bind(Param::Text(from.clone()));
            if filter.default_sender.as_deref() == Some(from.as_str()) {
                c.sql.push(format!("(sender = {n} OR sender IS NULL)"));
            } else {
                c.sql.push(format!("sender = {n}"));
            }
        }
        if let Some(code) = filter.error_code {
            let n = c.bind(Param::Int(code));
            c.sql.push(format!("error_code = {n}"));
        }
        if let Some(text) = filter.text.as_deref().filter(|t| !t.is_empty()) {
            // Found through the trigram index of the bodies (migration 0012), which leaves
            // two-factor bodies out: the condition names that literally, as the index does.
            let two_factor = Category::TwoFactor.as_str();
            match db {
                // FTS5's trigrams need three characters; a phrase of them is the text itself,
                // in any case.
                Db::Sqlite(..) if text.chars().count() >= 3 => {
                    let n = c.bind(Param::Text(format!("\"{}\"", text.replace('"', "\"\""))));
                    c.hits = Some(n);
                }
                // SQLite's LIKE ignores the case of ASCII letters; PostgreSQL's ILIKE of all.
                Db::Sqlite(..) => {
                    let n = c.bind(Param::Text(format!("%{}%", escape_like(text))));
                    c.sql.push(format!(
                        "body LIKE {n} ESCAPE '\\' AND category IS NOT '{two_factor}'"
                    ));
                }
                Db::Postgres(_) => {
                    let n = c.bind(Param::Text(format!("%{}%", escape_like(text))));
                    c.sql.push(format!(
                        "body ILIKE {n} ESCAPE '\\' AND category IS DISTINCT FROM '{two_factor}'"
                    ));
                }
            }
        }
        for (value, op, column) in [
            (filter.created_from, ">=", "created_at"),
            (filter.created_until, "<", "created_at"),
            (filter.sent_from, ">=", "dispatched_at"),
            (filter.sent_until, "<", "dispatched_at"),
        ] {
            if let Some(t) = value {
                let n = c.bind(Param::Int(t));
                c.sql.push(format!("{column} {op} {n}"));
            }
        }
        c
    }

    /// Adds a parameter; answers its placeholder.
    fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    /// What the query reads: the messages, or the body index's hits joined to their messages.
    fn source_clause(&self) -> String {
        match &self.hits {
            None => "messages".to_owned(),
            Some(n) => format!(
                "(SELECT rowid AS hit FROM message_bodies WHERE message_bodies MATCH {n}) AS hits
                 JOIN messages ON messages.id = hits.hit"
            ),
        }
    }

    /// The message id column to order and page by (the hit's, so the index reads in order).
    fn id_column(&self) -> &'static str {
        if self.hits.is_some() {
            "hits.hit"
        } else {
            "id"
        }
    }

    fn where_clause(&self) -> String {
        if self.sql.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.sql.join(" AND "))
        }
    }
}

/// `text` with LIKE's wildcards taken literally (escaped with `\`).
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

macro_rules! bind_all {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                Param::Text(s) => q.bind(s.as_str()),
                Param::Int(i) => q.bind(*i),
            };
        }
        q
    }};
}

/// Up to `limit` messages matching `filter` from `cursor` on, newest first. One query.
pub async fn list(
    db: &Db,
    key: &DataKey,
    filter: &Filter,
    cursor: Option<Cursor>,
    limit: u32,
) -> Result<Vec<MessageView>, DbError> {
    let mut c = Conditions::new(db, filter, true);
    let id = c.id_column();
    // Newer pages are read oldest first from the cursor (so the page is the one right after
    // it), then turned around.
    let order = match cursor {
        Some(Cursor::Older(before)) => {
            let n = c.bind(Param::Int(before));
            c.sql.push(format!("{id} < {n}"));
            "DESC"
        }
        Some(Cursor::Newer(after)) => {
            let n = c.bind(Param::Int(after));
            c.sql.push(format!("{id} > {n}"));
            "ASC"
        }
        None => "DESC",
    };
    let n = c.bind(Param::Int(i64::from(limit)));
    let sql = format!(
        "SELECT {VIEW_COLUMNS} FROM {} {} ORDER BY {id} {order} LIMIT {n}",
        c.source_clause(),
        c.where_clause()
    );
    let rows = on_db!(db, |pool| bind_all!(
        sqlx::query_as::<_, ViewRow>(&sql),
        &c.params
    )
    .fetch_all(pool)
    .await?);
    let mut views = rows
        .into_iter()
        .map(|r| r.into_view(key))
        .collect::<Result<Vec<_>, _>>()?;
    if order == "ASC" {
        views.reverse();
    }
    Ok(views)
}

/// A page of `size` messages (1 to 500) from `cursor`, with the cursors beside it: one query.
pub async fn page(
    db: &Db,
    key: &DataKey,
    filter: &Filter,
    cursor: Option<Cursor>,
    size: u32,
) -> Result<Page, DbError> {
    let size = size.clamp(1, 500);
    let mut messages = list(db, key, filter, cursor, size + 1).await?;
    let more = messages.len() > size as usize;
    // One row past the page says whether there is more in the direction read.
    match cursor {
        Some(Cursor::Newer(_)) if more => {
            messages.remove(0);
        }
        _ => messages.truncate(size as usize),
    }
    let (older, newer) = match cursor {
        None => (more, false),
        Some(Cursor::Older(_)) => (more, true),
        Some(Cursor::Newer(_)) => (true, more),
    };
    Ok(Page {
        older: if older {
            messages.last().map(|m| m.id)
        } else {
            None
        },
        newer: if newer {
            messages.first().map(|m| m.id)
        } else {
            None
        },
        messages,
    })
}

/// How many messages match `filter` in each status (its own status choice left out, so the
/// counts say what each choice would show), in [`MessageStatus::ALL`]'s order, zeros left out.
/// Filters the daily totals can answer are counted from them (`crate::totals`: a few thousand
/// rows); the others (recipient, sender, text, time of sending, a bound within a day) from the
/// messages.
pub async fn counts(db: &Db, filter: &Filter) -> Result<Vec<(MessageStatus, i64)>, DbError> {
    if let Some(totals) = filter.as_totals() {
        return crate::totals::by_status(db, &totals).await;
    }
    let c = Conditions::new(db, filter, false);
    let sql = format!(
        "SELECT status, COUNT(*), MIN(id) FROM {} {} GROUP BY status",
        c.source_clause(),
        c.where_clause()
    );
    let rows: Vec<(String, i64, i64)> = on_db!(db, |pool| bind_all!(
        sqlx::query_as::<_, (String, i64, i64)>(&sql),
        &c.params
    )
    .fetch_all(pool)
    .await?);
    let mut counts = Vec::new();
    for (status, n, first) in rows {
        counts.push((read_status(first, status)?, n));
    }
    counts.sort_by_key(|(s, _)| MessageStatus::ALL.iter().position(|a| a == s));
    Ok(counts)
}

/// Most messages a search by text counts: past it the log says "1000+" and its counts per
/// status cover the newest ones. A common word can match most of the outbox, and counting all
/// of them would take as long as reading them (a page and the CSV export are not capped). On
/// PostgreSQL the trigram index cannot hand out its matches newest first, so the newest are
/// found by reading the log backwards and testing each body: at a million messages, 10,000
/// matches of a phrase in one body out of seven took 160 ms, 1,000 take under 20 ms.
pub const TEXT_COUNT_CAP: i64 = 1_000;

/// The log's counts per status, and whether they stopped at [`TEXT_COUNT_CAP`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCounts {
    pub by_status: Vec<(MessageStatus, i64)>,
    /// More messages match than were counted: the counts cover the newest
    /// `TEXT_COUNT_CAP + 1`.
    pub capped: bool,
}

/// The counts the log shows: exact (from the totals, or counted) unless the filter searches
/// the text, when at most the newest [`TEXT_COUNT_CAP`] + 1 matches are counted.
pub async fn log_counts(db: &Db, filter: &Filter) -> Result<LogCounts, DbError> {
    log_counts_up_to(db, filter, TEXT_COUNT_CAP).await
}

/// [`log_counts`] with another cap (tests).
pub async fn log_counts_up_to(db: &Db, filter: &Filter, cap: i64) -> Result<LogCounts, DbError> {
    if filter.text.is_none() || filter.as_totals().is_some() {
        return Ok(LogCounts {
            by_status: counts(db, filter).await?,
            capped: false,
        });
    }
    let mut c = Conditions::new(db, filter, false);
    let limit = c.bind(Param::Int(cap + 1));
    let sql = format!(
        "SELECT status, COUNT(*), MIN(id) FROM (
             SELECT messages.status AS status, messages.id AS id FROM {} {}
              ORDER BY {} DESC LIMIT {limit}
         ) AS newest GROUP BY status",
        c.source_clause(),
        c.where_clause(),
        c.id_column()
    );
    let rows: Vec<(String, i64, i64)> = on_db!(db, |pool| bind_all!(
        sqlx::query_as::<_, (String, i64, i64)>(&sql),
        &c.params
    )
    .fetch_all(pool)
    .await?);
    let mut by_status = Vec::new();
    for (status, n, first) in rows {
        by_status.push((read_status(first, status)?, n));
    }
    by_status.sort_by_key(|(s, _)| MessageStatus::ALL.iter().position(|a| a == s));
    let counted: i64 = by_status.iter().map(|(_, n)| n).sum();
    Ok(LogCounts {
        by_status,
        capped: counted > cap,
    })
}

/// How many messages matching `filter` are newer than `id` (the page a reader has open began at
/// `id`: these are what arrived since).
pub async fn count_newer(db: &Db, filter: &Filter, id: i64) -> Result<i64, DbError> {
    let mut c = Conditions::new(db, filter, true);
    let n = c.bind(Param::Int(id));
    c.sql.push(format!("{} > {n}", c.id_column()));
    let sql = format!(
        "SELECT COUNT(*) FROM {} {}",
        c.source_clause(),
        c.where_clause()
    );
    Ok(on_db!(db, |pool| bind_all!(
        sqlx::query_scalar::<_, i64>(&sql),
        &c.params
    )
    .fetch_one(pool)
    .await?))
}

/// The status and error code each of these messages has now (by sid; unknown sids left out),
/// for a page that shows them to follow their changes. At most 500 sids are read.
pub async fn statuses(
    db: &Db,
    sids: &[String],
) -> Result<Vec<(String, MessageStatus, Option<i64>)>, DbError> {
    let sids = &sids[..sids.len().min(500)];
    if sids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=sids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT id, sid, status, error_code FROM messages WHERE sid IN ({})",
        placeholders.join(", ")
    );
    let rows: Vec<(i64, String, String, Option<i64>)> = on_db!(db, |pool| {
        let mut q = sqlx::query_as::<_, (i64, String, String, Option<i64>)>(&sql);
        for sid in sids {
            q = q.bind(sid);
        }
        q.fetch_all(pool).await?
    });
    rows.into_iter()
        .map(|(id, sid, status, code)| Ok((sid, read_status(id, status)?, code)))
        .collect()
}

/// A stored status, or an error naming the row.
fn read_status(id: i64, status: String) -> Result<MessageStatus, DbError> {
    status.parse::<MessageStatus>().map_err(|_| {
        tracing::error!(message_id = id, value = %status, "unreadable message status");
        DbError::Unreadable {
            table: "messages",
            id,
            column: "status",
            value: status,
        }
    })
}

/// Why a retry or a cancellation was refused, in a sentence for the person who asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionRefused {
    #[error("there is no message {0}")]
    NotFound(String),
    #[error("{0}")]
    NotNow(String),
}

/// What a retry or a cancellation did, or why it did not.
pub type ActionResult = Result<Result<(), ActionRefused>, DbError>;

#[derive(sqlx::FromRow)]
struct ActionRow {
    id: i64,
    state: String,
    status: String,
    to_hash: String,
    category: Option<String>,
    validity_until: Option<i64>,
    redacted_at: Option<i64>,
}

async fn action_row(tx: &mut Tx, sid: &str) -> Result<Option<ActionRow>, DbError> {
    let lock = match tx {
        Tx::Postgres(_) => " FOR UPDATE",
        Tx::Sqlite(..) => "",
    };
    let sql = format!(
        "SELECT id, state, status, to_hash, category, validity_until, redacted_at FROM messages WHERE sid = $1{lock}"
    );
    Ok(on_tx!(tx, |conn| sqlx::query_as::<_, ActionRow>(&sql)
        .bind(sid)
        .fetch_optional(conn)
        .await?))
}

async fn action_event(
    tx: &mut Tx,
    id: i64,
    kind: &str,
    status: Option<&str>,
    detail: &str,
    now: i64,
) -> Result<(), DbError> {
    on_tx!(tx, |conn| {
        sqlx::query(
        "INSERT INTO message_events (message_id, at, kind, status, detail) VALUES ($1, $2, $3, $4, $5)"
    )
    .bind(id)
    .bind(now)
    .bind(kind)
    .bind(status)
    .bind(detail)
    .execute(conn)
    .await?
    .rows_affected()
    });
    Ok(())
}

/// Sends a failed or undelivered message again: a new attempt, due now, its history kept (the
/// attempts already made still count, so the worker retries it no further on its own). Refused
/// for a message that did not fail, a two-factor code (ask for a new one), a message whose
/// validity period has ended, and a recipient who has opted out since. Audited. The caller wakes
/// the worker.
pub async fn retry(db: &Db, sid: &str, actor: &Actor, now: i64) -> ActionResult {
    let mut tx = db.begin().await?;
    let Some(row) = action_row(&mut tx, sid).await? else {
        return Ok(Err(ActionRefused::NotFound(sid.to_owned())));
    };
    let not_now = |why: String| Ok(Err(ActionRefused::NotNow(why)));
    let failed = [MessageStatus::Failed, MessageStatus::Undelivered];
    if row.state != MessageState::Done.as_str() || !failed.iter().any(|s| s.as_str() == row.status)
    {
        return not_now(format!(
            "only a failed or undelivered message can be sent again; this one is {}",
            row.status
        ));
    }
    if row.category.as_deref() == Some(Category::TwoFactor.as_str()) {
        return not_now(
            "a two-factor code is never sent again: the person asks for a new code".to_owned(),
        );
    }
    if let Some(at) = row.redacted_at {
        return not_now(format!(
            "its text was removed at {} (the retention period in Settings): send a new message instead",
            utc(at)
        ));
    }
    if let Some(until) = row.validity_until
        && until <= now
    {
        return not_now(format!(
            "its validity period ended at {}: send a new message instead",
            utc(until)
        ));
    }
    if !consent::opted_out_among(db, &[&row.to_hash])
        .await?
        .is_empty()
    {
        return not_now(
            "the recipient has opted out (replied STOP): smsdesk will not send to them until they reply START"
                .to_owned(),
        );
    }
    on_tx!(&mut tx, |conn| sqlx::query(
        "UPDATE messages SET state = 'waiting', status = 'accepted', due_at = $1, in_doubt = FALSE,
             lease_until = NULL, error_code = NULL, error_message = NULL, updated_at = $1
         WHERE id = $2"
    )
    .bind(now)
    .bind(row.id)
    .execute(conn)
    .await?
    .rows_affected());
    action_event(
        &mut tx,
        row.id,
        "retry_requested",
        Some(MessageStatus::Accepted.as_str()),
        &format!("{} asked to send it again", actor.label),
        now,
    )
    .await?;
    audit::record(
        &mut tx,
        actor,
        "message.retry",
        sid,
        Some(serde_json::json!({ "status": row.status })),
        Some(serde_json::json!({ "status": "accepted" })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// Cancels a message still waiting in the outbox (one being handed to Twilio, or already sent,
/// can no longer be). It ends `canceled`. Audited.
pub async fn cancel(db: &Db, sid: &str, actor: &Actor, now: i64) -> ActionResult {
    let mut tx = db.begin().await?;
    let Some(row) = action_row(&mut tx, sid).await? else {
        return Ok(Err(ActionRefused::NotFound(sid.to_owned())));
    };
    if row.state != MessageState::Waiting.as_str() {
        return Ok(Err(ActionRefused::NotNow(format!(
            "only a message still waiting can be canceled; this one is {} and has left the outbox",
            row.status
        ))));
    }
    // The worker may claim it meanwhile on another instance: only a waiting row changes.
    let sql = format!(
        "UPDATE messages SET state = 'done', status = 'canceled', updated_at = $1, {}
         WHERE id = $2 AND state = 'waiting'
         RETURNING created_at, category, estimated_micros",
        crate::worker::forget_two_factor("$1")
    );
    let changed: Option<(i64, Option<String>, Option<i64>)> =
        on_tx!(&mut tx, |conn| sqlx::query_as(&sql)
            .bind(now)
            .bind(row.id)
            .fetch_optional(conn)
            .await?);
    let Some((created_at, category, estimate)) = changed else {
        return Ok(Err(ActionRefused::NotNow(
            "it has just been handed to Twilio and can no longer be canceled".to_owned(),
        )));
    };
    // Never sent, never billed: its reservation goes back to the budgets.
    if let Some(estimate) = estimate {
        let category = category.and_then(|c| Category::ALL.into_iter().find(|k| k.as_str() == c));
        crate::budgets::release(&mut tx, created_at, category, estimate).await?;
    }
    action_event(
        &mut tx,
        row.id,
        "canceled",
        Some(MessageStatus::Canceled.as_str()),
        &format!("canceled by {} before it was sent", actor.label),
        now,
    )
    .await?;
    audit::record(
        &mut tx,
        actor,
        "message.cancel",
        sid,
        Some(serde_json::json!({ "status": row.status })),
        Some(serde_json::json!({ "status": "canceled" })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

fn utc(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_taken_literally() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
        assert_eq!(escape_like("depot"), "depot");
    }

    #[test]
    fn status_filters_read_back_from_their_names() {
        for s in MessageStatus::ALL {
            let f = StatusFilter::Is(s);
            assert_eq!(StatusFilter::parse(f.as_str()), Some(f));
        }
        assert_eq!(
            StatusFilter::parse("problems"),
            Some(StatusFilter::Problems)
        );
        assert_eq!(StatusFilter::parse("lost"), None);
    }
}
