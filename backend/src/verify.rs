//! Two-factor codes (migration 0014): Verify services, verifications and their checks, for the
//! Verify-compatible API and the console's own second factor, with one set of rules
//! (`domain::verify`).
//!
//! A start writes, in one transaction, the verification (or finds the pending one for the number,
//! which keeps its code), the code's SMS through the single intake (template `two_factor_auth`,
//! category and priority two-factor, a validity of what is left of the code's life; consent, geo
//! permissions and budgets apply) and the send the limits count. Codes are never stored, logged
//! or returned: each is derived from its verification's random sid under the data key
//! ([`DataKey::verification_code`]) and kept as a keyed hash, compared in constant time.

use std::collections::BTreeMap;

use domain::phone::PhoneNumber;
use domain::sending::SendingSettings;
use domain::template::Category;
use domain::verify::{self, Status, VerifyError};
use serde::{Deserialize, Serialize};

use crate::audit::{self, Actor};
use crate::crypto::DataKey;
use crate::db::{Db, DbError, Tx};
use crate::intake::{Content, Intake, MAX_VALIDITY_SECONDS, Refusal, Submission};
use crate::outbox::Source;
use crate::settings::random_sid;
use crate::{on_db, on_tx};

/// The template every code goes out with (editable on the Templates page).
pub const TEMPLATE_KEY: &str = "two_factor_auth";
/// The console's own service's name.
pub const CONSOLE_SERVICE_NAME: &str = "smsdesk console";
const DAY: i64 = 86_400_000_000;

/// What a service is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Created through the Verify API by another service.
    Api,
    /// smsdesk's own: the codes of console sign-ins (to confirmed numbers only).
    ConsoleSignIn,
    /// smsdesk's own: the codes that confirm a number being added to an account.
    ConsoleEnrol,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Api => "api",
            Purpose::ConsoleSignIn => "console_sign_in",
            Purpose::ConsoleEnrol => "console_enrol",
        }
    }

    /// The name of smsdesk's own service for this purpose.
    fn console_name(self) -> &'static str {
        match self {
            Purpose::ConsoleEnrol => "smsdesk console numbers",
            _ => CONSOLE_SERVICE_NAME,
        }
    }
}

/// A Verify service and its guards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: i64,
    pub sid: String,
    pub friendly_name: String,
    pub code_length: u8,
    pub lifetime_seconds: u32,
    /// Countries (ISO 3166 alpha-2) codes may go to; empty: any the geo permissions allow.
    pub countries: Vec<String>,
    /// Codes per hour to one country; `None`: no cap.
    pub hourly_cap: Option<u32>,
    pub purpose: Purpose,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A service's guards as an admin sets them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guards {
    pub lifetime_seconds: u32,
    pub countries: Vec<String>,
    pub hourly_cap: Option<u32>,
}

/// One code sent for a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// `VL` + 32 hex.
    pub attempt_sid: String,
    pub at: i64,
    /// The message that carried the code.
    pub message_id: i64,
}

/// A verification as read now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub id: i64,
    pub sid: String,
    pub service_sid: String,
    /// E.164 (for the API caller that started it; the console shows `masked`).
    pub to: String,
    pub masked: String,
    pub country: String,
    pub channel: String,
    /// As of the read: a pending one past its life is `Expired`.
    pub status: Status,
    pub checks: u32,
    pub attempts: Vec<Attempt>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
}

/// Why a start, check, fetch or update did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Twilio Verify's own errors (60200, 60202, 60203, 20404, ...).
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// Intake refused the code's message (opted out, geo permissions, budget, template).
    #[error("{0}")]
    Refused(Refusal),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Db(e.into())
    }
}

/// Who a check is for: Twilio's `To` or `VerificationSid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    To(String),
    Sid(String),
}

impl Target {
    /// From a check's `To` and `VerificationSid` (60221 when neither is given).
    pub fn from_form(to: Option<String>, sid: Option<String>) -> Result<Target, VerifyError> {
        match (
            sid.filter(|s| !s.trim().is_empty()),
            to.filter(|t| !t.trim().is_empty()),
        ) {
            (Some(sid), _) => Ok(Target::Sid(sid.trim().to_owned())),
            (None, Some(to)) => Ok(Target::To(to)),
            (None, None) => Err(VerifyError::MissingTarget),
        }
    }
}

