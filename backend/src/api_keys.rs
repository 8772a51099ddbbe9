//! API keys for the services that send through smsdesk: an id shaped like Twilio's (`SK` + 32
//! hex) and a secret shown once. Only the secret's SHA-256 is stored: the secret is 256 random
//! bits, so a slow hash would add latency to every request and no protection. Created and revoked
//! by admins (audited), used with `Authorization: Basic id:secret` or `Bearer secret`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::audit::{self, Actor};
use crate::db::{Db, DbError, now_micros};
use crate::settings::random_sid;
use crate::{on_db, on_tx};

/// An API key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub created_by: String,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// A key just made: the only time its secret is known.
#[derive(Debug)]
pub struct NewApiKey {
    pub key: ApiKey,
    pub secret: SecretString,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("give the key a name (1 to 100 characters) saying which service uses it")]
    BadName,
    #[error("there is no API key {0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for ApiKeyError {
    fn from(e: sqlx::Error) -> Self {
        ApiKeyError::Db(DbError::Query(e))
    }
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Makes a key named `name`.
pub async fn create(db: &Db, actor: &Actor, name: &str) -> Result<NewApiKey, ApiKeyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiKeyError::BadName);
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let key = ApiKey {
        id: random_sid("SK"),
        name: name.to_owned(),
        created_at: now_micros(),
        created_by: actor.label.clone(),
        revoked_at: None,
        last_used_at: None,
    };
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(
        "INSERT INTO api_keys (id, name, secret_hash, created_at, created_by) VALUES ($1, $2, $3, $4, $5)"
    )
    .bind(&key.id)
    .bind(&key.name)
    .bind(hash(&secret))
    .bind(key.created_at)
    .bind(&key.created_by)
    .execute(conn)
    .await?
    .rows_affected()
    });
    audit::record(
        &mut tx,
        actor,
        "api_key.create",
        &format!("api_key:{}", key.id),
        None,
        Some(serde_json::json!({ "id": key.id, "name": key.name })),
    )
    .await?;
    tx.commit().await?;
    Ok(NewApiKey {
        key,
        secret: secret.into(),
    })
}

/// Every key, newest first.
pub async fn list(db: &Db) -> Result<Vec<ApiKey>, ApiKeyError> {
    Ok(on_db!(db, |pool| sqlx::query_as::<_, ApiKey>(
        "SELECT id, name, created_at, created_by, revoked_at, last_used_at FROM api_keys
             ORDER BY created_at DESC, id"
    )
    .fetch_all(pool)
    .await?))
}

