//! The consent ledger: every opt-out and opt-in, append-only, with where it came from and the
//! evidence (the inbound message, Twilio's 21610, an admin's note). A number's state is its
//! latest entry; numbers are found by their keyed hash and stored encrypted.

use serde::{Deserialize, Serialize};

use crate::crypto::DataKey;
use crate::db::{Db, DbError, Tx};
use crate::on_tx;

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

/// Appends an entry inside the caller's transaction.
pub async fn record(
    tx: &mut Tx,
    key: &DataKey,
    e164: &str,
    action: Action,
    source: &str,
    evidence: &str,
    at: i64,
) -> Result<(), DbError> {
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO consent_events (phone_hash, phone_encrypted, action, source, evidence, at)
             VALUES ($1, $2, $3, $4, $5, $6)"
    )
    .bind(key.lookup_hash(e164))
    .bind(key.encrypt(e164))
    .bind(action.as_str())
    .bind(source)
    .bind(evidence)
    .bind(at)
    .execute(conn)
    .await?
    .rows_affected());
    Ok(())
}
