//! The console's second factor: the sign-in step that asks for the SMS code (or a recovery code),
//! adding a mobile number to an account (confirmed by a code; recovery codes shown once), and the
//! roles an admin requires it of. Codes go out through the same verifications as the Verify API
//! (`backend::verify`, on smsdesk's own service) and the single intake.
//!
//! Between the password and the code the session holds a *pending* sign-in (its own keys, so no
//! page or server function treats it as signed in), for [`PENDING_LIFE`] at most.

use std::time::Duration;

use domain::access::Role;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::auth::SessionUser;
use crate::error::AppError;

/// How long a sign-in may wait between the password and the code.
pub const PENDING_LIFE: Duration = Duration::from_secs(10 * 60);
/// The pause before "send again" (and between enrolment codes).
pub const RESEND_PAUSE: Duration = Duration::from_secs(30);
/// Wrong recovery codes a pending sign-in takes before it must start again.
pub const MAX_RECOVERY_FAILURES: u32 = 5;

/// Where a sign-in stands after the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignInStep {
    /// Signed in.
    Done(SessionUser),
    /// A code went to the account's phone (shown masked): type it, or a recovery code.
    Code { masked: String },
    /// The role must use a second factor and the account has none yet: add a phone now.
    Enrol,
}

/// A user's second factor, for their account page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondFactorView {
    pub masked: Option<String>,
    pub confirmed_at: Option<i64>,
    pub recovery_left: u32,
    pub required: bool,
}

/// A number confirmed: the recovery codes (shown this once), and the user when the enrolment
/// finished a sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolled {
    pub recovery_codes: Vec<String>,
    pub signed_in: Option<SessionUser>,
}

#[cfg(feature = "ssr")]
pub(crate) mod server {
    use super::*;
    use crate::auth::server::{begin_session, session, state};
    use backend::outbox::Source;
    use backend::verify::{Failure, Purpose, Target};
    use domain::verify::{Status, VerifyError};
    use tower_sessions::Session;

    const PENDING_USER: &str = "pending_user_id";
    const PENDING_EPOCH: &str = "pending_epoch";
    const PENDING_AT: &str = "pending_at";
    const PENDING_VERIFICATION: &str = "pending_verification";
    const PENDING_SENT_AT: &str = "pending_sent_at";
    const PENDING_FAILURES: &str = "pending_failures";
    /// The user the pending verification was sent for (a session's sid is never another's).
    const PENDING_FOR: &str = "pending_for";
    /// Set only when the password step found a role that requires a phone and none on file:
    /// the one case a pending sign-in may add a phone.
    const PENDING_ENROL: &str = "pending_enrol";
    const ENROL_VERIFICATION: &str = "enrol_verification";
    const ENROL_SENT_AT: &str = "enrol_sent_at";

    fn session_error(e: tower_sessions::session::Error) -> AppError {
        AppError::internal("keeping a sign-in step in the session", &e)
    }

    fn db_error(e: backend::db::DbError) -> AppError {
        AppError::internal("the second factor", &e)
    }

    /// The messages intake answers for a code it would not send, as people read them.
    fn failure(e: Failure, field: &str) -> AppError {
        match e {
            Failure::Verify(VerifyError::MaxSends) => AppError::Throttled(
                "five codes went to this number in the last 10 minutes: wait a few minutes, then try again"
                    .into(),
            )
            .respond(),
            Failure::Verify(VerifyError::InvalidParameter(_)) => AppError::invalid(
                field,
                "that is not a mobile number: write it with its country code, like +61 412 345 678",
            )
            .respond(),
            Failure::Verify(e) => AppError::invalid(field, e.to_string()).respond(),
            Failure::Refused(r) => AppError::invalid(field, r.message).respond(),
            Failure::Db(e) => db_error(e),
        }
    }

    async fn console_service(
        db: &backend::db::Db,
        purpose: Purpose,
        now: i64,
    ) -> Result<String, AppError> {
        backend::verify::console_service(db, purpose, now)
            .await
            .map(|s| s.sid)
            .map_err(db_error)
    }

