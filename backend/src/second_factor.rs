//! The console's second factor (migration 0015): a user's mobile number, confirmed by a code
//! (the same verifications as the Verify API, on smsdesk's own service), their recovery codes,
//! and the roles an admin requires it of. The sign-in steps themselves live with the session
//! (`app::auth`); this is what they store and check.
//!
//! The number is stored encrypted and shown masked. Recovery codes are shown once, when made,
//! stored as keyed hashes, compared in constant time and each works once.

use std::str::FromStr;

use domain::access::Role;
use rand::{Rng, TryRngCore};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::audit::{self, Actor};
use crate::crypto::DataKey;
use crate::db::{Db, DbError};
use crate::{on_db, on_tx};

/// Recovery codes made at each enrolment.
pub const RECOVERY_CODES: usize = 10;
/// Letters and digits of a recovery code: no 0/o, 1/l/i look-alikes.
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Characters per half of a code (`abcde-fghjk`): 10 characters, about 50 bits.
const HALF: usize = 5;

/// A user's second factor as their account page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// The confirmed number, masked; `None` without one.
    pub masked: Option<String>,
    pub confirmed_at: Option<i64>,
    /// Recovery codes not used yet.
    pub recovery_left: u32,
    /// Whether the user's role must use it.
    pub required: bool,
}

/// Where a user's second factor stands.
pub async fn standing(db: &Db, user_id: i64, role: Role) -> Result<Standing, DbError> {
    let row: Option<(String, i64)> = on_db!(db, |pool| sqlx::query_as(
        "SELECT masked, confirmed_at FROM user_phones WHERE user_id = $1"
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?);
    let left: i64 = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL"
    )
    .bind(user_id)
    .fetch_one(pool)
    .await?);
    Ok(Standing {
        masked: row.as_ref().map(|r| r.0.clone()),
        confirmed_at: row.map(|r| r.1),
        recovery_left: u32::try_from(left).unwrap_or(0),
        required: required_roles(db).await?.contains(&role),
    })
}

/// The user's confirmed number (E.164), to send a sign-in code to.
pub async fn phone(db: &Db, key: &DataKey, user_id: i64) -> Result<Option<String>, DbError> {
    let stored: Option<String> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT phone_enc FROM user_phones WHERE user_id = $1"
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?);
    stored
        .map(|s| {
            key.decrypt(&s).map_err(|_| DbError::Undecryptable {
                what: "a user's second-factor number",
            })
        })
        .transpose()
}

/// Makes `count` recovery codes (`abcde-fghjk`) from the operating system's random source.
fn new_recovery_codes(count: usize) -> Vec<String> {
    let mut rng = rand::rngs::OsRng.unwrap_err();
    (0..count)
        .map(|_| {
            let mut code = String::with_capacity(2 * HALF + 1);
            for i in 0..2 * HALF {
                if i == HALF {
                    code.push('-');
                }
                code.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
            }
            code
        })
        .collect()
}

/// A recovery code as typed: lower case, without spaces or dashes.
fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn recovery_hash(key: &DataKey, user_id: i64, code: &str) -> String {
    key.code_hash(&format!("recovery:{user_id}"), &normalise(code))
}

/// Whether `input` has a recovery code's shape (10 of its characters, however typed) rather
/// than an SMS code's (the console's codes are 6 digits).
pub fn is_recovery_code(input: &str) -> bool {
    let n = normalise(input);
    n.len() == 2 * HALF && n.bytes().all(|b| ALPHABET.contains(&b))
}

/// Stores `e164` as the user's confirmed number (its code was just approved) and makes new
/// recovery codes, replacing any earlier ones: returned once, never stored readable. Audited
/// as `user.second_factor.enrol`.
pub async fn enrol(
    db: &Db,
    key: &DataKey,
    actor: &Actor,
    user_id: i64,
    e164: &str,
    now: i64,
) -> Result<Vec<String>, DbError> {
    let number = domain::phone::PhoneNumber::parse(e164, None).ok();
    let masked = number.map_or_else(|| domain::redact::mask_numbers(e164), |n| n.masked());
    let codes = new_recovery_codes(RECOVERY_CODES);
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |conn| sqlx::query(
        "INSERT INTO user_phones (user_id, phone_enc, masked, confirmed_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id) DO UPDATE SET phone_enc = excluded.phone_enc,
             masked = excluded.masked, confirmed_at = excluded.confirmed_at"
    )
    .bind(user_id)
    .bind(key.encrypt(e164))
    .bind(&masked)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected());
    on_tx!(&mut tx, |conn| sqlx::query(
        "DELETE FROM recovery_codes WHERE user_id = $1"
    )
    .bind(user_id)
    .execute(conn)
    .await?
    .rows_affected());
    for code in &codes {
        on_tx!(&mut tx, |conn| sqlx::query(
            "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)"
        )
        .bind(user_id)
        .bind(recovery_hash(key, user_id, code))
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected());
    }
    audit::record(
        &mut tx,
        actor,
        "user.second_factor.enrol",
        &format!("user {user_id}"),
        None,
        Some(serde_json::json!({ "phone": masked, "recovery_codes": codes.len() })),
    )
    .await?;
    tx.commit().await?;
    Ok(codes)
}