/// Revokes a key: requests with it fail from now on.
pub async fn revoke(db: &Db, actor: &Actor, id: &str) -> Result<(), ApiKeyError> {
    let mut tx = db.begin().await?;
    let changed = on_tx!(&mut tx, |conn| sqlx::query(
        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL"
    )
    .bind(now_micros())
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected());
    if changed == 0 {
        return Err(ApiKeyError::NotFound(id.to_owned()));
    }
    audit::record(
        &mut tx,
        actor,
        "api_key.revoke",
        &format!("api_key:{id}"),
        Some(serde_json::json!({ "revoked": false })),
        Some(serde_json::json!({ "revoked": true })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The key a request presents: an id with its secret (Basic), or the secret alone (Bearer).
pub enum Presented<'a> {
    IdAndSecret(&'a str, &'a str),
    Secret(&'a str),
}

/// The active key the credentials belong to, or `None` (unknown, wrong secret, revoked), at
/// `now` (UTC microseconds). Compares in constant time and notes when the key was last used.
pub async fn authenticate(
    db: &Db,
    presented: Presented<'_>,
    now: i64,
) -> Result<Option<ApiKey>, DbError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: String,
        name: String,
        secret_hash: String,
        created_at: i64,
        created_by: String,
        revoked_at: Option<i64>,
        last_used_at: Option<i64>,
    }
    let (id, secret) = match presented {
        Presented::IdAndSecret(id, secret) => (Some(id), secret),
        Presented::Secret(secret) => (None, secret),
    };
    let hashed = hash(secret);
    let row = match id {
        Some(id) => on_db!(db, |pool| sqlx::query_as::<_, Row>(
            "SELECT * FROM api_keys WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(pool)
        .await?),
        None => on_db!(db, |pool| sqlx::query_as::<_, Row>(
            "SELECT * FROM api_keys WHERE secret_hash = $1"
        )
        .bind(&hashed)
        .fetch_optional(pool)
        .await?),
    };
    let Some(row) = row else { return Ok(None) };
    let matches: bool = row.secret_hash.as_bytes().ct_eq(hashed.as_bytes()).into();
    if !matches || row.revoked_at.is_some() {
        return Ok(None);
    }
    // At most one write a minute per key: the column says "recently", not every request.
    if row.last_used_at.is_none_or(|t| now - t > 60_000_000) {
        let _turn = db.write_turn().await;
        on_db!(db, |pool| sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 WHERE id = $2"
        )
        .bind(now)
        .bind(&row.id)
        .execute(pool)
        .await?
        .rows_affected());
    }
    Ok(Some(ApiKey {
        id: row.id,
        name: row.name,
        created_at: row.created_at,
        created_by: row.created_by,
        revoked_at: row.revoked_at,
        last_used_at: Some(now),
    }))
}

/// How long a checked key is taken on trust: a key revoked (on any instance) stops working
/// within this time.
pub const TRUSTED_FOR_MICROS: i64 = 1_000_000;

/// Keys checked in the last second, so that a busy service does not cost a database query per
/// request. Only successful checks are kept, under a digest of the credentials as presented (a
/// wrong secret never matches one); one instance holds at most `CAPACITY` of them.
#[derive(Debug, Clone, Default)]
pub struct KeyCache {
    entries: std::sync::Arc<std::sync::Mutex<Trusted>>,
}

/// Digest of the credentials as presented → when they were checked, and the key.
type Trusted = std::collections::HashMap<[u8; 32], (i64, ApiKey)>;

impl KeyCache {
    const CAPACITY: usize = 1_024;

    /// As [`authenticate`], answered from memory when the same credentials were checked less
    /// than [`TRUSTED_FOR_MICROS`] before `now`.
    pub async fn authenticate(
        &self,
        db: &Db,
        presented: Presented<'_>,
        now: i64,
    ) -> Result<Option<ApiKey>, DbError> {
        let digest: [u8; 32] = {
            let mut d = Sha256::new();
            match &presented {
                Presented::IdAndSecret(id, secret) => {
                    d.update(b"basic\0");
                    d.update(id.as_bytes());
                    d.update(b"\0");
                    d.update(secret.as_bytes());
                }
                Presented::Secret(secret) => {
                    d.update(b"bearer\0");
                    d.update(secret.as_bytes());
                }
            }
            d.finalize().into()
        };
        if let Some((checked, key)) = self.lock().get(&digest)
            && (0..TRUSTED_FOR_MICROS).contains(&(now - checked))
        {
            return Ok(Some(key.clone()));
        }
        let found = authenticate(db, presented, now).await?;
        let mut entries = self.lock();
        match &found {
            Some(key) => {
                if entries.len() >= Self::CAPACITY {
                    entries.retain(|_, (checked, _)| now - *checked < TRUSTED_FOR_MICROS);
                    if entries.len() >= Self::CAPACITY {
                        entries.clear();
                    }
                }
                entries.insert(digest, (now, key.clone()));
            }
            None => {
                entries.remove(&digest);
            }
        }
        Ok(found)
    }

    /// Forgets every key checked: a key revoked here stops working at once on this instance.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Trusted> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// For tests and the CLI: the secret's text.
pub fn reveal(secret: &SecretString) -> &str {
    secret.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_stored_as_lowercase_hex_sha256() {
        // Keys already issued are looked up by this text.
        assert_eq!(
            hash("sk_test"),
            "12b2820cf1639904311da5771de1e5bb65c77073fdc7c555df395942df42896b"
        );
    }
}
