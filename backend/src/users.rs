//! People who sign in: accounts, argon2id passwords, lockout after repeated failures, and the
//! admin's changes (each one audited).

use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use domain::access::Role;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::audit::{self, Actor};
use crate::db::{Db, DbError, now_micros};
use crate::{on_db, on_tx};

/// Failed sign-ins in a row after which an account locks.
pub const LOCK_AFTER_FAILURES: i64 = 5;
/// How long a locked account stays locked.
pub const LOCK_FOR: Duration = Duration::from_secs(15 * 60);
/// Failed sign-ins after which each further attempt must wait a little longer.
pub const SLOW_AFTER_FAILURES: i64 = 2;
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// A user's id.
pub type UserId = i64;

/// An account as the console shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    /// When the account stays locked until (microseconds, UTC), if it is locked.
    pub locked_until: Option<i64>,
    pub session_epoch: i64,
    pub created_at: i64,
}

/// Why a user could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0:?} is not an e-mail address: write it as name@example.com")]
    BadEmail(String),
    #[error("the password is too short: use at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    #[error("a user with the e-mail {0} already exists")]
    EmailTaken(String),
    #[error("there is no user with id {0}")]
    NotFound(UserId),
    #[error("you cannot {0} your own account: ask another admin")]
    SelfChange(&'static str),
    #[error("could not hash the password")]
    Hash,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for UserError {
    fn from(e: sqlx::Error) -> Self {
        UserError::Db(DbError::Query(e))
    }
}

/// Why a sign-in failed. The message never says whether the e-mail exists.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("wrong e-mail or password")]
    InvalidCredentials,
    #[error(
        "too many failed sign-ins: this account is locked for {minutes} more minute(s); try again later or ask an admin"
    )]
    Locked { minutes: i64 },
    #[error("too many failed sign-ins: wait {seconds} second(s) before trying again")]
    TooFast { seconds: i64 },
    #[error("this account is disabled: ask an admin")]
    Disabled,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        AuthError::Db(DbError::Query(e))
    }
}

/// Normalises and checks an e-mail address (deliberately simple: one `@`, something on both sides).
pub fn normalize_email(email: &str) -> Result<String, UserError> {
    let email = email.trim().to_lowercase();
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.contains('@') && !domain.starts_with('.') && !domain.ends_with('.'));
    if ok {
        Ok(email)
    } else {
        Err(UserError::BadEmail(email))
    }
}

fn check_password(password: &SecretString) -> Result<(), UserError> {
    if password.expose_secret().chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::WeakPassword);
    }
    Ok(())
}

/// Hashes a password with argon2id, off the async executor (it takes tens of milliseconds).
pub async fn hash_password(password: SecretString) -> Result<String, UserError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|_| UserError::Hash)?;
        Argon2::default()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| UserError::Hash)
    })
    .await
    .map_err(|_| UserError::Hash)?
}

/// Checks a password against a stored hash, off the async executor. `None` checks against a
/// dummy hash, so that an unknown e-mail takes as long as a wrong password.
async fn verify_password(password: SecretString, hash: Option<String>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| {
            DUMMY
                .get_or_init(|| {
                    Argon2::default()
                        .hash_password(
                            b"not a password anyone has",
                            &SaltString::encode_b64(&[7; 16]).expect("valid salt"),
                        )
                        .expect("hashing a constant")
                        .to_string()
                })
                .clone()
        });
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok()
            && known
    })
    .await
    .unwrap_or(false)
}

/// A `users` row as stored; [`User`] once its role is parsed.
#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    email: String,
    role: String,
    disabled: bool,
    locked_until: Option<i64>,
    session_epoch: i64,
    created_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = sqlx::Error;

    fn try_from(r: UserRow) -> Result<Self, Self::Error> {
        Ok(User {
            id: r.id,
            email: r.email,
            role: r
                .role
                .parse()
                .map_err(|e: domain::access::UnknownRole| sqlx::Error::Decode(Box::new(e)))?,
            disabled: r.disabled,
            locked_until: r.locked_until,
            session_epoch: r.session_epoch,
            created_at: r.created_at,
        })
    }
}

/// A row with the password hash, for sign-in only.
#[derive(sqlx::FromRow)]
struct CredentialsRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
    failed_logins: i64,
}

const USER_COLUMNS: &str = "id, email, role, disabled, locked_until, session_epoch, created_at";

