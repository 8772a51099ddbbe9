//! The Verify page's and the simulated phones' server functions (admins). Never a code, never a
//! whole number, except the simulated phones' own texts (no real person's phone).

#[cfg(feature = "ssr")]
use domain::access::Permission;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[cfg(feature = "ssr")]
use crate::auth::{actor, require, state};

/// What the page's refusal says a role may not do.
#[cfg(feature = "ssr")]
const VERIFY: &str = "manage two-factor codes";
/// Days the approved share is shown for.
pub const DAYS: i64 = 30;

/// A Verify service and its guards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    pub sid: String,
    pub friendly_name: String,
    pub code_length: u8,
    pub lifetime_minutes: u32,
    /// Comma-separated; empty: the geo permissions.
    pub countries: String,
    pub hourly_cap: Option<u32>,
    /// smsdesk's own (console sign-in) or made through the API (and by which key).
    pub origin: String,
    pub created_at: i64,
}

/// A verification as listed: masked number, never the code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationView {
    pub sid: String,
    pub service: String,
    pub masked: String,
    pub country: String,
    pub status: String,
    pub checks: u32,
    pub sends: u32,
    pub created_at: i64,
}

/// One UTC day: verifications started, approved, and the share approved (per mille).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayView {
    pub day: String,
    pub started: u64,
    pub approved: u64,
    pub approved_per_mille: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyFigures {
    pub services: Vec<ServiceView>,
    pub recent: Vec<VerificationView>,
    pub days: Vec<DayView>,
    /// Whether smsdesk simulates (its phones' texts can be read).
    pub simulating: bool,
}

#[cfg(feature = "ssr")]
fn service_view(s: backend::verify::Service) -> ServiceView {
    ServiceView {
        origin: match s.purpose {
            backend::verify::Purpose::ConsoleSignIn => "console sign-in".to_owned(),
            backend::verify::Purpose::ConsoleEnrol => {
                "confirming numbers added to accounts".to_owned()
            }
            backend::verify::Purpose::Api => format!("API ({})", s.created_by),
        },
        sid: s.sid,
        friendly_name: s.friendly_name,
        code_length: s.code_length,
        lifetime_minutes: s.lifetime_seconds / 60,
        countries: s.countries.join(", "),
        hourly_cap: s.hourly_cap,
        created_at: s.created_at,
    }
}

#[server(endpoint = "verify_overview")]
pub async fn verify_overview() -> Result<VerifyFigures, AppError> {
    require(Permission::ManageSettings, VERIFY).await?;
    let st = state()?;
    let now = backend::db::now_micros();
    let failed = |e: backend::db::DbError| AppError::internal("reading verifications", &e);
    let services = backend::verify::services(&st.db).await.map_err(failed)?;
    let recent = backend::verify::recent(&st.db, 50, now)
        .await
        .map_err(failed)?;
    let days = backend::verify::per_day(&st.db, now - (DAYS - 1) * 86_400_000_000)
        .await
        .map_err(failed)?;
    Ok(VerifyFigures {
        services: services.into_iter().map(service_view).collect(),
        recent: recent
            .into_iter()
            .map(|v| VerificationView {
                sid: v.sid,
                service: v.service_name,
                masked: v.masked,
                country: v.country,
                status: v.status.as_str().to_owned(),
                checks: v.checks,
                sends: v.sends,
                created_at: v.created_at,
            })
            .collect(),
        days: days
            .into_iter()
            .rev()
            .map(|d| DayView {
                day: backend::consent::day_label(d.day),
                started: d.started,
                approved: d.approved,
                approved_per_mille: domain::verify::approved_per_mille(d.approved, d.started),
            })
            .collect(),
        simulating: st.simulated_phones.is_some(),
    })
}

/// Sets a service's code life (minutes), countries (comma-separated, empty: the geo
/// permissions) and hourly cap per country (empty: none). Audited.
#[server(endpoint = "set_verify_guards")]
pub async fn set_verify_guards(
    sid: String,
    lifetime_minutes: String,
    countries: String,
    hourly_cap: String,
) -> Result<ServiceView, AppError> {
    let user = require(Permission::ManageSettings, VERIFY).await?;
    let minutes: u32 = lifetime_minutes.trim().parse().map_err(|_| {
        AppError::invalid(
            "lifetime_minutes",
            "give the code's life in whole minutes, 2 to 1440",
        )
        .respond()
    })?;
    let cap = match hourly_cap.trim() {
        "" => None,
        n => Some(n.parse::<u32>().map_err(|_| {
            AppError::invalid(
                "hourly_cap",
                "give the cap as a whole number of codes, or leave it empty",
            )
            .respond()
        })?),
    };
    let guards = backend::verify::Guards {
        lifetime_seconds: minutes.saturating_mul(60),
        countries: countries.split(',').map(|c| c.trim().to_owned()).collect(),
        hourly_cap: cap,
    };
    let st = state()?;
    let settings = backend::settings::sending(&st.db)
        .await
        .map_err(|e| AppError::internal("reading the settings", &e))?;
    match backend::verify::set_guards(
        &st.db,
        &actor(&user),
        &sid,
        &guards,
        &settings,
        backend::db::now_micros(),
    )
    .await
    {
        Ok(Ok(Some(s))) => Ok(service_view(s)),
        Ok(Ok(None)) => Err(AppError::NotFound(format!("there is no service {sid}")).respond()),
        Ok(Err(reason)) => Err(AppError::invalid("guards", reason).respond()),
        Err(e) => Err(AppError::internal("saving a service's guards", &e)),
    }
}

/// A text a simulated phone received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedView {
    pub sid: String,
    pub from: Option<String>,
    pub body: String,
    pub status: String,
    pub at: Option<i64>,
}

/// What the simulated phone `to` received, newest first (admins, while simulating).
#[server(endpoint = "simulated_phone")]
pub async fn simulated_phone(to: String) -> Result<Vec<ReceivedView>, AppError> {
    require(Permission::ManageSettings, VERIFY).await?;
    let st = state()?;
    let Some(sim) = st.simulated_phones.clone() else {
        return Err(AppError::NotFound(
            "smsdesk sends through Twilio: there are no simulated phones".into(),
        )
        .respond());
    };
    if to.trim().is_empty() {
        return Ok(Vec::new());
    }
    let region = backend::settings::sending(&st.db)
        .await
        .map_err(|e| AppError::internal("reading the settings", &e))?
        .default_region;
    let number = domain::phone::PhoneNumber::parse(to.trim(), Some(&region)).map_err(|e| {
        AppError::invalid("to", format!("{:?} is not a phone number: {e}", to.trim())).respond()
    })?;
    Ok(sim
        .inbox(number.e164(), 50)
        .into_iter()
        .map(|m| ReceivedView {
            sid: m.sid,
            from: m.from.or(m.messaging_service_sid),
            body: m.body,
            status: m.status.as_str().to_owned(),
            at: m.date_created.map(|d| d.timestamp_micros()),
        })
        .collect())
}
