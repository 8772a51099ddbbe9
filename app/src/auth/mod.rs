//! Who is signed in, and what they may do: sign-in, sign-out, changing one's own password (with
//! their pages, `login` and `account`), and the role check every server function and page makes on
//! the server.

pub mod account;
pub mod enrol;
pub mod login;
pub mod second;

use std::time::Duration;

use domain::access::{Permission, Role};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// A session ends after this long without a page load or a server call, so that a console left
/// open on an unattended desk signs itself out. The session store forgets it then too (the
/// server's session layer expires sessions after the same time).
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after its sign-in however busy it is, so that a stolen session
/// cookie is good for a working day at most.
pub const SESSION_MAX: Duration = Duration::from_secs(12 * 60 * 60);

/// The signed-in person, as the console knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub id: i64,
    pub email: String,
    pub role: Role,
}

impl SessionUser {
    pub fn can(&self, permission: Permission) -> bool {
        self.role.can(permission)
    }
}

#[cfg(feature = "ssr")]
pub(crate) mod server {
    use super::*;
    use crate::state::AppState;
    use tower_sessions::Session;

    pub(crate) const USER_ID: &str = "user_id";
    const EPOCH: &str = "epoch";
    /// When the session's sign-in happened (µs, UTC), for [`SESSION_MAX`].
    const SIGNED_IN_AT: &str = "signed_in_at";
    /// When the session was last used (µs, UTC), for [`SESSION_IDLE`].
    const LAST_SEEN: &str = "last_seen";
    /// How often an active session's last use is written down, which also pushes back the
    /// store's expiry: not on every request, to spare the store a write per click.
    const TOUCH_EVERY: i64 = 60_000_000;

    /// Where a request came from, as the server worked it out (the peer, or the last
    /// `X-Forwarded-For` entry when smsdesk runs behind a proxy); in every console request's
    /// extensions. Sign-in throttling counts failures by it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ClientAddress(pub std::net::IpAddr);

    fn client_address() -> Result<std::net::IpAddr, AppError> {
        use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<ClientAddress>().copied())
            .map(|ClientAddress(address)| address)
            .ok_or_else(|| {
                tracing::error!(
                    "the request has no client address: is the server's layer missing?"
                );
                AppError::Internal.respond()
            })
    }

    pub fn state() -> Result<AppState, AppError> {
        use_context::<AppState>().ok_or_else(|| {
            if use_context::<http::request::Parts>().is_some() {
                tracing::error!("AppState missing from the Leptos context");
            } else {
                // A page's data still loading after its request ended (the browser went on to
                // another page): Leptos has already dropped that request's context.
                tracing::debug!("a server function ran after its request ended");
            }
            AppError::Internal.respond()
        })
    }

    pub async fn session() -> Result<Session, AppError> {
        leptos_axum::extract::<Session>().await.map_err(|e| {
            tracing::error!(error = %e, "no session layer");
            AppError::Internal.respond()
        })
    }

    /// The user of this request's session, if it is still valid: the account exists, is not
    /// disabled, its password has not changed since sign-in, and the session has neither been
    /// idle too long nor lasted too long.
    pub async fn current_user() -> Result<Option<SessionUser>, AppError> {
        let session = session().await?;
        user_of_session(&state()?.db, &session, backend::db::now_micros())
            .await
            .map_err(|e| AppError::internal("checking the session", e.as_ref()))
    }

    /// The valid user of a session at time `now` (µs, UTC; the page guard calls this outside
    /// Leptos, tests pass any time). A session that has ended (idle for [`SESSION_IDLE`], signed
    /// in [`SESSION_MAX`] ago, password changed, account disabled) is deleted; one in use has its
    /// last use written down now and then.
    pub async fn user_of_session(
        db: &backend::db::Db,
        session: &Session,
        now: i64,
    ) -> Result<Option<SessionUser>, Box<dyn std::error::Error + Send + Sync>> {
        let (Some(id), Some(epoch)) = (
            session.get::<i64>(USER_ID).await?,
            session.get::<i64>(EPOCH).await?,
        ) else {
            return Ok(None);
        };
        let signed_in_at = session.get::<i64>(SIGNED_IN_AT).await?;
        let last_seen = session.get::<i64>(LAST_SEEN).await?;
        // A session without its times was started before they were kept: it ends like an old one.
        let (Some(signed_in_at), Some(last_seen)) = (signed_in_at, last_seen) else {
            session.flush().await?;
            return Ok(None);
        };
        if !is_current(signed_in_at, last_seen, now) {
            tracing::info!(user_id = id, "session expired");
            session.flush().await?;
            return Ok(None);
        }
        let user = match backend::users::get(db, id).await? {
            Some(u) if !u.disabled && u.session_epoch == epoch => u,
            _ => {
                session.flush().await?;
                return Ok(None);
            }
        };
        if now - last_seen >= TOUCH_EVERY {
            session.insert(LAST_SEEN, now).await?;
        }
        Ok(Some(SessionUser {
            id: user.id,
            email: user.email,
            role: user.role,
        }))
    }

    /// Whether a session signed in at `signed_in_at` and last used at `last_seen` may still be
    /// used at `now` (all µs, UTC).
    fn is_current(signed_in_at: i64, last_seen: i64, now: i64) -> bool {
        now - signed_in_at < SESSION_MAX.as_micros() as i64
            && now - last_seen < SESSION_IDLE.as_micros() as i64
    }

    /// The signed-in user if their role has `permission`; otherwise 401 or 403.
    pub async fn require(permission: Permission, action: &str) -> Result<SessionUser, AppError> {
        let user = current_user()
            .await?
            .ok_or_else(|| AppError::Unauthenticated.respond())?;
        if !user.can(permission) {
            tracing::warn!(user_id = user.id, role = %user.role, ?permission, "forbidden");
            return Err(AppError::Forbidden {
                role: user.role.label().to_owned(),
                action: action.to_owned(),
            }
            .respond());
        }
        Ok(user)
    }

    /// Starts a session for `user`, signed in at `now` (a new session id, so an id planted
    /// before sign-in is useless).
    pub async fn start_session(user: &backend::users::User, now: i64) -> Result<(), AppError> {
        let session = session().await?;
        begin_session(&session, user, now)
            .await
            .map_err(|e| AppError::internal("starting a session", &e))
    }

    /// Writes a sign-in at `now` into `session` (tests build sessions with it).
    pub async fn begin_session(
        session: &Session,
        user: &backend::users::User,
        now: i64,
    ) -> Result<(), tower_sessions::session::Error> {
        session.cycle_id().await?;
        session.insert(USER_ID, user.id).await?;
        session.insert(EPOCH, user.session_epoch).await?;
        session.insert(SIGNED_IN_AT, now).await?;
        session.insert(LAST_SEEN, now).await
    }

    /// Checks an e-mail and password the one way sign-in does: the client address's throttle
    /// first, then the capped password check and the account's run of failures (see
    /// `backend::users`). A refusal is [`AppError::SignIn`], worded alike for every reason a
    /// guesser could learn something from.
    pub async fn check_credentials(
        state: &AppState,
        email: &str,
        password: String,
        now: i64,
    ) -> Result<backend::users::User, AppError> {
        use backend::users::AuthError;
        use backend::users::throttle::Outcome;
        let address = client_address()?;
        let ticket = state
            .sign_in_throttle
            .begin(address, email, now)
            .map_err(|throttled| {
                tracing::warn!(%address, "sign-in refused: too many failures from this address");
                AppError::Throttled(throttled.to_string()).respond()
            })?;
        let result = backend::users::authenticate(
            &state.db,
            &state.password_checks,
            email,
            secrecy::SecretString::from(password),
            now,
            ticket.charge,
        )
        .await;
        let outcome = match &result {
            Ok(_) | Err(AuthError::Disabled) => Outcome::RightPassword,
            Err(AuthError::InvalidCredentials | AuthError::Locked { .. }) => Outcome::Failed,
            Err(AuthError::Busy | AuthError::Db(_)) => Outcome::NotChecked,
        };
        state.sign_in_throttle.settle(ticket, outcome);
        result.map_err(|e| match e {
            AuthError::Db(e) => AppError::internal("checking a password", &e),
            AuthError::Busy => {
                tracing::warn!("sign-in refused: too many password checks at once");
                AppError::Busy.respond()
            }
            refused => {
                // The log says which; the answer does not.
                tracing::info!(%address, reason = ?refused, "sign-in refused");
                AppError::SignIn(refused.to_string()).respond()
            }
        })
    }

    pub fn actor(user: &SessionUser) -> backend::audit::Actor {
        backend::audit::Actor::user(user.id, &user.email)
    }
}