    async fn sending_settings(
        db: &backend::db::Db,
    ) -> Result<backend::settings::SendingSettings, AppError> {
        backend::settings::sending(db)
            .await
            .map_err(|e| AppError::internal("reading the settings", &e))
    }

    /// Sends a code to `e164` on smsdesk's own service for `purpose`; the verification's sid.
    async fn send_code(
        purpose: Purpose,
        e164: &str,
        now: i64,
        field: &str,
    ) -> Result<String, AppError> {
        let st = state()?;
        let settings = sending_settings(&st.db).await?;
        let service = console_service(&st.db, purpose, now).await?;
        st.verifier
            .start(
                &settings,
                purpose,
                &service,
                Some(e164),
                Some("sms"),
                &Source::System("sign_in".to_owned()),
                now,
            )
            .await
            .map(|v| v.sid)
            .map_err(|e| failure(e, field))
    }

    /// After the right password: signs in, or starts the second step when the account has a
    /// phone or its role requires one.
    pub async fn after_password(
        user: &backend::users::User,
        now: i64,
    ) -> Result<SignInStep, AppError> {
        let st = state()?;
        let phone = backend::second_factor::phone(&st.db, &st.key, user.id)
            .await
            .map_err(db_error)?;
        let required = backend::second_factor::required_roles(&st.db)
            .await
            .map_err(db_error)?
            .contains(&user.role);
        if phone.is_none() && !required {
            crate::auth::server::start_session(user, now).await?;
            return Ok(SignInStep::Done(SessionUser {
                id: user.id,
                email: user.email.clone(),
                role: user.role,
            }));
        }
        let session = session().await?;
        // A new id, and nothing of an earlier sign-in step (another user's verification, an
        // enrolment) carried over.
        session.cycle_id().await.map_err(session_error)?;
        session
            .remove_value(crate::auth::server::USER_ID)
            .await
            .map_err(session_error)?;
        clear_pending(&session).await?;
        let masked = match &phone {
            // The code first: a sign-in whose code could not go out leaves nothing pending.
            Some(phone) => {
                let sid = send_code(Purpose::ConsoleSignIn, phone, now, "code").await?;
                session
                    .insert(PENDING_VERIFICATION, &sid)
                    .await
                    .map_err(session_error)?;
                session
                    .insert(PENDING_FOR, user.id)
                    .await
                    .map_err(session_error)?;
                session
                    .insert(PENDING_SENT_AT, now)
                    .await
                    .map_err(session_error)?;
                Some(
                    domain::phone::PhoneNumber::parse(phone, None)
                        .map_or_else(|_| domain::redact::mask_numbers(phone), |n| n.masked()),
                )
            }
            None => {
                session
                    .insert(PENDING_ENROL, true)
                    .await
                    .map_err(session_error)?;
                None
            }
        };
        session
            .insert(PENDING_USER, user.id)
            .await
            .map_err(session_error)?;
        session
            .insert(PENDING_EPOCH, user.session_epoch)
            .await
            .map_err(session_error)?;
        session
            .insert(PENDING_AT, now)
            .await
            .map_err(session_error)?;
        session
            .insert(PENDING_FAILURES, 0u32)
            .await
            .map_err(session_error)?;
        match masked {
            Some(masked) => {
                tracing::info!(user_id = user.id, "sign-in: code sent");
                Ok(SignInStep::Code { masked })
            }
            None => {
                tracing::info!(
                    user_id = user.id,
                    "sign-in: the role requires a second factor; enrolling"
                );
                Ok(SignInStep::Enrol)
            }
        }
    }

    /// The user of a pending sign-in still within its life (same password, not disabled).
    pub async fn pending_user(
        session: &Session,
        now: i64,
    ) -> Result<Option<backend::users::User>, AppError> {
        let (Some(id), Some(epoch), Some(at)) = (
            session
                .get::<i64>(PENDING_USER)
                .await
                .map_err(session_error)?,
            session
                .get::<i64>(PENDING_EPOCH)
                .await
                .map_err(session_error)?,
            session
                .get::<i64>(PENDING_AT)
                .await
                .map_err(session_error)?,
        ) else {
            return Ok(None);
        };
        if now - at >= PENDING_LIFE.as_micros() as i64 {
            clear_pending(session).await?;
            return Ok(None);
        }
        let user = backend::users::get(&state()?.db, id)
            .await
            .map_err(|e| AppError::internal("reading a user", &e))?;
        Ok(user.filter(|u| !u.disabled && u.session_epoch == epoch))
    }