type ServiceRow = (
    i64,
    String,
    String,
    i64,
    i64,
    String,
    Option<i64>,
    String,
    String,
    i64,
    i64,
);
const SERVICE_COLUMNS: &str = "id, sid, friendly_name, code_length, lifetime_seconds, countries, \
     hourly_cap, purpose, created_by, created_at, updated_at";

fn service_of(r: ServiceRow) -> Result<Service, DbError> {
    let unreadable = |column: &'static str, value: String| DbError::Unreadable {
        table: "verify_services",
        id: r.0,
        column,
        value,
    };
    let purpose = match r.7.as_str() {
        "api" => Purpose::Api,
        "console_sign_in" => Purpose::ConsoleSignIn,
        "console_enrol" => Purpose::ConsoleEnrol,
        other => return Err(unreadable("purpose", other.to_owned())),
    };
    Ok(Service {
        id: r.0,
        sid: r.1,
        friendly_name: r.2,
        code_length: u8::try_from(r.3).map_err(|_| unreadable("code_length", r.3.to_string()))?,
        lifetime_seconds: u32::try_from(r.4)
            .map_err(|_| unreadable("lifetime_seconds", r.4.to_string()))?,
        countries: r
            .5
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        hourly_cap: r.6.map(|c| u32::try_from(c).unwrap_or(u32::MAX)),
        purpose,
        created_by: r.8,
        created_at: r.9,
        updated_at: r.10,
    })
}

/// Creates a service (`POST /v2/Services`), audited as `verify.service.create`. New services
/// start with the default life (10 minutes), the geo permissions' countries and the default
/// hourly cap per country.
pub async fn create_service(
    db: &Db,
    actor: &Actor,
    friendly_name: &str,
    code_length: u8,
    purpose: Purpose,
    now: i64,
) -> Result<Service, DbError> {
    let mut tx = db.begin().await?;
    let cap = Some(verify::DEFAULT_HOURLY_CAP_PER_COUNTRY);
    let service = insert_service(
        &mut tx,
        actor,
        friendly_name,
        code_length,
        purpose,
        cap,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(service)
}

async fn insert_service(
    tx: &mut Tx,
    actor: &Actor,
    friendly_name: &str,
    code_length: u8,
    purpose: Purpose,
    hourly_cap: Option<u32>,
    now: i64,
) -> Result<Service, DbError> {
    let sql = format!(
        "INSERT INTO verify_services (sid, friendly_name, code_length, lifetime_seconds, countries,
             hourly_cap, purpose, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, '', $5, $6, $7, $8, $8)
         RETURNING {SERVICE_COLUMNS}"
    );
    let row: ServiceRow = on_tx!(tx, |conn| sqlx::query_as(&sql)
        .bind(random_sid("VA"))
        .bind(friendly_name)
        .bind(i64::from(code_length))
        .bind(i64::from(verify::DEFAULT_LIFETIME_SECONDS))
        .bind(hourly_cap.map(i64::from))
        .bind(purpose.as_str())
        .bind(&actor.label)
        .bind(now)
        .fetch_one(conn)
        .await?);
    let service = service_of(row)?;
    audit::record(
        tx,
        actor,
        "verify.service.create",
        &service.sid,
        None,
        Some(serde_json::json!(service)),
    )
    .await?;
    Ok(service)
}

/// A service by its sid.
pub async fn service(db: &Db, sid: &str) -> Result<Option<Service>, DbError> {
    let sql = format!("SELECT {SERVICE_COLUMNS} FROM verify_services WHERE sid = $1");
    let row: Option<ServiceRow> = on_db!(db, |pool| sqlx::query_as(&sql)
        .bind(sid)
        .fetch_optional(pool)
        .await?);
    row.map(service_of).transpose()
}

/// Every service, oldest first.
pub async fn services(db: &Db) -> Result<Vec<Service>, DbError> {
    let sql = format!("SELECT {SERVICE_COLUMNS} FROM verify_services ORDER BY id");
    let rows: Vec<ServiceRow> = on_db!(db, |pool| sqlx::query_as(&sql).fetch_all(pool).await?);
    rows.into_iter().map(service_of).collect()
}

