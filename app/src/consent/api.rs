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

/// The ledger's latest entries, newest first: only opt-outs or opt-ins (`action`), only those
/// from one source (`inbound`, `console`, `twilio_callback`, `import`), when given.
#[server(endpoint = "recent_consent")]
pub async fn recent_consent(
    action: Option<String>,
    source: Option<String>,
) -> Result<Vec<ConsentEntry>, AppError> {
    require(Permission::ViewConsent, "read the consent ledger").await?;
    let state = state()?;
    let given = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let action = given(action)
        .map(|a| {
            a.parse::<backend::consent::Action>()
                .map_err(|_| AppError::invalid("action", "choose opt-outs or opt-ins").respond())
        })
        .transpose()?;
    let source = given(source)
        .map(|s| {
            backend::consent::SOURCES
                .into_iter()
                .find(|known| *known == s)
                .ok_or_else(|| {
                    AppError::invalid("source", "choose one of the sources offered").respond()
                })
        })
        .transpose()?;
    let filter = backend::consent::LedgerFilter {
        action,
        source,
        ..Default::default()
    };
    let entries = backend::consent::entries(&state.db, &state.key, &filter, None, 50)
        .await
        .map_err(|e| AppError::internal("reading the consent ledger", &e))?;
    Ok(entries.into_iter().map(entry).collect())
}

/// Opt-outs and opt-ins on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayFigures {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub opt_outs: i64,
    pub opt_ins: i64,
}

/// Days the consent chart covers.
pub const CHART_DAYS: u32 = 30;

/// The last [`CHART_DAYS`] UTC days' opt-outs and opt-ins, oldest first (what the chart draws).
#[server(endpoint = "consent_per_day")]
pub async fn consent_per_day() -> Result<Vec<DayFigures>, AppError> {
    require(Permission::ViewConsent, "read the consent ledger").await?;
    let state = state()?;
    let days = backend::consent::per_day(&state.db, backend::db::now_micros(), CHART_DAYS)
        .await
        .map_err(|e| AppError::internal("counting the consent changes", &e))?;
    Ok(days
        .into_iter()
        .map(|d| DayFigures {
            day: backend::consent::day_label(d.day),
            opt_outs: d.opt_outs,
            opt_ins: d.opt_ins,
        })
        .collect())
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportOutcome {
    pub imported: usize,
    /// `line N: why`, for the rows kept out because the ledger holds later entries.
    pub skipped: Vec<String>,
}

/// Imports earlier consent records from CSV (columns `number`, `action`, `at`, `evidence`), with
/// their evidence, audited. One bad row imports nothing; the error names each bad line.
#[server(endpoint = "import_consent")]
pub async fn import_consent(csv: String) -> Result<ImportOutcome, AppError> {
    let user = require(Permission::ManageConsent, "import consent records").await?;
    let state = state()?;
    let settings = backend::settings::sending(&state.db)
        .await
        .map_err(|e| AppError::internal("reading the sending settings", &e))?;
    let actor = backend::audit::Actor::user(user.id, &user.email);
    let outcome = backend::consent::import::import(
        &state.db,
        &state.key,
        &csv,
        &settings.default_region,
        &actor,
        backend::db::now_micros(),
    )
    .await
    .map_err(|e| AppError::internal("importing consent records", &e))?;
    match outcome {
        Ok(report) => Ok(ImportOutcome {
            imported: report.imported,
            skipped: report
                .skipped
                .into_iter()
                .map(|(line, why)| format!("line {line}: {why}"))
                .collect(),
        }),
        Err(refused) => Err(AppError::invalid("csv", refused.to_string()).respond()),
    }
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
