//! The audit log: every change made through smsdesk, who made it, when, and the values before
//! and after. Append-only; admins and compliance officers read and filter it.

use serde::{Deserialize, Serialize};

use crate::db::{Db, DbError, Tx, now_micros};
use crate::{on_db, on_tx};

/// Who is making a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The signed-in user, or `None` for the command line and start-up.
    pub user_id: Option<i64>,
    /// What the log shows: the user's e-mail, or `cli` / `system`.
    pub label: String,
}

impl Actor {
    pub fn user(id: i64, email: &str) -> Actor {
        Actor {
            user_id: Some(id),
            label: email.to_owned(),
        }
    }

    /// The operator at the command line.
    pub fn cli() -> Actor {
        Actor {
            user_id: None,
            label: "cli".to_owned(),
        }
    }

    /// smsdesk itself (first start, seeding).
    pub fn system() -> Actor {
        Actor {
            user_id: None,
            label: "system".to_owned(),
        }
    }
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Entry {
    pub id: i64,
    /// Microseconds since the Unix epoch, UTC.
    pub at: i64,
    pub actor_id: Option<i64>,
    pub actor_email: String,
    pub action: String,
    pub target: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
}

/// Appends an entry inside the caller's transaction, so the change and its record land together.
pub async fn record(
    tx: &mut Tx,
    actor: &Actor,
    action: &str,
    target: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<(), DbError> {
    let before = before.map(|v| v.to_string());
    let after = after.map(|v| v.to_string());
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO audit_log (at, actor_id, actor_email, action, target, before_json, after_json)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(now_micros())
        .bind(actor.user_id)
        .bind(&actor.label)
        .bind(action)
        .bind(target)
        .bind(&before)
        .bind(&after)
        .execute(conn)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// What to show of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Only entries whose actor contains this text.
    pub actor: Option<String>,
    /// Only entries whose action starts with this text (`user.`, `template.`).
    pub action: Option<String>,
    /// Only entries at or after / before these times (microseconds, UTC).
    pub from: Option<i64>,
    pub until: Option<i64>,
    /// At most this many, newest first (capped at 500).
    pub limit: Option<i64>,
}

/// Entries matching the filter, newest first.
pub async fn list(db: &Db, filter: &Filter) -> Result<Vec<Entry>, DbError> {
    let actor = filter
        .actor
        .as_ref()
        .map(|a| format!("%{}%", a.to_lowercase()));
    let action = filter.action.as_ref().map(|a| format!("{a}%"));
    let limit = filter.limit.unwrap_or(200).clamp(1, 500);
    let sql = "SELECT id, at, actor_id, actor_email, action, target, before_json, after_json
               FROM audit_log
               WHERE ($1 IS NULL OR LOWER(actor_email) LIKE $1)
                 AND ($2 IS NULL OR action LIKE $2)
                 AND ($3 IS NULL OR at >= $3)
                 AND ($4 IS NULL OR at < $4)
               ORDER BY at DESC, id DESC
               LIMIT $5";
    Ok(on_db!(db, |pool| {
        sqlx::query_as::<_, Entry>(sql)
            .bind(&actor)
            .bind(&action)
            .bind(filter.from)
            .bind(filter.until)
            .bind(limit)
            .fetch_all(pool)
            .await?
    }))
}