#[cfg(feature = "ssr")]
pub use server::{
    ClientAddress, actor, begin_session, current_user, require, state, user_of_session,
};

/// Who is signed in (`None` when nobody is).
#[server(endpoint = "whoami")]
pub async fn whoami() -> Result<Option<SessionUser>, AppError> {
    current_user().await
}

/// Signs in with an e-mail and password: done, or the second step (the SMS code, or adding a
/// phone when the role requires a second factor and the account has none).
#[server(endpoint = "login")]
pub async fn login(email: String, password: String) -> Result<second::SignInStep, AppError> {
    let state = state()?;
    let now = backend::db::now_micros();
    let user = server::check_credentials(&state, &email, password, now).await?;
    let step = second::server::after_password(&user, now).await?;
    if matches!(step, second::SignInStep::Done(_)) {
        tracing::info!(user_id = user.id, "signed in");
    }
    Ok(step)
}

/// Signs out: the session is deleted.
#[server(endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    let session = server::session().await?;
    session
        .flush()
        .await
        .map_err(|e| AppError::internal("ending a session", &e))
}

/// Changes the signed-in person's own password, given the current one (any role). The current
/// password is checked exactly as at sign-in (throttled, capped, counted), so a session left open
/// cannot be used to guess it. The change is audited as the user; their other sessions end, this
/// one goes on under a new session id.
#[server(endpoint = "change_own_password")]
pub async fn change_own_password(current: String, new: String) -> Result<(), AppError> {
    use backend::users::UserError;
    let user = current_user()
        .await?
        .ok_or_else(|| AppError::Unauthenticated.respond())?;
    let new = secrecy::SecretString::from(new);
    // The rules first: a new password that cannot be used costs no password check.
    backend::users::check_new_password(&new)
        .map_err(|e| AppError::invalid("new", e.to_string()).respond())?;
    let state = state()?;
    let now = backend::db::now_micros();
    let checked = server::check_credentials(&state, &user.email, current, now)
        .await
        .map_err(|e| match e {
            AppError::SignIn(_) => AppError::invalid(
                "current",
                format!(
                    "the current password is not right (after repeated failures it is not \
                     checked for up to {} minutes): type it again, or ask an admin to reset it",
                    backend::users::LOCK_FOR.as_secs() / 60
                ),
            )
            .respond(),
            other => other,
        })?;
    let changed = backend::users::set_password(&state.db, &actor(&user), checked.id, new)
        .await
        .map_err(|e| match e {
            UserError::WeakPassword => AppError::invalid("new", e.to_string()).respond(),
            e => AppError::internal("changing one's own password", &e),
        })?;
    server::start_session(&changed, now).await?;
    tracing::info!(user_id = changed.id, "changed own password");
    Ok(())
}