/// smsdesk's own service for `purpose` (console sign-in codes, or confirming a number being
/// added), created on first use: once across instances (a unique index on the purpose; the
/// instance that loses the race reads the winner's). Sign-in codes go only to confirmed numbers,
/// so that service has no hourly cap by default; the enrolment service has the default cap.
pub async fn console_service(db: &Db, purpose: Purpose, now: i64) -> Result<Service, DbError> {
    debug_assert!(purpose != Purpose::Api);
    let find = format!(
        "SELECT {SERVICE_COLUMNS} FROM verify_services WHERE purpose = $1 ORDER BY id LIMIT 1"
    );
    let read = || async {
        let row: Option<ServiceRow> = on_db!(db, |pool| sqlx::query_as(&find)
            .bind(purpose.as_str())
            .fetch_optional(pool)
            .await?);
        row.map(service_of).transpose()
    };
    if let Some(service) = read().await? {
        return Ok(service);
    }
    let cap = (purpose == Purpose::ConsoleEnrol).then_some(verify::DEFAULT_HOURLY_CAP_PER_COUNTRY);
    let mut tx = db.begin().await?;
    let created = insert_service(
        &mut tx,
        &Actor::system(),
        purpose.console_name(),
        verify::DEFAULT_CODE_LENGTH,
        purpose,
        cap,
        now,
    )
    .await;
    match created {
        Ok(service) => {
            tx.commit().await?;
            Ok(service)
        }
        Err(DbError::Query(sqlx::Error::Database(e))) if e.is_unique_violation() => {
            drop(tx);
            read().await?.ok_or(DbError::Unreadable {
                table: "verify_services",
                id: 0,
                column: "purpose",
                value: purpose.as_str().to_owned(),
            })
        }
        Err(e) => Err(e),
    }
}

/// Checks guards as an admin gives them: the life (2 minutes to 24 hours), known countries
/// allowed by the geo permissions, a cap from 1 to a million.
pub fn validate_guards(guards: &Guards, settings: &SendingSettings) -> Result<Guards, String> {
    verify::lifetime_seconds(guards.lifetime_seconds)?;
    let mut countries = Vec::new();
    for c in &guards.countries {
        let c = c.trim().to_ascii_uppercase();
        if c.is_empty() {
            continue;
        }
        if !domain::phone::is_known_region(&c) {
            return Err(format!(
                "{c:?} is not a country code (ISO 3166, like US or AU)"
            ));
        }
        if !settings.allowed_countries.contains(&c) {
            return Err(format!(
                "{c} is outside the geo permissions ({}): an admin adds it in Settings first",
                settings.allowed_countries.join(", ")
            ));
        }
        if !countries.contains(&c) {
            countries.push(c);
        }
    }
    if let Some(cap) = guards.hourly_cap
        && !(1..=verify::MAX_HOURLY_CAP_PER_COUNTRY).contains(&cap)
    {
        return Err(format!(
            "the hourly cap per country is from 1 to {} codes (leave it empty for none)",
            verify::MAX_HOURLY_CAP_PER_COUNTRY
        ));
    }
    Ok(Guards {
        lifetime_seconds: guards.lifetime_seconds,
        countries,
        hourly_cap: guards.hourly_cap,
    })
}

/// Sets a service's code life, countries and hourly cap; audited as `verify.service.update`.
/// `Ok(Err(reason))` for guards that do not validate, `Ok(Ok(None))` for no such service.
pub async fn set_guards(
    db: &Db,
    actor: &Actor,
    sid: &str,
    guards: &Guards,
    settings: &SendingSettings,
    now: i64,
) -> Result<Result<Option<Service>, String>, DbError> {
    let guards = match validate_guards(guards, settings) {
        Ok(g) => g,
        Err(e) => return Ok(Err(e)),
    };
    let mut tx = db.begin().await?;
    let select = format!("SELECT {SERVICE_COLUMNS} FROM verify_services WHERE sid = $1");
    let before: Option<ServiceRow> = on_tx!(&mut tx, |conn| sqlx::query_as(&select)
        .bind(sid)
        .fetch_optional(conn)
        .await?);
    let Some(before) = before.map(service_of).transpose()? else {
        return Ok(Ok(None));
    };
    let update = format!(
        "UPDATE verify_services SET lifetime_seconds = $1, countries = $2, hourly_cap = $3, updated_at = $4
         WHERE id = $5 RETURNING {SERVICE_COLUMNS}"
    );
    let row: ServiceRow = on_tx!(&mut tx, |conn| sqlx::query_as(&update)
        .bind(i64::from(guards.lifetime_seconds))
        .bind(guards.countries.join(","))
        .bind(guards.hourly_cap.map(i64::from))
        .bind(now)
        .bind(before.id)
        .fetch_one(conn)
        .await?);
    let after = service_of(row)?;
    audit::record(
        &mut tx,
        actor,
        "verify.service.update",
        &after.sid,
        Some(serde_json::json!(before)),
        Some(serde_json::json!(after)),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(Some(after)))
}

type VerificationRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
);
const VERIFICATION_COLUMNS: &str = "v.id, v.sid, s.sid, v.to_enc, v.masked, v.country, v.channel, \
     v.status, v.code_hash, v.checks, v.created_at, v.updated_at, v.expires_at";

/// A verification as stored, before its attempts are read.
struct Stored {
    verification: Verification,
    code_hash: String,
}

fn stored_of(key: &DataKey, r: VerificationRow, now: i64) -> Result<Stored, DbError> {
    let status = Status::parse(&r.7).ok_or_else(|| DbError::Unreadable {
        table: "verifications",
        id: r.0,
        column: "status",
        value: r.7.clone(),
    })?;
    let to = key.decrypt(&r.3).map_err(|_| DbError::Undecryptable {
        what: "a verification's number",
    })?;
    Ok(Stored {
        verification: Verification {
            id: r.0,
            sid: r.1,
            service_sid: r.2,
            to,
            masked: r.4,
            country: r.5,
            channel: r.6,
            status: status.at(r.12, now),
            checks: u32::try_from(r.9).unwrap_or(u32::MAX),
            attempts: Vec::new(),
            created_at: r.10,
            updated_at: r.11,
            expires_at: r.12,
        },
        code_hash: r.8,
    })
}

/// Starts, checks and reads verifications. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Verifier {
    db: Db,
    key: DataKey,
    intake: Intake,
}

/// A verification's sid: `VE` and 128 bits read from the operating system's random source
/// (its code is derived from them, [`DataKey::verification_code`]).
fn verification_sid() -> String {
    use rand::TryRngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random source");
    format!("VE{}", hex::encode(bytes))
}

fn not_found(what: &str) -> VerifyError {
    VerifyError::NotFound(what.to_owned())
}

impl Verifier {
    pub fn new(db: Db, key: DataKey, intake: Intake) -> Verifier {
        Verifier { db, key, intake }
    }

    /// The service `sid` when it is for `purpose` (the Verify API never reaches smsdesk's own
    /// services, nor the console an API key's); 20404 otherwise.
    async fn service_for(&self, sid: &str, purpose: Purpose) -> Result<Service, Failure> {
        match service(&self.db, sid).await? {
            Some(s) if s.purpose == purpose => Ok(s),
            _ => Err(not_found(&format!("/v2/Services/{sid}")).into()),
        }
    }

    /// The pending verification of a number (id, sid, end of life), as `conn` sees it.
    async fn pending_of(
        &self,
        tx: Option<&mut Tx>,
        service: &Service,
        to_hash: &str,
        now: i64,
    ) -> Result<Option<(i64, String, i64)>, DbError> {
        const SQL: &str = "SELECT id, sid, expires_at FROM verifications
              WHERE service_id = $1 AND to_hash = $2 AND status = 'pending' AND expires_at > $3
              ORDER BY created_at DESC LIMIT 1";
        Ok(match tx {
            Some(tx) => on_tx!(tx, |conn| sqlx::query_as(SQL)
                .bind(service.id)
                .bind(to_hash)
                .bind(now)
                .fetch_optional(conn)
                .await?),
            None => on_db!(&self.db, |pool| sqlx::query_as(SQL)
                .bind(service.id)
                .bind(to_hash)
                .bind(now)
                .fetch_optional(pool)
                .await?),
        })
    }