    async fn clear_pending(session: &Session) -> Result<(), AppError> {
        for key in [
            PENDING_USER,
            PENDING_EPOCH,
            PENDING_AT,
            PENDING_VERIFICATION,
            PENDING_FOR,
            PENDING_ENROL,
            PENDING_SENT_AT,
            PENDING_FAILURES,
            ENROL_VERIFICATION,
            ENROL_SENT_AT,
        ] {
            session.remove_value(key).await.map_err(session_error)?;
        }
        Ok(())
    }

    fn start_again() -> AppError {
        AppError::Unauthenticated.respond()
    }

    async fn finish(
        session: &Session,
        user: &backend::users::User,
        now: i64,
    ) -> Result<SessionUser, AppError> {
        clear_pending(session).await?;
        begin_session(session, user, now)
            .await
            .map_err(|e| AppError::internal("starting a session", &e))?;
        tracing::info!(user_id = user.id, "signed in with the second factor");
        Ok(SessionUser {
            id: user.id,
            email: user.email.clone(),
            role: user.role,
        })
    }

    pub async fn sign_in_code(code: &str, now: i64) -> Result<SessionUser, AppError> {
        let session = session().await?;
        let user = pending_user(&session, now).await?.ok_or_else(start_again)?;
        let st = state()?;
        if backend::second_factor::is_recovery_code(code) {
            if backend::second_factor::use_recovery_code(&st.db, &st.key, user.id, code, now)
                .await
                .map_err(db_error)?
            {
                tracing::info!(user_id = user.id, "sign-in with a recovery code");
                return finish(&session, &user, now).await;
            }
            let failures = session
                .get::<u32>(PENDING_FAILURES)
                .await
                .map_err(session_error)?
                .unwrap_or(0)
                + 1;
            tracing::info!(
                user_id = user.id,
                failures,
                "sign-in: a wrong recovery code"
            );
            if failures >= MAX_RECOVERY_FAILURES {
                clear_pending(&session).await?;
                return Err(AppError::SignIn(
                    "too many wrong codes: sign in again with your password".into(),
                )
                .respond());
            }
            session
                .insert(PENDING_FAILURES, failures)
                .await
                .map_err(session_error)?;
            return Err(AppError::invalid(
                "code",
                "that recovery code is not one of yours, or it was used already",
            )
            .respond());
        }
        let sid = session
            .get::<String>(PENDING_VERIFICATION)
            .await
            .map_err(session_error)?;
        let sent_for = session
            .get::<i64>(PENDING_FOR)
            .await
            .map_err(session_error)?;
        let (Some(sid), Some(sent_for)) = (sid, sent_for) else {
            return Err(start_again());
        };
        if sent_for != user.id {
            clear_pending(&session).await?;
            return Err(start_again());
        }
        let Ok(code) = domain::verify::checked_code(Some(code)) else {
            return Err(AppError::invalid(
                "code",
                "type the 6 digits of the code we texted you, or one of your recovery codes",
            )
            .respond());
        };
        let settings = sending_settings(&st.db).await?;
        let service = console_service(&st.db, Purpose::ConsoleSignIn, now).await?;
        let phone = backend::second_factor::phone(&st.db, &st.key, user.id)
            .await
            .map_err(db_error)?;
        match st
            .verifier
            .check(
                &settings,
                Purpose::ConsoleSignIn,
                &service,
                Target::Sid(sid),
                code,
                now,
            )
            .await
        {
            // Approved, for the number the account has now.
            Ok(v) if v.status == Status::Approved && phone.as_deref() == Some(v.to.as_str()) => {
                finish(&session, &user, now).await
            }
            Ok(v) if v.status == Status::Approved => {
                clear_pending(&session).await?;
                Err(start_again())
            }
            Ok(v) => {
                let left = domain::verify::MAX_CHECKS.saturating_sub(v.checks);
                tracing::info!(user_id = user.id, "sign-in: a wrong code");
                Err(AppError::invalid(
                    "code",
                    format!(
                        "that code is not right: check the latest text ({left} more {} before you must sign in again)",
                        if left == 1 { "try" } else { "tries" }
                    ),
                )
                .respond())
            }
            Err(Failure::Verify(VerifyError::MaxChecks | VerifyError::NotFound(_))) => {
                clear_pending(&session).await?;
                Err(AppError::SignIn(
                    "the code expired or had too many wrong tries: sign in again with your password"
                        .into(),
                )
                .respond())
            }
            Err(e) => Err(failure(e, "code")),
        }
    }

