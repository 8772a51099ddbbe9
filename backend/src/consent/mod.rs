//! The consent ledger: every opt-out and opt-in, append-only, with where it came from and the
//! evidence (the inbound message, Twilio's 21610, an admin's note). A number's state is its
//! latest entry; numbers are found by their keyed hash and stored encrypted.

pub mod export;
pub mod import;

use serde::{Deserialize, Serialize};

use crate::crypto::DataKey;
use crate::db::{Db, DbError, Tx};
use crate::{on_db, on_tx};
use domain::consent::{ChainBreak, EntryFields, GENESIS, StoredEntry, entry_hash};
use domain::keywords::Keyword;

/// What a ledger entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    OptOut,
    OptIn,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::OptOut => "opt_out",
            Action::OptIn => "opt_in",
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Action::OptOut, Action::OptIn]
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown consent action {s:?}"))
    }
}

/// One ledger entry as the consent page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: i64,
    pub at: i64,
    pub action: Action,
    /// Where it came from: `inbound:SM…`, `twilio_callback`, `console:<e-mail>`, …
    pub source: String,
    /// The message, error or note that shows it.
    pub evidence: String,
    /// The number, masked.
    pub number: String,
    /// Its link in the chain (`None` before the start-up seal).
    pub entry_hash: Option<String>,
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: i64,
    at: i64,
    action: String,
    source: String,
    evidence: String,
    phone_encrypted: String,
    entry_hash: Option<String>,
}

impl EntryRow {
    fn into_entry(self, key: &DataKey) -> Result<Entry, DbError> {
        let action = self.action.parse::<Action>().map_err(|_| {
            tracing::error!(entry_id = self.id, value = %self.action, "unreadable consent action");
            DbError::Unreadable {
                table: "consent_events",
                id: self.id,
                column: "action",
                value: self.action.clone(),
            }
        })?;
        let number = key
            .decrypt(&self.phone_encrypted)
            .map_err(|_| DbError::Undecryptable {
                what: "a consent entry's number",
            })?;
        Ok(Entry {
            id: self.id,
            at: self.at,
            action,
            source: self.source,
            evidence: domain::redact::mask_numbers(&self.evidence),
            number: domain::redact::mask_numbers(&number),
            entry_hash: self.entry_hash,
        })
    }
}

const ENTRY_COLUMNS: &str = "id, at, action, source, evidence, phone_encrypted, entry_hash";

/// A number's entries (E.164), newest first: its state is the first.
pub async fn history(db: &Db, key: &DataKey, e164: &str) -> Result<Vec<Entry>, DbError> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM consent_events WHERE phone_hash = $1 ORDER BY id DESC"
    );
    let rows = on_db!(db, |pool| sqlx::query_as::<_, EntryRow>(&sql)
        .bind(key.lookup_hash(e164))
        .fetch_all(pool)
        .await?);
    rows.into_iter().map(|r| r.into_entry(key)).collect()
}

/// The ledger's latest `limit` entries, newest first (numbers masked).
pub async fn recent(db: &Db, key: &DataKey, limit: u32) -> Result<Vec<Entry>, DbError> {
    entries(db, key, &LedgerFilter::default(), None, limit).await
}

/// Where ledger entries come from, as their source begins: the inbound webhook, a person in the
/// console, Twilio's 21610, an import.
pub const SOURCES: [&str; 4] = ["inbound", "console", "twilio_callback", "import"];

/// Which entries to read: the recent changes' filters and the auditors' export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerFilter {
    pub action: Option<Action>,
    /// One of [`SOURCES`].
    pub source: Option<&'static str>,
    /// Entries at or after this time (µs, UTC).
    pub from: Option<i64>,
    /// Entries before this time.
    pub until: Option<i64>,
}