    /// Starts a verification of `to` by `channel` (`POST /v2/Services/{VA}/Verifications`), or
    /// sends the pending one's code again, at `now`, on a service for `purpose`. The code's
    /// message is checked by intake first (outside any transaction, so starts waiting for their
    /// turn hold no connection another needs), then written as `source` in the transaction that
    /// records the verification and its send; if another start changed the number's pending
    /// verification meanwhile, it is prepared again.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        &self,
        settings: &SendingSettings,
        purpose: Purpose,
        service_sid: &str,
        to: Option<&str>,
        channel: Option<&str>,
        source: &Source,
        now: i64,
    ) -> Result<Verification, Failure> {
        // E.164 only, as Twilio takes it: `+` and the digits, nothing else.
        let number = to
            .map(str::trim)
            .and_then(|t| PhoneNumber::parse(t, None).ok().filter(|n| n.e164() == t))
            .ok_or_else(|| VerifyError::invalid("To"))?;
        let channel = verify::channel(channel)?;
        let service = self.service_for(service_sid, purpose).await?;
        let to_hash = self.key.lookup_hash(number.e164());
        let country = number.region().to_owned();
        let template = crate::templates::get(&self.db, TEMPLATE_KEY)
            .await
            .map_err(|e| match e {
                crate::templates::TemplateStoreError::Db(e) => Failure::Db(e),
                other => Failure::Refused(template_refusal(&other.to_string())),
            })?
            .ok_or_else(|| {
                Failure::Refused(template_refusal(
                    "there is no two_factor_auth template: create it on the Templates page with a {code} variable",
                ))
            })?
            .template;
        if template.variable("code").is_none() {
            return Err(Failure::Refused(template_refusal(
                "the two_factor_auth template has no {code} variable: add it on the Templates page",
            )));
        }

        let mut seen = self.pending_of(None, &service, &to_hash, now).await?;
        for _ in 0..3 {
            let (existing, sid, expires_at) = match &seen {
                Some((id, sid, expires_at)) => (Some(*id), sid.clone(), *expires_at),
                None => (
                    None,
                    verification_sid(),
                    now + i64::from(service.lifetime_seconds) * 1_000_000,
                ),
            };
            let code = self.key.verification_code(&sid, service.code_length);
            let mut values = BTreeMap::new();
            for (name, value) in [
                ("code", code.clone()),
                (
                    "minutes",
                    verify::minutes_left(expires_at, now).max(1).to_string(),
                ),
                ("service", service.friendly_name.clone()),
            ] {
                if template.variable(name).is_some() {
                    values.insert(name.to_owned(), value);
                }
            }
            let submission = Submission {
                to: number.e164().to_owned(),
                content: Content::Template {
                    key: TEMPLATE_KEY.to_owned(),
                    variables: values,
                },
                category: Some(Category::TwoFactor),
                sender: None,
                validity_seconds: Some(
                    verify::seconds_left(expires_at, now).clamp(1, MAX_VALIDITY_SECONDS),
                ),
            };
            let prepared = self
                .intake
                .check(settings, source, vec![submission])
                .await?
                .pop()
                .expect("one submission, one result")
                .map_err(Failure::Refused)?;

            let mut tx = self.db.begin().await?;
            if matches!(tx, Tx::Postgres(_)) {
                // Starts for one service take turns, so two at once cannot both pass the
                // limits or both create a verification for one number (SQLite has one writer).
                on_tx!(&mut tx, |conn| sqlx::query(
                    "SELECT id FROM verify_services WHERE id = $1 FOR UPDATE"
                )
                .bind(service.id)
                .execute(conn)
                .await?
                .rows_affected());
            }
            let now_pending = self
                .pending_of(Some(&mut tx), &service, &to_hash, now)
                .await?;
            if now_pending.as_ref().map(|p| &p.1) != seen.as_ref().map(|p| &p.1) {
                // Another start created or ended it meanwhile: prepare the text again.
                seen = now_pending;
                continue;
            }
            let (sends, country_sends): (i64, i64) = on_tx!(&mut tx, |conn| sqlx::query_as(
                "SELECT
                     (SELECT COUNT(*) FROM verification_sends
                       WHERE service_id = $1 AND to_hash = $2 AND sent_at > $3),
                     (SELECT COUNT(*) FROM verification_sends
                       WHERE service_id = $1 AND country = $4 AND sent_at > $5)"
            )
            .bind(service.id)
            .bind(&to_hash)
            .bind(now - verify::SEND_WINDOW_MICROS)
            .bind(&country)
            .bind(now - verify::CAP_WINDOW_MICROS)
            .fetch_one(conn)
            .await?);
            verify::may_send_to_country(
                &country,
                &service.countries,
                service.hourly_cap,
                u32::try_from(country_sends).unwrap_or(u32::MAX),
            )?;
            verify::may_send(u32::try_from(sends).unwrap_or(u32::MAX))?;
            let verification_id = match existing {
                Some(id) => {
                    on_tx!(&mut tx, |conn| sqlx::query(
                        "UPDATE verifications SET updated_at = $1 WHERE id = $2"
                    )
                    .bind(now)
                    .bind(id)
                    .execute(conn)
                    .await?
                    .rows_affected());
                    id
                }
                None => on_tx!(&mut tx, |conn| {
                    sqlx::query_scalar::<_, i64>(
                    "INSERT INTO verifications (sid, service_id, to_enc, to_hash, masked, country,
                         channel, status, code_hash, checks, created_at, updated_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, 0, $9, $9, $10)
                     RETURNING id"
                )
                .bind(&sid)
                .bind(service.id)
                .bind(self.key.encrypt(number.e164()))
                .bind(&to_hash)
                .bind(number.masked())
                .bind(&country)
                .bind(channel)
                .bind(self.key.code_hash(&sid, &code))
                .bind(now)
                .bind(expires_at)
                .fetch_one(conn)
                .await?
                }),
            };
            let message = self
                .intake
                .write_in(&mut tx, vec![prepared], source, now)
                .await?
                .pop()
                .expect("one message, one result")
                .map_err(Failure::Refused)?;
            on_tx!(&mut tx, |conn| sqlx::query(
                "INSERT INTO verification_sends (verification_id, service_id, to_hash, country,
                     attempt_sid, message_id, sent_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)"
            )
            .bind(verification_id)
            .bind(service.id)
            .bind(&to_hash)
            .bind(&country)
            .bind(random_sid("VL"))
            .bind(message.id)
            .bind(now)
            .execute(conn)
            .await?
            .rows_affected());
            tx.commit().await?;
            self.intake.written();
            tracing::info!(verification = %sid, message_id = message.id, "verification code sent");
            return self
                .read(&service, &sid, now)
                .await?
                .ok_or_else(|| Failure::Verify(not_found(&sid)));
        }
        // Three rounds lost to other starts for the same number: as busy as Twilio's 20429.
        tracing::warn!(service = %service.sid, "verification start: the number's verification kept changing");
        Err(VerifyError::MaxSends.into())
    }

    /// Checks a code (`POST /v2/Services/{VA}/VerificationCheck`) at `now`: the verification
    /// approved, or still pending for a wrong code; 404 for one that is not pending, 60202 (and
    /// the verification ends) past five checks.
    pub async fn check(
        &self,
        settings: &SendingSettings,
        purpose: Purpose,
        service_sid: &str,
        target: Target,
        code: &str,
        now: i64,
    ) -> Result<Verification, Failure> {
        let service = self.service_for(service_sid, purpose).await?;
        let path = format!("/v2/Services/{service_sid}/VerificationCheck");
        let found = match &target {
            Target::Sid(sid) => self.find(&service, sid, now).await?,
            Target::To(to) => {
                let number = PhoneNumber::parse(to.trim(), Some(&settings.default_region))
                    .map_err(|_| VerifyError::invalid("To"))?;
                self.pending_for(&service, number.e164(), now).await?
            }
        };
        let Some(stored) = found.filter(|s| s.verification.status == Status::Pending) else {
            return Err(not_found(&path).into());
        };
        let v = stored.verification;
        // Counted first and atomically: two checks at once cannot both be the fifth.
        let counted: Option<i64> = {
            let _turn = self.db.write_turn().await;
            on_db!(&self.db, |pool| sqlx::query_scalar(
                "UPDATE verifications SET checks = checks + 1, updated_at = $1
                  WHERE id = $2 AND status = 'pending' AND checks < $3 AND expires_at > $1
                  RETURNING checks"
            )
            .bind(now)
            .bind(v.id)
            .bind(i64::from(verify::MAX_CHECKS))
            .fetch_optional(pool)
            .await?)
        };
        if counted.is_none() {
            // Out of checks (or it changed meanwhile): a pending one past five checks ends now.
            let ended = self
                .set_status(v.id, Status::MaxAttemptsReached, now, true)
                .await?;
            return Err(if ended || v.checks >= verify::MAX_CHECKS {
                VerifyError::MaxChecks.into()
            } else {
                not_found(&path).into()
            });
        }
        if !self.key.code_matches(&v.sid, code, &stored.code_hash) {
            tracing::info!(verification = %v.sid, "verification check: wrong code");
            return Ok(self.read(&service, &v.sid, now).await?.unwrap_or(v));
        }
        if !self.set_status(v.id, Status::Approved, now, false).await? {
            return Err(not_found(&path).into());
        }
        tracing::info!(verification = %v.sid, "verification approved");
        Ok(self
            .read(&service, &v.sid, now)
            .await?
            .ok_or_else(|| not_found(&path))?)
    }

    /// A pending verification (`GET /v2/Services/{VA}/Verifications/{VE}`); 404 for any other.
    pub async fn fetch(
        &self,
        purpose: Purpose,
        service_sid: &str,
        sid: &str,
        now: i64,
    ) -> Result<Verification, Failure> {
        let path = format!("/v2/Services/{service_sid}/Verifications/{sid}");
        let service = self
            .service_for(service_sid, purpose)
            .await
            .map_err(|_| not_found(&path))?;
        self.read(&service, sid, now)
            .await?
            .filter(|v| v.status == Status::Pending)
            .ok_or_else(|| not_found(&path).into())
    }

    /// Approves or cancels a pending verification (`POST .../Verifications/{VE}` with
    /// `Status`); 404 for one that is not pending.
    pub async fn update(
        &self,
        purpose: Purpose,
        service_sid: &str,
        sid: &str,
        status: Status,
        now: i64,
    ) -> Result<Verification, Failure> {
        let v = self.fetch(purpose, service_sid, sid, now).await?;
        if !self.set_status(v.id, status, now, false).await? {
            return Err(
                not_found(&format!("/v2/Services/{service_sid}/Verifications/{sid}")).into(),
            );
        }
        tracing::info!(verification = %sid, status = %status, "verification updated");
        let service = self.service_for(service_sid, purpose).await?;
        Ok(self
            .read(&service, sid, now)
            .await?
            .ok_or_else(|| not_found(sid))?)
    }

    /// Moves a pending verification to `status`; `false` when it was no longer pending (or,
    /// with `spent`, still had checks left).
    async fn set_status(
        &self,
        id: i64,
        status: Status,
        now: i64,
        spent: bool,
    ) -> Result<bool, DbError> {
        let _turn = self.db.write_turn().await;
        let sql = if spent {
            "UPDATE verifications SET status = $1, updated_at = $2
              WHERE id = $3 AND status = 'pending' AND checks >= $4"
        } else {
            "UPDATE verifications SET status = $1, updated_at = $2
              WHERE id = $3 AND status = 'pending' AND expires_at > $2 AND checks <= $4"
        };
        let changed = on_db!(&self.db, |pool| sqlx::query(sql)
            .bind(status.as_str())
            .bind(now)
            .bind(id)
            .bind(i64::from(verify::MAX_CHECKS))
            .execute(pool)
            .await?
            .rows_affected());
        Ok(changed == 1)
    }

    async fn find(
        &self,
        service: &Service,
        sid: &str,
        now: i64,
    ) -> Result<Option<Stored>, DbError> {
        let sql = format!(
            "SELECT {VERIFICATION_COLUMNS} FROM verifications v
               JOIN verify_services s ON s.id = v.service_id
              WHERE v.sid = $1 AND v.service_id = $2"
        );
        let row: Option<VerificationRow> = on_db!(&self.db, |pool| sqlx::query_as(&sql)
            .bind(sid)
            .bind(service.id)
            .fetch_optional(pool)
            .await?);
        row.map(|r| stored_of(&self.key, r, now)).transpose()
    }

    async fn pending_for(
        &self,
        service: &Service,
        e164: &str,
        now: i64,
    ) -> Result<Option<Stored>, DbError> {
        let sql = format!(
            "SELECT {VERIFICATION_COLUMNS} FROM verifications v
               JOIN verify_services s ON s.id = v.service_id
              WHERE v.service_id = $1 AND v.to_hash = $2
              ORDER BY v.created_at DESC LIMIT 1"
        );
        let row: Option<VerificationRow> = on_db!(&self.db, |pool| sqlx::query_as(&sql)
            .bind(service.id)
            .bind(self.key.lookup_hash(e164))
            .fetch_optional(pool)
            .await?);
        row.map(|r| stored_of(&self.key, r, now)).transpose()
    }

    /// A verification of `service` with its attempts, whatever its status.
    async fn read(
        &self,
        service: &Service,
        sid: &str,
        now: i64,
    ) -> Result<Option<Verification>, DbError> {
        let Some(stored) = self.find(service, sid, now).await? else {
            return Ok(None);
        };
        let mut v = stored.verification;
        v.attempts = attempts(&self.db, v.id).await?;
        Ok(Some(v))
    }
}

