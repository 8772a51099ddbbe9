//! Who is signed in, and what they may do: sign-in, sign-out and the role check every server
//! function and page makes on the server.

use domain::access::{Permission, Role};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

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
mod server {
    use super::*;
    use crate::state::AppState;
    use tower_sessions::Session;

    const USER_ID: &str = "user_id";
    const EPOCH: &str = "epoch";

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
    /// disabled, and its password has not changed since sign-in.
    pub async fn current_user() -> Result<Option<SessionUser>, AppError> {
        let session = session().await?;
        user_of_session(&state()?.db, &session)
            .await
            .map_err(|e| AppError::internal("checking the session", e.as_ref()))
    }

    /// The valid user of a session (the page guard calls this outside Leptos). A session that
    /// ended elsewhere (password changed, account disabled) is forgotten here too.
    pub async fn user_of_session(
        db: &backend::db::Db,
        session: &Session,
    ) -> Result<Option<SessionUser>, Box<dyn std::error::Error + Send + Sync>> {
        let (Some(id), Some(epoch)) = (
            session.get::<i64>(USER_ID).await?,
            session.get::<i64>(EPOCH).await?,
        ) else {
            return Ok(None);
        };
        match backend::users::get(db, id).await? {
            Some(u) if !u.disabled && u.session_epoch == epoch => Ok(Some(SessionUser {
                id: u.id,
                email: u.email,
                role: u.role,
            })),
            _ => {
                session.flush().await?;
                Ok(None)
            }
        }
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

    /// Starts a session for `user` (a new session id, so an id planted before sign-in is useless).
    pub async fn start_session(user: &backend::users::User) -> Result<(), AppError> {
        let session = session().await?;
        let write = async {
            session.cycle_id().await?;
            session.insert(USER_ID, user.id).await?;
            session.insert(EPOCH, user.session_epoch).await
        };
        write
            .await
            .map_err(|e| AppError::internal("starting a session", &e))
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
pub use server::{ClientAddress, actor, current_user, require, state, user_of_session};

/// Who is signed in (`None` when nobody is).
#[server(endpoint = "whoami")]
pub async fn whoami() -> Result<Option<SessionUser>, AppError> {
    current_user().await
}

/// Signs in with an e-mail and password.
#[server(endpoint = "login")]
pub async fn login(email: String, password: String) -> Result<SessionUser, AppError> {
    let state = state()?;
    let user =
        server::check_credentials(&state, &email, password, backend::db::now_micros()).await?;
    server::start_session(&user).await?;
    tracing::info!(user_id = user.id, "signed in");
    Ok(SessionUser {
        id: user.id,
        email: user.email,
        role: user.role,
    })
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