/// Creates a user. `actor` is the admin doing it (`None` for the command line and first start).
pub async fn create(
    db: &Db,
    actor: &Actor,
    email: &str,
    password: SecretString,
    role: Role,
) -> Result<User, UserError> {
    let email = normalize_email(email)?;
    check_password(&password)?;
    let hash = hash_password(password).await?;
    let now = now_micros();
    let mut tx = db.begin().await?;
    let inserted = on_tx!(&mut tx, |conn| {
        sqlx::query(
            "INSERT INTO users (email, password_hash, role, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (email) DO NOTHING RETURNING id",
        )
        .bind(&email)
        .bind(&hash)
        .bind(role.as_str())
        .bind(now)
        .fetch_optional(conn)
        .await?
        .map(|row| row.try_get::<i64, _>("id"))
        .transpose()?
    });
    let Some(id) = inserted else {
        return Err(UserError::EmailTaken(email));
    };
    audit::record(
        &mut tx,
        actor,
        "user.create",
        &format!("user:{id}"),
        None,
        Some(serde_json::json!({"email": email, "role": role})),
    )
    .await?;
    tx.commit().await?;
    get(db, id).await?.ok_or(UserError::NotFound(id))
}

/// One user by id.
pub async fn get(db: &Db, id: UserId) -> Result<Option<User>, UserError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    Ok(on_db!(db, |pool| {
        sqlx::query_as::<_, UserRow>(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?
            .map(User::try_from)
            .transpose()?
    }))
}

/// Every user, by e-mail.
pub async fn list(db: &Db) -> Result<Vec<User>, UserError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY email");
    Ok(on_db!(db, |pool| {
        sqlx::query_as::<_, UserRow>(&sql)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(User::try_from)
            .collect::<Result<Vec<_>, _>>()?
    }))
}

/// How many users exist (first start creates an admin when there are none).
pub async fn count(db: &Db) -> Result<i64, UserError> {
    Ok(on_db!(db, |pool| {
        sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(pool)
            .await?
            .try_get::<i64, _>("n")?
    }))
}

/// Checks an e-mail and password at time `now` (microseconds, UTC; the server passes the clock,
/// tests pass any time). After [`SLOW_AFTER_FAILURES`] failures in a row each further attempt
/// must wait (1 s, then 2 s, ...) before it is even checked; [`LOCK_AFTER_FAILURES`] lock the
/// account for [`LOCK_FOR`], and the count starts again once the lock is over. A success clears
/// the count.
///
/// Attempts that arrive together are all checked (each passed the lock check before any had
/// failed), so each failure is counted by one atomic `UPDATE` ([`record_failure`]), never by
/// writing back a count read earlier: forty wrong passwords at once count forty, and lock the
/// account just as forty in a row would.
pub async fn authenticate(
    db: &Db,
    email: &str,
    password: SecretString,
    now: i64,
) -> Result<User, AuthError> {
    let email = email.trim().to_lowercase();
    let row = on_db!(db, |pool| {
        sqlx::query_as::<_, CredentialsRow>(&format!(
            "SELECT {USER_COLUMNS}, password_hash, failed_logins FROM users WHERE email = $1"
        ))
        .bind(&email)
        .fetch_optional(pool)
        .await?
        .map(|r| Ok::<_, sqlx::Error>((User::try_from(r.user)?, r.password_hash, r.failed_logins)))
        .transpose()?
    });
    let Some((user, hash, failures)) = row else {
        verify_password(password, None).await;
        return Err(AuthError::InvalidCredentials);
    };
    if let Some(until) = user.locked_until.filter(|&until| until > now) {
        return Err(refusal(failures, until - now));
    }
    if !verify_password(password, Some(hash)).await {
        let (failures, locked_until) = record_failure(db, user.id, now).await?;
        return match locked_until.filter(|&until| until > now) {
            Some(until) if failures >= LOCK_AFTER_FAILURES => {
                if failures == LOCK_AFTER_FAILURES {
                    tracing::warn!(
                        user_id = user.id,
                        "account locked after repeated failed sign-ins"
                    );
                }
                Err(refusal(failures, until - now))
            }
            _ => Err(AuthError::InvalidCredentials),
        };
    }
    if user.disabled {
        return Err(AuthError::Disabled);
    }
    on_db!(db, |pool| {
        sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
            .bind(user.id)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(User {
        locked_until: None,
        ..user
    })
}

/// Why an attempt on an account that takes no attempt for another `wait` µs is refused.
fn refusal(failures: i64, wait: i64) -> AuthError {
    if failures >= LOCK_AFTER_FAILURES {
        AuthError::Locked {
            minutes: (wait + 59_999_999) / 60_000_000,
        }
    } else {
        AuthError::TooFast {
            seconds: (wait + 999_999) / 1_000_000,
        }
    }
}

/// Counts one failed sign-in at `now` in a single statement and returns the new count and
/// until when the account now waits or is locked. Both databases evaluate every `SET`
/// expression against the row as it was before this statement, and the row is locked while it
/// runs, so concurrent failures each add one.
async fn record_failure(db: &Db, id: UserId, now: i64) -> Result<(i64, Option<i64>), AuthError> {
    // The count after this failure: it starts again when a lock is over.
    let next = "(CASE WHEN failed_logins >= $3 AND locked_until <= $2 THEN 1 \
                 ELSE failed_logins + 1 END)";
    let sql = format!(
        "UPDATE users SET failed_logins = {next},
             locked_until = CASE
                 -- Locked: a failure that finishes after a later one never shortens the lock.
                 WHEN {next} >= $3 THEN
                     CASE WHEN locked_until > $2 + $4 THEN locked_until ELSE $2 + $4 END
                 -- Slowed: 1 s, then 2 s, 4 s... (see SLOW_AFTER_FAILURES).
                 WHEN {next} > $5 THEN
                     $2 + 1000000 * (1 << CAST({next} - $5 - 1 AS INTEGER))
                 ELSE NULL
             END
         WHERE id = $1
         RETURNING failed_logins, locked_until"
    );
    let row = on_db!(db, |pool| {
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(now)
            .bind(LOCK_AFTER_FAILURES)
            .bind(LOCK_FOR.as_micros() as i64)
            .bind(SLOW_AFTER_FAILURES)
            .fetch_one(pool)
            .await?;
        (
            row.try_get::<i64, _>("failed_logins")?,
            row.try_get::<Option<i64>, _>("locked_until")?,
        )
    });
    Ok(row)
}

/// Changes a user's role.
pub async fn set_role(db: &Db, actor: &Actor, id: UserId, role: Role) -> Result<User, UserError> {
    if actor.user_id == Some(id) {
        return Err(UserError::SelfChange("change the role of"));
    }
    let before = get(db, id).await?.ok_or(UserError::NotFound(id))?;
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3")
            .bind(role.as_str())
            .bind(now_micros())
            .bind(id)
            .execute(conn)
            .await?
            .rows_affected()
    });
    audit::record(
        &mut tx,
        actor,
        "user.role",
        &format!("user:{id}"),
        Some(serde_json::json!({"email": before.email, "role": before.role})),
        Some(serde_json::json!({"email": before.email, "role": role})),
    )
    .await?;
    tx.commit().await?;
    get(db, id).await?.ok_or(UserError::NotFound(id))
}

