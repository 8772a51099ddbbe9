//! People who sign in: accounts, argon2id passwords, lockout after repeated failures, and the
//! admin's changes (each one audited).
//!
//! # Sign-in protection
//!
//! Password guessing is slowed in three places, each aimed at its own attacker:
//! * **Per address** ([`throttle::SignInThrottle`], in memory): an address (an IPv6 /64) may fail
//!   [`throttle::ADDRESS_FAILURES`] sign-ins in any [`throttle::ADDRESS_WINDOW`], whatever the
//!   e-mails; past that it is refused before any password is checked. This is what stops an
//!   attacker at one address.
//! * **Per account** ([`authenticate`], in the database, shared by every instance): a run of
//!   failures slows the account, then locks it ([`SLOW_AFTER_FAILURES`], [`LOCK_AFTER_FAILURES`],
//!   [`LOCK_FOR`]). This answers guessing spread over many addresses. But an address adds at
//!   most one failure to an account's run per address window ([`Charge`]), and a run is forgotten
//!   after [`FAILURES_FORGOTTEN_AFTER`] without a failure, which is shorter than that window: so
//!   an attacker at one address can neither slow nor lock an account for the people who use it.
//!   It takes three addresses taking turns (one turn per address per instance of smsdesk).
//! * **Per machine** ([`PasswordChecks`]): only a few argon2 checks (19 MiB each) run at once,
//!   with a short queue; beyond it a sign-in is answered "busy" at once instead of piling up.
//!
//! A slowed or locked account answers exactly like a wrong password ([`AuthError`]), and checks a
//! password just as long, as does an unknown e-mail: answers do not tell which e-mails exist or
//! which accounts are locked.

pub mod throttle;

use std::sync::Arc;
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
/// A run of failures on an account is forgotten once this long has passed without a new one
/// (after the account takes attempts again): a typo last week does not bring today's lock
/// closer, and an address that may add one failure per [`throttle::ADDRESS_WINDOW`] never adds
/// to the same run twice.
pub const FAILURES_FORGOTTEN_AFTER: Duration = LOCK_FOR;
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
    /// Until when the account takes no sign-in attempt (microseconds, UTC): it is slowed or
    /// locked while this is in the future. After a failure that imposes no wait it is that
    /// failure's time, which is how an old run of failures is forgotten.
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

/// What a refused sign-in says, whether the e-mail is unknown, the password wrong, or the account
/// slowed or locked: one message, so that nobody learns which e-mails exist or are locked. It
/// still tells a person who mistyped what to do.
pub const REFUSED: &str = "wrong e-mail or password (after repeated failures an account also \
     pauses for up to 15 minutes): check both and try again, or ask an admin to reset your password";

/// Why a sign-in failed. Only a disabled account (which takes the right password to learn of) or
/// a busy server answer differently from a wrong password.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown e-mail or wrong password.
    #[error("{}", REFUSED)]
    InvalidCredentials,
    /// The account takes no attempt before `until` (slowed or locked). Said like a wrong password.
    #[error("{}", REFUSED)]
    Locked { until: i64 },
    #[error("this account is disabled: ask an admin")]
    Disabled,
    /// Too many password checks are running and waiting already (see [`PasswordChecks`]).
    #[error("smsdesk is checking many sign-ins at once: try again in a few seconds")]
    Busy,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Whether a failed sign-in adds to the account's run of failures (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// It counts toward the account's delay and lock.
    Account,
    /// It counts only against the address it came from, which has added a failure to this
    /// account's run recently.
    AddressOnly,
}

/// Caps the argon2 checks running at once. Each takes 19 MiB and a core for tens of milliseconds,
/// and every one would otherwise get a thread of its own in the blocking pool: a burst of
/// sign-ins could exhaust memory and starve everything else. At most `at_once` checks run and
/// `queue` more wait their turn; any beyond that is refused at once ([`AuthError::Busy`]), so a
/// flood is answered quickly instead of piling up. Clones share the same cap.
#[derive(Debug, Clone)]
pub struct PasswordChecks {
    running: Arc<tokio::sync::Semaphore>,
    /// One permit per check running or waiting: `at_once + queue`.
    admitted: Arc<tokio::sync::Semaphore>,
}

impl PasswordChecks {
    /// At most `at_once` checks (at least one) at a time, `queue` more waiting.
    pub fn new(at_once: usize, queue: usize) -> PasswordChecks {
        let at_once = at_once.max(1);
        PasswordChecks {
            running: Arc::new(tokio::sync::Semaphore::new(at_once)),
            admitted: Arc::new(tokio::sync::Semaphore::new(at_once + queue)),
        }
    }

    /// One check per core, at most 4 (76 MiB), and a queue of 4 per running check: a check takes
    /// about 50 ms, so the last in the queue waits some 200 ms.
    pub fn for_this_machine() -> PasswordChecks {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let at_once = cores.clamp(1, 4);
        PasswordChecks::new(at_once, 4 * at_once)
    }

    /// Checks `password` against `hash` (or against a dummy hash when `None`, so that an unknown
    /// e-mail takes as long as a wrong password) once a slot is free, off the async executor.
    async fn verify(
        &self,
        password: SecretString,
        hash: Option<String>,
    ) -> Result<bool, AuthError> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| AuthError::Busy)?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AuthError::Busy)?;
        // The permits move into the check: they are held until it ends, even when the request
        // that asked for it has gone.
        Ok(tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            verify_password(&password, hash)
        })
        .await
        .unwrap_or(false))
    }

    /// Takes every slot, running and waiting, until the guard is dropped: tests use it to see
    /// what a saturated server answers.
    #[cfg(feature = "testing")]
    pub fn occupy_all(&self) -> tokio::sync::OwnedSemaphorePermit {
        let all = self.admitted.available_permits() as u32;
        self.admitted
            .clone()
            .try_acquire_many_owned(all)
            .expect("nothing else is checking while a test occupies the checks")
    }
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