/// Removes a user's number and recovery codes (they sign in with the password alone, unless
/// their role requires the second factor). Audited as `user.second_factor.remove`; `false`
/// when there was none.
pub async fn remove(db: &Db, actor: &Actor, user_id: i64) -> Result<bool, DbError> {
    let mut tx = db.begin().await?;
    let removed = on_tx!(&mut tx, |conn| sqlx::query(
        "DELETE FROM user_phones WHERE user_id = $1"
    )
    .bind(user_id)
    .execute(conn)
    .await?
    .rows_affected());
    on_tx!(&mut tx, |conn| sqlx::query(
        "DELETE FROM recovery_codes WHERE user_id = $1"
    )
    .bind(user_id)
    .execute(conn)
    .await?
    .rows_affected());
    if removed > 0 {
        audit::record(
            &mut tx,
            actor,
            "user.second_factor.remove",
            &format!("user {user_id}"),
            None,
            None,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(removed > 0)
}

/// Uses one of the user's recovery codes at `now`: `true` when it was theirs and unused (it is
/// then used up, audited as `user.recovery_code.use`). Every unused code is compared, in
/// constant time; a code can be used once even by two requests at the same moment.
pub async fn use_recovery_code(
    db: &Db,
    key: &DataKey,
    user_id: i64,
    code: &str,
    now: i64,
) -> Result<bool, DbError> {
    let given = recovery_hash(key, user_id, code);
    let unused: Vec<(i64, String)> = on_db!(db, |pool| sqlx::query_as(
        "SELECT id, code_hash FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL"
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?);
    let mut found = None;
    for (id, stored) in &unused {
        if bool::from(stored.as_bytes().ct_eq(given.as_bytes())) {
            found = Some(*id);
        }
    }
    let Some(id) = found else {
        return Ok(false);
    };
    let mut tx = db.begin().await?;
    let used = on_tx!(&mut tx, |conn| sqlx::query(
        "UPDATE recovery_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL"
    )
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected());
    if used == 1 {
        audit::record(
            &mut tx,
            &Actor::system(),
            "user.recovery_code.use",
            &format!("user {user_id}"),
            None,
            None,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(used == 1)
}

/// The roles that must sign in with the second factor.
pub async fn required_roles(db: &Db) -> Result<Vec<Role>, DbError> {
    let rows: Vec<String> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT role FROM second_factor_roles ORDER BY role"
    )
    .fetch_all(pool)
    .await?);
    rows.iter()
        .map(|r| {
            Role::from_str(r).map_err(|_| DbError::Unreadable {
                table: "second_factor_roles",
                id: 0,
                column: "role",
                value: r.clone(),
            })
        })
        .collect()
}

/// Sets the roles that must use the second factor; audited as `settings.second_factor`.
pub async fn set_required_roles(
    db: &Db,
    actor: &Actor,
    roles: &[Role],
    now: i64,
) -> Result<(), DbError> {
    let before = required_roles(db).await?;
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |conn| sqlx::query(
        "DELETE FROM second_factor_roles"
    )
    .execute(conn)
    .await?
    .rows_affected());
    let mut after: Vec<Role> = Vec::new();
    for role in roles {
        if after.contains(role) {
            continue;
        }
        after.push(*role);
        on_tx!(&mut tx, |conn| sqlx::query(
            "INSERT INTO second_factor_roles (role, set_at) VALUES ($1, $2)"
        )
        .bind(role.as_str())
        .bind(now)
        .execute(conn)
        .await?
        .rows_affected());
    }
    let names = |roles: &[Role]| roles.iter().map(|r| r.as_str()).collect::<Vec<_>>();
    audit::record(
        &mut tx,
        actor,
        "settings.second_factor",
        "roles that must use a second factor",
        Some(serde_json::json!(names(&before))),
        Some(serde_json::json!(names(&after))),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_ten_unambiguous_characters_and_read_back_however_typed() {
        let codes = new_recovery_codes(RECOVERY_CODES);
        assert_eq!(codes.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 11, "{code}");
            assert_eq!(code.as_bytes()[5], b'-');
            assert!(is_recovery_code(code), "{code}");
            assert_eq!(normalise(&code.to_uppercase()), normalise(code));
            assert_eq!(normalise(&code.replace('-', " ")), normalise(code));
        }
        let distinct: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), 10);
        assert!(!is_recovery_code("482913"));
        assert!(is_recovery_code("ABCDE-FGHJK"));
        assert!(!is_recovery_code("abcde-fghj0"));
    }
}