/// At most `limit` entries matching `filter` older than the entry `before` (an id; `None`: the
/// newest), newest first, numbers masked. Reading on from the last id pages through any range.
pub async fn entries(
    db: &Db,
    key: &DataKey,
    filter: &LedgerFilter,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<Entry>, DbError> {
    let mut conditions = vec!["id < $1".to_owned()];
    let mut texts: Vec<String> = Vec::new();
    let mut ints: Vec<i64> = Vec::new();
    // Text parameters first ($2, $3), then the times, so each is bound in order below.
    if let Some(action) = filter.action {
        texts.push(action.as_str().to_owned());
        conditions.push(format!("action = ${}", 1 + texts.len()));
    }
    if let Some(source) = filter.source {
        // `inbound:SM…`, `console:<e-mail>`, `twilio_callback`, `import:<e-mail>`.
        texts.push(source.to_owned());
        texts.push(format!("{source}:%"));
        conditions.push(format!(
            "(source = ${} OR source LIKE ${})",
            texts.len(),
            1 + texts.len()
        ));
    }
    let first_int = 2 + texts.len();
    if let Some(from) = filter.from {
        ints.push(from);
        conditions.push(format!("at >= ${}", first_int + ints.len() - 1));
    }
    if let Some(until) = filter.until {
        ints.push(until);
        conditions.push(format!("at < ${}", first_int + ints.len() - 1));
    }
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM consent_events WHERE {} ORDER BY id DESC LIMIT {}",
        conditions.join(" AND "),
        limit.clamp(1, 10_000)
    );
    let rows = on_db!(db, |pool| {
        let mut q = sqlx::query_as::<_, EntryRow>(&sql).bind(before.unwrap_or(i64::MAX));
        for t in &texts {
            q = q.bind(t);
        }
        for i in &ints {
            q = q.bind(i);
        }
        q.fetch_all(pool).await?
    });
    rows.into_iter().map(|r| r.into_entry(key)).collect()
}

/// Opt-outs and opt-ins on one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCount {
    /// The day's first microsecond (UTC).
    pub day: i64,
    pub opt_outs: i64,
    pub opt_ins: i64,
}

const DAY: i64 = 86_400_000_000;

