//! The consent ledger: every opt-out and opt-in, append-only, with where it came from and the
//! evidence (the inbound message, Twilio's 21610, an admin's note). A number's state is its
//! latest entry; numbers are found by their keyed hash and stored encrypted.

use serde::{Deserialize, Serialize};

use crate::crypto::DataKey;
use crate::db::{Db, DbError, Tx};
use crate::{on_db, on_tx};

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

/// Whether the number (by its lookup hash) has opted out and not back in.
pub async fn is_opted_out(db: &Db, phone_hash: &str) -> Result<bool, DbError> {
    let last = on_db!(db, |pool| sqlx::query_scalar::<_, String>(
        "SELECT action FROM consent_events WHERE phone_hash = $1 ORDER BY id DESC LIMIT 1"
    )
    .bind(phone_hash)
    .fetch_optional(pool)
    .await?);
    Ok(last.as_deref() == Some(Action::OptOut.as_str()))
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