/// Whether a new password follows the rules (callers check before doing anything costly).
pub fn check_new_password(password: &SecretString) -> Result<(), UserError> {
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

/// Checks a password against a stored hash (blocking: run it through [`PasswordChecks`]).
/// `None` checks against a dummy hash and answers `false`, taking as long as a real check.
fn verify_password(password: &SecretString, hash: Option<String>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
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
    check_new_password(&password)?;
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
/// tests pass any time), through `checks`. After [`SLOW_AFTER_FAILURES`] failures in a run each
/// further attempt must wait (1 s, then 2 s, ...) before it is even checked;
/// [`LOCK_AFTER_FAILURES`] lock the account for [`LOCK_FOR`], and the run starts again once the
/// lock is over. A success ends the run. `charge` says whether a failure adds to the run (see the
/// module docs: the caller decides by the address it came from).
///
/// Attempts that arrive together are all checked (each passed the lock check before any had
/// failed), so each failure is counted by one atomic `UPDATE` ([`record_failure`]), never by
/// writing back a count read earlier: forty wrong passwords at once count forty, and lock the
/// account just as forty in a row would.
pub async fn authenticate(
    db: &Db,
    checks: &PasswordChecks,
    email: &str,
    password: SecretString,
    now: i64,
    charge: Charge,
) -> Result<User, AuthError> {
    let email = email.trim().to_lowercase();
    let row = on_db!(db, |pool| {
        sqlx::query_as::<_, CredentialsRow>(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1"
        ))
        .bind(&email)
        .fetch_optional(pool)
        .await?
        .map(|r| Ok::<_, sqlx::Error>((User::try_from(r.user)?, r.password_hash)))
        .transpose()?
    });
    let Some((user, hash)) = row else {
        checks.verify(password, None).await?;
        return Err(AuthError::InvalidCredentials);
    };
    if let Some(until) = user.locked_until.filter(|&until| until > now) {
        // As long as a wrong password takes, so that the time to answer does not tell either.
        checks.verify(password, None).await?;
        return Err(AuthError::Locked { until });
    }
    if !checks.verify(password, Some(hash)).await? {
        if charge == Charge::AddressOnly {
            return Err(AuthError::InvalidCredentials);
        }
        let (failures, locked_until) = record_failed_sign_in(db, user.id, now).await?;
        return match locked_until.filter(|&until| until > now) {
            Some(until) if failures >= LOCK_AFTER_FAILURES => {
                if failures == LOCK_AFTER_FAILURES {
                    tracing::warn!(
                        user_id = user.id,
                        "account locked after repeated failed sign-ins"
                    );
                }
                Err(AuthError::Locked { until })
            }
            _ => Err(AuthError::InvalidCredentials),
        };
    }
    if user.disabled {
        return Err(AuthError::Disabled);
    }
    let _turn = db.write_turn().await;
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

/// Counts one failed sign-in at `now` in a single statement and returns the new count and until
/// when the account now takes no attempt. Both databases evaluate every `SET` expression against
/// the row as it was before this statement, and the row is locked while it runs, so concurrent
/// failures each add one. (Public so that tests can check exactly that.)
pub async fn record_failed_sign_in(
    db: &Db,
    id: UserId,
    now: i64,
) -> Result<(i64, Option<i64>), AuthError> {
    // The count after this failure. A new run starts when there is none (never failed, or a
    // success ended it), when the last one went quiet long enough ago, or when its lock is over.
    let next = "(CASE WHEN locked_until IS NULL OR locked_until <= $2 - $6 \
                   OR (failed_logins >= $3 AND locked_until <= $2) THEN 1 \
                 ELSE failed_logins + 1 END)";
    let sql = format!(
        "UPDATE users SET failed_logins = {next},
             locked_until = CASE
                 -- Locked: a failure checked earlier but recorded later never shortens the lock.
                 WHEN {next} >= $3 THEN
                     CASE WHEN locked_until > $2 + $4 THEN locked_until ELSE $2 + $4 END
                 -- Slowed: 1 s, then 2 s, 4 s... (see SLOW_AFTER_FAILURES).
                 WHEN {next} > $5 THEN
                     $2 + 1000000 * (1 << CAST({next} - $5 - 1 AS INTEGER))
                 -- No wait: when the run was last added to, so that it can be forgotten.
                 ELSE $2
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
            .bind(FAILURES_FORGOTTEN_AFTER.as_micros() as i64)
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
    check_new_password(&password)?;
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
    fn the_refusal_names_the_real_lock_duration() {
        let minutes = LOCK_FOR.as_secs() / 60;
        assert!(
            REFUSED.contains(&format!("up to {minutes} minutes")),
            "{REFUSED}"
        );
        assert_eq!(
            AuthError::Locked { until: 0 }.to_string(),
            AuthError::InvalidCredentials.to_string()
        );
    }

    #[tokio::test]
    async fn a_full_queue_of_password_checks_answers_busy_at_once() {
        // Arrange: one check may run and one wait; both slots are taken.
        let checks = PasswordChecks::new(1, 1);
        let _taken = checks.admitted.clone().try_acquire_many_owned(2).unwrap();

        // Act
        let answer = checks
            .verify(SecretString::from("a long enough password"), None)
            .await;

        // Assert
        assert!(matches!(answer, Err(AuthError::Busy)), "{answer:?}");
    }

    #[test]
    fn generated_passwords_are_long_enough() {
        let p = generate_password();
        assert_eq!(p.expose_secret().len(), 20);
        assert!(check_new_password(&p).is_ok());
        assert!(check_new_password(&SecretString::from("short")).is_err());
    }
}