/// A UTC day as `YYYY-MM-DD`.
pub fn day_label(day: i64) -> String {
    chrono::DateTime::from_timestamp_micros(day)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// The `days` UTC days up to and including the one holding `now`, oldest first, each with its
/// opt-outs and opt-ins (days without any included, at zero).
pub async fn per_day(db: &Db, now: i64, days: u32) -> Result<Vec<DayCount>, DbError> {
    let today = now - now.rem_euclid(DAY);
    let start = today - i64::from(days.saturating_sub(1)) * DAY;
    let rows: Vec<(i64, String, i64)> = on_db!(db, |pool| sqlx::query_as(
        "SELECT at / 86400000000, action, COUNT(*) FROM consent_events
         WHERE at >= $1 AND at < $2 GROUP BY at / 86400000000, action"
    )
    .bind(start)
    .bind(today + DAY)
    .fetch_all(pool)
    .await?);
    let mut out: Vec<DayCount> = (0..i64::from(days))
        .map(|i| DayCount {
            day: start + i * DAY,
            opt_outs: 0,
            opt_ins: 0,
        })
        .collect();
    for (day, action, n) in rows {
        let Some(slot) = usize::try_from(day * DAY - start)
            .ok()
            .map(|offset| offset / DAY as usize)
            .and_then(|i| out.get_mut(i))
        else {
            continue;
        };
        match action.parse::<Action>() {
            Ok(Action::OptOut) => slot.opt_outs += n,
            Ok(Action::OptIn) => slot.opt_ins += n,
            Err(_) => {
                tracing::error!(value = %action, "unreadable consent action in the daily counts")
            }
        }
    }
    Ok(out)
}

/// Records an opt-out or opt-in made by a person in the console (a customer called), with their
/// note as the evidence, in the ledger and the audit log together.
pub async fn record_by_hand(
    db: &Db,
    key: &DataKey,
    e164: &str,
    action: Action,
    note: &str,
    actor: &crate::audit::Actor,
    now: i64,
) -> Result<(), DbError> {
    // A number in the note is stored masked, as everywhere outside the encrypted column.
    let note = &domain::redact::mask_numbers(note);
    let mut tx = db.begin().await?;
    let source = format!("console:{}", actor.label);
    record(&mut tx, key, e164, action, &source, note, now).await?;
    crate::audit::record(
        &mut tx,
        actor,
        &format!("consent.{}", action.as_str()),
        &domain::redact::mask_numbers(e164),
        None,
        Some(serde_json::json!({ "note": note })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Which of `hashes` (lookup hashes) have opted out and not back in: one query however many.
pub async fn opted_out_among(
    db: &Db,
    hashes: &[&String],
) -> Result<std::collections::HashSet<String>, DbError> {
    if hashes.is_empty() {
        return Ok(Default::default());
    }
    // The numbers travel as one parameter (a JSON array on SQLite, an array on PostgreSQL), so
    // a batch of any size is one statement.
    const LATEST: &str = "SELECT c.phone_hash FROM consent_events c
         JOIN (SELECT phone_hash, MAX(id) AS id FROM consent_events
               WHERE phone_hash IN (SELECT value FROM json_each($1)) GROUP BY phone_hash) latest
           ON c.id = latest.id
         WHERE c.action = 'opt_out'";
    let found = match db {
        Db::Sqlite(pool, _) => {
            let list = serde_json::to_string(hashes).expect("strings serialize");
            sqlx::query_scalar::<_, String>(LATEST)
                .bind(list)
                .fetch_all(pool)
                .await?
        }
        Db::Postgres(pool) => {
            let list: Vec<&str> = hashes.iter().map(|h| h.as_str()).collect();
            sqlx::query_scalar::<_, String>(
                "SELECT c.phone_hash FROM consent_events c
                 JOIN (SELECT phone_hash, MAX(id) AS id FROM consent_events
                       WHERE phone_hash = ANY($1) GROUP BY phone_hash) latest
                   ON c.id = latest.id
                 WHERE c.action = 'opt_out'",
            )
            .bind(list)
            .fetch_all(pool)
            .await?
        }
    };
    Ok(found.into_iter().collect())
}

/// Appends an entry inside the caller's transaction, chained to the entry before it. Appends
/// take turns (SQLite's single writer; a transaction lock on PostgreSQL), so the chain has no
/// forks.
pub async fn record(
    tx: &mut Tx,
    key: &DataKey,
    e164: &str,
    action: Action,
    source: &str,
    evidence: &str,
    at: i64,
) -> Result<(), DbError> {
    let phone_hash = key.lookup_hash(e164);
    let prev = last_hash(tx).await?;
    let fields = EntryFields {
        phone_hash: &phone_hash,
        action: action.as_str(),
        source,
        evidence,
        at,
    };
    let hash = entry_hash(&prev, &fields);
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO consent_events
             (phone_hash, phone_encrypted, action, source, evidence, at, prev_hash, entry_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )
    .bind(&phone_hash)
    .bind(key.encrypt(e164))
    .bind(action.as_str())
    .bind(source)
    .bind(evidence)
    .bind(at)
    .bind(&prev)
    .bind(&hash)
    .execute(conn)
    .await?
    .rows_affected());
    Ok(())
}

/// The last entry's hash (the chain's start when there is none), once this transaction holds
/// the ledger's append turn.
async fn last_hash(tx: &mut Tx) -> Result<String, DbError> {
    lock_ledger(tx).await?;
    let last: Option<Option<String>> = on_tx!(tx, |conn| sqlx::query_scalar(
        "SELECT entry_hash FROM consent_events ORDER BY id DESC LIMIT 1"
    )
    .fetch_optional(conn)
    .await?);
    Ok(last.flatten().unwrap_or_else(|| GENESIS.to_owned()))
}

/// Takes the ledger's append turn for the rest of `tx` (SQLite's writer lock is the turn there):
/// what the transaction reads of the ledger from now on cannot change under it.
pub(crate) async fn lock_ledger(tx: &mut Tx) -> Result<(), DbError> {
    if let Tx::Postgres(t) = tx {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LEDGER_LOCK)
            .execute(&mut **t)
            .await?;
    }
    Ok(())
}

/// The PostgreSQL advisory lock appends take (an arbitrary constant: "consent" in ASCII).
const LEDGER_LOCK: i64 = 0x0063_6f6e_7365_6e74;

#[derive(sqlx::FromRow)]
struct LedgerRow {
    id: i64,
    phone_hash: String,
    action: String,
    source: String,
    evidence: String,
    at: i64,
    prev_hash: Option<String>,
    entry_hash: Option<String>,
}

const LEDGER_COLUMNS: &str = "id, phone_hash, action, source, evidence, at, prev_hash, entry_hash";

/// Seals entries written before the ledger was chained (no hash yet), in ledger order. Run at
/// start-up; returns how many it sealed (0 once done).
pub async fn seal_unchained(db: &Db) -> Result<u64, DbError> {
    // Every start-up asks; only a ledger from before the chain is read whole.
    let unsealed: Option<i64> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT id FROM consent_events WHERE entry_hash IS NULL LIMIT 1"
    )
    .fetch_optional(pool)
    .await?);
    if unsealed.is_none() {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    let rows: Vec<LedgerRow> = on_tx!(&mut tx, |conn| sqlx::query_as(&format!(
        "SELECT {LEDGER_COLUMNS} FROM consent_events ORDER BY id"
    ))
    .fetch_all(conn)
    .await?);
    if rows.iter().all(|r| r.entry_hash.is_some()) {
        return Ok(0);
    }
    if let Some(first) = rows.iter().position(|r| r.entry_hash.is_none())
        && rows[first..].iter().any(|r| r.entry_hash.is_some())
    {
        // Unsealed entries after sealed ones are not from before the chain: leave them for
        // `consent verify` to report.
        return Ok(0);
    }
    let mut prev = GENESIS.to_owned();
    let mut sealed = 0;
    for r in &rows {
        if let Some(h) = &r.entry_hash {
            prev = h.clone();
            continue;
        }
        let hash = entry_hash(&prev, &fields_of(r));
        on_tx!(&mut tx, |conn| sqlx::query(
            "UPDATE consent_events SET prev_hash = $1, entry_hash = $2 WHERE id = $3"
        )
        .bind(&prev)
        .bind(&hash)
        .bind(r.id)
        .execute(conn)
        .await?
        .rows_affected());
        prev = hash;
        sealed += 1;
    }
    tx.commit().await?;
    Ok(sealed)
}

fn fields_of(r: &LedgerRow) -> EntryFields<'_> {
    EntryFields {
        phone_hash: &r.phone_hash,
        action: &r.action,
        source: &r.source,
        evidence: &r.evidence,
        at: r.at,
    }
}