fn template_refusal(message: &str) -> Refusal {
    Refusal {
        code: crate::intake::RefusalCode::UnknownTemplate,
        field: "template".to_owned(),
        message: message.to_owned(),
        twilio_code: None,
    }
}

async fn attempts(db: &Db, verification_id: i64) -> Result<Vec<Attempt>, DbError> {
    let rows: Vec<(String, i64, i64)> = on_db!(db, |pool| sqlx::query_as(
        "SELECT attempt_sid, sent_at, message_id FROM verification_sends
          WHERE verification_id = $1 ORDER BY id"
    )
    .bind(verification_id)
    .fetch_all(pool)
    .await?);
    Ok(rows
        .into_iter()
        .map(|(attempt_sid, at, message_id)| Attempt {
            attempt_sid,
            at,
            message_id,
        })
        .collect())
}

/// A verification as the console lists it: never the number in full, never the code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    pub sid: String,
    pub service_name: String,
    pub masked: String,
    pub country: String,
    pub status: Status,
    pub checks: u32,
    pub sends: u32,
    pub created_at: i64,
    pub updated_at: i64,
}

/// sid, service name, masked, country, status, checks, sends, created, updated, expires.
type ListedRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
);

/// The newest verifications (at most `limit`), for the console.
pub async fn recent(db: &Db, limit: u32, now: i64) -> Result<Vec<Listed>, DbError> {
    let rows: Vec<ListedRow> = on_db!(db, |pool| sqlx::query_as(
        "SELECT v.sid, s.friendly_name, v.masked, v.country, v.status, v.checks,
                    (SELECT COUNT(*) FROM verification_sends x WHERE x.verification_id = v.id),
                    v.created_at, v.updated_at, v.expires_at
               FROM verifications v JOIN verify_services s ON s.id = v.service_id
              ORDER BY v.created_at DESC, v.id DESC LIMIT $1"
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?);
    rows.into_iter()
        .map(|r| {
            let status = Status::parse(&r.4).ok_or_else(|| DbError::Unreadable {
                table: "verifications",
                id: 0,
                column: "status",
                value: r.4.clone(),
            })?;
            Ok(Listed {
                sid: r.0,
                service_name: r.1,
                masked: r.2,
                country: r.3,
                status: status.at(r.9, now),
                checks: u32::try_from(r.5).unwrap_or(u32::MAX),
                sends: u32::try_from(r.6).unwrap_or(u32::MAX),
                created_at: r.7,
                updated_at: r.8,
            })
        })
        .collect()
}

/// Verifications started on one UTC day and how many of them were approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Day {
    /// Midnight UTC, µs.
    pub day: i64,
    pub started: u64,
    pub approved: u64,
}

/// Per UTC day from `from` (µs) on: verifications started and approved, oldest first.
pub async fn per_day(db: &Db, from: i64) -> Result<Vec<Day>, DbError> {
    let rows: Vec<(i64, i64, i64)> = on_db!(db, |pool| sqlx::query_as(
        "SELECT (created_at / 86400000000) * 86400000000 AS day, COUNT(*),
                SUM(CASE WHEN status = 'approved' THEN 1 ELSE 0 END)
           FROM verifications WHERE created_at >= $1
          GROUP BY 1 ORDER BY 1"
    )
    .bind(from / DAY * DAY)
    .fetch_all(pool)
    .await?);
    Ok(rows
        .into_iter()
        .map(|(day, started, approved)| Day {
            day,
            started: u64::try_from(started).unwrap_or(0),
            approved: u64::try_from(approved).unwrap_or(0),
        })
        .collect())
}