/// Disables or re-enables a user; disabling ends their sessions.
pub async fn set_disabled(
    db: &Db,
    actor: &Actor,
    id: UserId,
    disabled: bool,
) -> Result<User, UserError> {
    if actor.user_id == Some(id) {
        return Err(UserError::SelfChange("disable"));
    }
    let before = get(db, id).await?.ok_or(UserError::NotFound(id))?;
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(
            "UPDATE users SET disabled = $1, session_epoch = session_epoch + 1, updated_at = $2 WHERE id = $3",
        )
        .bind(disabled)
        .bind(now_micros())
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected()
    });
    audit::record(
        &mut tx,
        actor,
        if disabled {
            "user.disable"
        } else {
            "user.enable"
        },
        &format!("user:{id}"),
        Some(serde_json::json!({"email": before.email, "disabled": before.disabled})),
        Some(serde_json::json!({"email": before.email, "disabled": disabled})),
    )
    .await?;
    tx.commit().await?;
    get(db, id).await?.ok_or(UserError::NotFound(id))
}

/// Sets a new password (an admin's reset, or the user's own change); ends the user's other
/// sessions and clears any lock.
pub async fn set_password(
    db: &Db,
    actor: &Actor,
    id: UserId,
    password: SecretString,
) -> Result<User, UserError> {
    check_password(&password)?;
    let user = get(db, id).await?.ok_or(UserError::NotFound(id))?;
    let hash = hash_password(password).await?;
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(
            "UPDATE users SET password_hash = $1, session_epoch = session_epoch + 1,
             failed_logins = 0, locked_until = NULL, updated_at = $2 WHERE id = $3",
        )
        .bind(&hash)
        .bind(now_micros())
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected()
    });
    // The audit log says that the password changed, never what it is.
    audit::record(
        &mut tx,
        actor,
        "user.password",
        &format!("user:{id}"),
        None,
        Some(serde_json::json!({"email": user.email, "password": "changed"})),
    )
    .await?;
    tx.commit().await?;
    get(db, id).await?.ok_or(UserError::NotFound(id))
}

/// A new random password for first start and resets: 20 characters from an alphabet without
/// look-alikes.
pub fn generate_password() -> SecretString {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let password: String = (0..20)
        .map(|_| ALPHABET[(rng.next_u32() as usize) % ALPHABET.len()] as char)
        .collect();
    SecretString::from(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email("  Ops@SafeShipper.com ").unwrap(),
            "ops@safeshipper.com"
        );
        for bad in [
            "",
            "ops",
            "@x.com",
            "ops@",
            "ops@x",
            "o ps@x.com",
            "a@b@c.com",
            "a@.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn generated_passwords_are_long_enough() {
        let p = generate_password();
        assert_eq!(p.expose_secret().len(), 20);
        assert!(check_password(&p).is_ok());
        assert!(check_password(&SecretString::from("short")).is_err());
    }
}