/// Checks the whole ledger's chain: how many entries follow one another, or the first entry
/// that does not.
pub async fn verify(db: &Db) -> Result<Result<u64, ChainBreak>, DbError> {
    use futures::TryStreamExt;
    let sql = format!("SELECT {LEDGER_COLUMNS} FROM consent_events ORDER BY id");
    let mut prev = GENESIS.to_owned();
    let mut n = 0u64;
    // Streamed: a ledger of any length is checked in constant memory.
    macro_rules! walk {
        ($pool:expr) => {{
            let mut rows = sqlx::query_as::<_, LedgerRow>(&sql).fetch($pool);
            while let Some(r) = rows.try_next().await? {
                let entry = StoredEntry {
                    id: r.id,
                    fields: fields_of(&r),
                    prev_hash: r.prev_hash.as_deref(),
                    entry_hash: r.entry_hash.as_deref(),
                };
                if let Err(e) = domain::consent::verify_next(&prev, &entry) {
                    return Ok(Err(e));
                }
                prev = r.entry_hash.clone().unwrap_or_default();
                n += 1;
            }
        }};
    }
    match db {
        Db::Sqlite(pool, _) => walk!(pool),
        Db::Postgres(pool) => walk!(pool),
    }
    Ok(Ok(n))
}

/// An incoming message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound<'a> {
    pub sid: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub body: &'a str,
    pub keyword: Keyword,
}

/// What recording an incoming message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Stored; a keyword changed the number's consent (`Some`) or not.
    New { consent: Option<Action> },
    /// This MessageSid was recorded before: nothing was added.
    Replay,
}

/// Stores an incoming message and, for an opt-out or opt-in keyword, the consent entry with the
/// message as evidence: one transaction, once per MessageSid. `masked` is the number as shown.
pub async fn receive(
    db: &Db,
    key: &DataKey,
    m: &Inbound<'_>,
    masked: &str,
    at: i64,
) -> Result<Received, DbError> {
    let action = match m.keyword {
        Keyword::OptOut => Some(Action::OptOut),
        Keyword::OptIn => Some(Action::OptIn),
        Keyword::Help | Keyword::Other => None,
    };
    const INSERT: &str = "INSERT INTO inbound_messages
             (sid, from_hash, from_encrypted, from_masked, to_number, body, keyword, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (sid) DO NOTHING
         RETURNING id";
    let (hash, encrypted, keyword) = (
        key.lookup_hash(m.from),
        key.encrypt(m.from),
        m.keyword.as_str(),
    );
    let Some(action) = action else {
        // A reply for the inbox: one statement, no transaction around it.
        let _turn = db.write_turn().await;
        let inserted: Option<i64> = on_db!(db, |pool| sqlx::query_scalar(INSERT)
            .bind(m.sid)
            .bind(&hash)
            .bind(&encrypted)
            .bind(masked)
            .bind(m.to)
            .bind(m.body)
            .bind(keyword)
            .bind(at)
            .fetch_optional(pool)
            .await?);
        return Ok(match inserted {
            Some(_) => Received::New { consent: None },
            None => Received::Replay,
        });
    };
    // A keyword: the message and its ledger entry together.
    let mut tx = db.begin().await?;
    let inserted: Option<i64> = on_tx!(&mut tx, |conn| sqlx::query_scalar(INSERT)
        .bind(m.sid)
        .bind(&hash)
        .bind(&encrypted)
        .bind(masked)
        .bind(m.to)
        .bind(m.body)
        .bind(keyword)
        .bind(at)
        .fetch_optional(conn)
        .await?);
    if inserted.is_none() {
        return Ok(Received::Replay);
    }
    let source = format!("inbound:{}", m.sid);
    record(&mut tx, key, m.from, action, &source, m.body, at).await?;
    tx.commit().await?;
    Ok(Received::New {
        consent: Some(action),
    })
}
