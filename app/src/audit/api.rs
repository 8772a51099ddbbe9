//! The audit log's server function (admins and compliance officers): who changed what, when,
//! before and after.

#[cfg(feature = "ssr")]
use domain::access::Permission;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[cfg(feature = "ssr")]
use crate::auth::{require, state};

/// One entry as the audit page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Entries, newest first, filtered by actor (contains), action (starts with) and day range.
#[server(endpoint = "list_audit")]
pub async fn list_audit(
    actor: Option<String>,
    action: Option<String>,
    limit: Option<i64>,
) -> Result<Vec<AuditEntry>, AppError> {
    require(Permission::ViewAuditLog, "read the audit log").await?;
    let filter = backend::audit::Filter {
        actor: actor.filter(|a| !a.trim().is_empty()),
        action: action.filter(|a| !a.trim().is_empty()),
        from: None,
        until: None,
        limit,
    };
    let entries = backend::audit::list(&state()?.db, &filter)
        .await
        .map_err(|e| AppError::internal("reading the audit log", &e))?;
    Ok(entries
        .into_iter()
        .map(|e| AuditEntry {
            id: e.id,
            at: e.at,
            actor: e.actor_email,
            action: e.action,
            target: e.target,
            before: e.before_json,
            after: e.after_json,
        })
        .collect())
}
