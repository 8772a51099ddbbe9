//! The consent page's server functions: reading needs the consent permission (compliance,
//! admin); recording by hand needs the manage permission and a note, and is audited.

#[cfg(feature = "ssr")]
use domain::access::Permission;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[cfg(feature = "ssr")]
use crate::auth::{require, state};

/// Longest note kept with a change made by hand.
pub const MAX_NOTE: usize = 500;

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEntry {
    pub at: i64,
    /// `opt_out` or `opt_in`.
    pub action: String,
    pub source: String,
    pub evidence: String,
    /// Masked.
    pub number: String,
}

/// A number's state and history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentOfNumber {
    /// E.164, as the officer typed it (read back).
    pub number: String,
    /// Whether smsdesk refuses to send to it.
    pub opted_out: bool,
    /// Newest first.
    pub history: Vec<ConsentEntry>,
}

#[cfg(feature = "ssr")]
fn entry(e: backend::consent::Entry) -> ConsentEntry {
    ConsentEntry {
        at: e.at,
        action: e.action.as_str().to_owned(),
        source: e.source,
        evidence: e.evidence,
        number: e.number,
    }
}

/// The number typed (any format), read as E.164 with the default region.
#[cfg(feature = "ssr")]
async fn e164(number: &str) -> Result<String, AppError> {
    let state = state()?;
    let settings = backend::settings::sending(&state.db)
        .await
        .map_err(|e| AppError::internal("reading the sending settings", &e))?;
    domain::phone::PhoneNumber::parse(number.trim(), Some(&settings.default_region))
        .map(|n| n.e164().to_owned())
        .map_err(|e| {
            AppError::invalid(
                "number",
                format!("that is not a phone number ({e}): write it as +14155552671"),
            )
            .respond()
        })
}

/// A number's consent: its state and every entry with its evidence.
#[server(endpoint = "number_consent")]
pub async fn number_consent(number: String) -> Result<ConsentOfNumber, AppError> {
    require(Permission::ViewConsent, "read the consent ledger").await?;
    let e164 = e164(&number).await?;
    let state = state()?;
    let history = backend::consent::history(&state.db, &state.key, &e164)
        .await
        .map_err(|e| AppError::internal("reading the consent ledger", &e))?;
    Ok(ConsentOfNumber {
        opted_out: history
            .first()
            .is_some_and(|e| e.action == backend::consent::Action::OptOut),
        number: e164,
        history: history.into_iter().map(entry).collect(),
    })
}

/// The ledger's latest entries, newest first.
#[server(endpoint = "recent_consent")]
pub async fn recent_consent() -> Result<Vec<ConsentEntry>, AppError> {
    require(Permission::ViewConsent, "read the consent ledger").await?;
    let state = state()?;
    let entries = backend::consent::recent(&state.db, &state.key, 50)
        .await
        .map_err(|e| AppError::internal("reading the consent ledger", &e))?;
    Ok(entries.into_iter().map(entry).collect())
}

/// Records an opt-out (`opt_out`) or opt-in (`opt_in`) by hand, with a note saying why.
#[server(endpoint = "record_consent")]
pub async fn record_consent(number: String, action: String, note: String) -> Result<(), AppError> {
    use backend::consent::Action;
    let user = require(Permission::ManageConsent, "record consent by hand").await?;
    let action = action
        .parse::<Action>()
        .map_err(|_| AppError::invalid("action", "choose opt-out or opt-in").respond())?;
    let note = note.trim();
    if note.is_empty() {
        return Err(AppError::invalid(
            "note",
            "say why (who asked, how): the note is the evidence",
        )
        .respond());
    }
    if note.chars().count() > MAX_NOTE {
        return Err(AppError::invalid(
            "note",
            format!("keep the note under {MAX_NOTE} characters"),
        )
        .respond());
    }
    let e164 = e164(&number).await?;
    let state = state()?;
    let actor = backend::audit::Actor::user(user.id, &user.email);
    backend::consent::record_by_hand(
        &state.db,
        &state.key,
        &e164,
        action,
        note,
        &actor,
        backend::db::now_micros(),
    )
    .await
    .map_err(|e| AppError::internal("recording consent", &e))
}