    /// Seconds left of the pause since `sent_at`, or 0.
    fn pause_left(sent_at: Option<i64>, now: i64) -> u64 {
        let pause = RESEND_PAUSE.as_micros() as i64;
        sent_at.map_or(0, |at| {
            u64::try_from((at + pause - now).max(0))
                .unwrap_or(0)
                .div_ceil(1_000_000)
        })
    }

    pub async fn resend(now: i64) -> Result<(), AppError> {
        let session = session().await?;
        let user = pending_user(&session, now).await?.ok_or_else(start_again)?;
        let sent_at = session
            .get::<i64>(PENDING_SENT_AT)
            .await
            .map_err(session_error)?;
        let wait = pause_left(sent_at, now);
        if wait > 0 {
            return Err(AppError::Throttled(format!(
                "a code went out a moment ago: wait {wait} seconds before asking for another"
            ))
            .respond());
        }
        let st = state()?;
        let phone = backend::second_factor::phone(&st.db, &st.key, user.id)
            .await
            .map_err(db_error)?
            .ok_or_else(start_again)?;
        let sid = send_code(Purpose::ConsoleSignIn, &phone, now, "code").await?;
        session
            .insert(PENDING_VERIFICATION, &sid)
            .await
            .map_err(session_error)?;
        session
            .insert(PENDING_FOR, user.id)
            .await
            .map_err(session_error)?;
        session
            .insert(PENDING_SENT_AT, now)
            .await
            .map_err(session_error)?;
        tracing::info!(user_id = user.id, "sign-in: code sent again");
        Ok(())
    }

    /// The user adding a phone: the signed-in one (who gives their password again), or a
    /// pending sign-in whose role requires a phone and whose account has none.
    async fn enrolling(
        session: &Session,
        password: Option<String>,
        now: i64,
    ) -> Result<(backend::users::User, bool), AppError> {
        let st = state()?;
        if let Some(user) = crate::auth::server::current_user().await? {
            if let Some(password) = password {
                crate::auth::server::check_credentials(&st, &user.email, password, now)
                    .await
                    .map_err(|e| match e {
                        AppError::SignIn(_) => {
                            AppError::invalid("password", "the password is not right").respond()
                        }
                        other => other,
                    })?;
            }
            let found = backend::users::get(&st.db, user.id)
                .await
                .map_err(|e| AppError::internal("reading a user", &e))?
                .ok_or_else(start_again)?;
            return Ok((found, false));
        }
        let user = pending_user(session, now).await?.ok_or_else(start_again)?;
        let may_enrol = session
            .get::<bool>(PENDING_ENROL)
            .await
            .map_err(session_error)?
            .unwrap_or(false);
        let has_phone = backend::second_factor::phone(&st.db, &st.key, user.id)
            .await
            .map_err(db_error)?
            .is_some();
        if !may_enrol || has_phone {
            return Err(start_again());
        }
        Ok((user, true))
    }

    pub async fn enrol_send(phone: &str, password: &str, now: i64) -> Result<String, AppError> {
        let session = session().await?;
        let signed_in = crate::auth::server::current_user().await?.is_some();
        if signed_in && password.is_empty() {
            return Err(AppError::invalid(
                "password",
                "give your password to change where sign-in codes go",
            )
            .respond());
        }
        let (user, _) = enrolling(&session, signed_in.then(|| password.to_owned()), now).await?;
        let wait = pause_left(
            session
                .get::<i64>(ENROL_SENT_AT)
                .await
                .map_err(session_error)?,
            now,
        );
        if wait > 0 {
            return Err(AppError::Throttled(format!(
                "a code went out a moment ago: wait {wait} seconds before asking for another"
            ))
            .respond());
        }
        let st = state()?;
        let region = sending_settings(&st.db).await?.default_region;
        let number = domain::phone::PhoneNumber::parse(phone, Some(&region)).map_err(|e| {
            AppError::invalid(
                "phone",
                format!("{:?} is not a phone number: {e}", phone.trim()),
            )
            .respond()
        })?;
        let sid = send_code(Purpose::ConsoleEnrol, number.e164(), now, "phone").await?;
        session
            .insert(ENROL_VERIFICATION, &sid)
            .await
            .map_err(session_error)?;
        session
            .insert(ENROL_SENT_AT, now)
            .await
            .map_err(session_error)?;
        tracing::info!(user_id = user.id, "second factor: confirmation code sent");
        Ok(number.masked())
    }

    pub async fn enrol_confirm(code: &str, now: i64) -> Result<Enrolled, AppError> {
        let session = session().await?;
        let (user, pending) = enrolling(&session, None, now).await?;
        let Some(sid) = session
            .get::<String>(ENROL_VERIFICATION)
            .await
            .map_err(session_error)?
        else {
            return Err(AppError::invalid("code", "send a code to your phone first").respond());
        };
        let code = domain::verify::checked_code(Some(code)).map_err(|_| {
            AppError::invalid("code", "type the 6 digits of the code we texted you").respond()
        })?;
        let st = state()?;
        let settings = sending_settings(&st.db).await?;
        let service = console_service(&st.db, Purpose::ConsoleEnrol, now).await?;
        let v = match st
            .verifier
            .check(
                &settings,
                Purpose::ConsoleEnrol,
                &service,
                Target::Sid(sid),
                code,
                now,
            )
            .await
        {
            Ok(v) if v.status == Status::Approved => v,
            Ok(_) => {
                return Err(AppError::invalid(
                    "code",
                    "that code is not right: check the latest text",
                )
                .respond());
            }
            Err(Failure::Verify(VerifyError::MaxChecks | VerifyError::NotFound(_))) => {
                let _: Option<String> = session
                    .remove(ENROL_VERIFICATION)
                    .await
                    .map_err(session_error)?;
                return Err(AppError::invalid(
                    "code",
                    "the code expired or had too many wrong tries: send a new one",
                )
                .respond());
            }
            Err(e) => return Err(failure(e, "code")),
        };
        let actor = backend::audit::Actor::user(user.id, &user.email);
        let recovery_codes =
            backend::second_factor::enrol(&st.db, &st.key, &actor, user.id, &v.to, now)
                .await
                .map_err(db_error)?;
        let _: Option<String> = session
            .remove(ENROL_VERIFICATION)
            .await
            .map_err(session_error)?;
        let signed_in = if pending {
            Some(finish(&session, &user, now).await?)
        } else {
            None
        };
        tracing::info!(user_id = user.id, "second factor: phone confirmed");
        Ok(Enrolled {
            recovery_codes,
            signed_in,
        })
    }
}

/// The SMS code (or a recovery code) of a sign-in started with the password.
#[server(endpoint = "sign_in_code")]
pub async fn sign_in_code(code: String) -> Result<SessionUser, AppError> {
    server::sign_in_code(code.trim(), backend::db::now_micros()).await
}

/// Sends the pending sign-in's code again (the same code while it lives), after a pause.
#[server(endpoint = "resend_sign_in_code")]
pub async fn resend_sign_in_code() -> Result<(), AppError> {
    server::resend(backend::db::now_micros()).await
}

/// Sends a confirmation code to the mobile number being added; the number, masked. Signed in,
/// the password is asked for again; signing in to a role that requires a second factor (and no
/// phone on file), it was just given and `password` is empty.
#[server(endpoint = "enrol_phone")]
pub async fn enrol_phone(phone: String, password: String) -> Result<String, AppError> {
    server::enrol_send(&phone, &password, backend::db::now_micros()).await
}

/// Confirms the number being added with its code: the recovery codes, shown this once.
#[server(endpoint = "confirm_phone")]
pub async fn confirm_phone(code: String) -> Result<Enrolled, AppError> {
    server::enrol_confirm(code.trim(), backend::db::now_micros()).await
}

/// The signed-in user's second factor.
#[server(endpoint = "second_factor")]
pub async fn second_factor() -> Result<SecondFactorView, AppError> {
    let user = crate::auth::server::current_user()
        .await?
        .ok_or_else(|| AppError::Unauthenticated.respond())?;
    let st = crate::auth::server::state()?;
    let s = backend::second_factor::standing(&st.db, user.id, user.role)
        .await
        .map_err(|e| AppError::internal("reading the second factor", &e))?;
    Ok(SecondFactorView {
        masked: s.masked,
        confirmed_at: s.confirmed_at,
        recovery_left: s.recovery_left,
        required: s.required,
    })
}

/// Removes the signed-in user's phone and recovery codes, given their password; refused while
/// their role requires a second factor.
#[server(endpoint = "remove_second_factor")]
pub async fn remove_second_factor(password: String) -> Result<(), AppError> {
    let user = crate::auth::server::current_user()
        .await?
        .ok_or_else(|| AppError::Unauthenticated.respond())?;
    let st = crate::auth::server::state()?;
    let now = backend::db::now_micros();
    let required = backend::second_factor::required_roles(&st.db)
        .await
        .map_err(|e| AppError::internal("reading the second factor", &e))?
        .contains(&user.role);
    if required {
        return Err(AppError::invalid(
            "password",
            format!(
                "your role ({}) must sign in with a second factor: add another number instead",
                user.role.label()
            ),
        )
        .respond());
    }
    crate::auth::server::check_credentials(&st, &user.email, password, now)
        .await
        .map_err(|e| match e {
            AppError::SignIn(_) => {
                AppError::invalid("password", "the password is not right").respond()
            }
            other => other,
        })?;
    backend::second_factor::remove(&st.db, &crate::auth::actor(&user), user.id)
        .await
        .map_err(|e| AppError::internal("removing the second factor", &e))?;
    Ok(())
}

/// The roles that must sign in with a second factor (admins).
#[server(endpoint = "second_factor_roles")]
pub async fn second_factor_roles() -> Result<Vec<Role>, AppError> {
    crate::auth::require(domain::access::Permission::ManageUsers, "manage users").await?;
    let st = crate::auth::server::state()?;
    backend::second_factor::required_roles(&st.db)
        .await
        .map_err(|e| AppError::internal("reading the second factor", &e))
}

/// Sets the roles that must sign in with a second factor (admins; audited). `roles`: their
/// names, comma-separated (empty: none).
#[server(endpoint = "set_second_factor_roles")]
pub async fn set_second_factor_roles(roles: String) -> Result<Vec<Role>, AppError> {
    use std::str::FromStr;
    let user =
        crate::auth::require(domain::access::Permission::ManageUsers, "manage users").await?;
    let parsed: Vec<Role> = roles
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| {
            Role::from_str(r)
                .map_err(|_| AppError::invalid("roles", format!("{r:?} is not a role")).respond())
        })
        .collect::<Result<_, _>>()?;
    let st = crate::auth::server::state()?;
    backend::second_factor::set_required_roles(
        &st.db,
        &crate::auth::actor(&user),
        &parsed,
        backend::db::now_micros(),
    )
    .await
    .map_err(|e| AppError::internal("setting the second factor's roles", &e))?;
    backend::second_factor::required_roles(&st.db)
        .await
        .map_err(|e| AppError::internal("reading the second factor", &e))
}
