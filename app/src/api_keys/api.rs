//! The API keys' server functions (admins): list, create (the secret is shown once), revoke. Each
//! change is audited.

#[cfg(feature = "ssr")]
use domain::access::Permission;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[cfg(feature = "ssr")]
use crate::auth::{actor, require, state};
// API keys are settings: the same permission, refused in the same words.
#[cfg(feature = "ssr")]
use crate::settings::api::SETTINGS;

/// An API key as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub created_by: String,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// A key just created, with its secret (shown once) and the account sid for Twilio's libraries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApiKeyView {
    pub key: ApiKeyView,
    pub secret: String,
    pub account_sid: String,
}

#[cfg(feature = "ssr")]
fn key_view(k: backend::api_keys::ApiKey) -> ApiKeyView {
    ApiKeyView {
        id: k.id,
        name: k.name,
        created_at: k.created_at,
        created_by: k.created_by,
        revoked_at: k.revoked_at,
        last_used_at: k.last_used_at,
    }
}

#[cfg(feature = "ssr")]
fn key_error(e: backend::api_keys::ApiKeyError) -> AppError {
    use backend::api_keys::ApiKeyError as E;
    match e {
        E::BadName => AppError::invalid("name", e.to_string()).respond(),
        E::NotFound(_) => AppError::NotFound(e.to_string()).respond(),
        E::Db(e) => AppError::internal("changing API keys", &e),
    }
}

#[server(endpoint = "list_api_keys")]
pub async fn list_api_keys() -> Result<Vec<ApiKeyView>, AppError> {
    require(Permission::ManageSettings, SETTINGS).await?;
    let keys = backend::api_keys::list(&state()?.db)
        .await
        .map_err(key_error)?;
    Ok(keys.into_iter().map(key_view).collect())
}

#[server(endpoint = "create_api_key")]
pub async fn create_api_key(name: String) -> Result<NewApiKeyView, AppError> {
    let admin = require(Permission::ManageSettings, SETTINGS).await?;
    let db = state()?.db;
    let created = backend::api_keys::create(&db, &actor(&admin), &name)
        .await
        .map_err(key_error)?;
    let account_sid = backend::settings::account_sid(&db, None)
        .await
        .map_err(|e| AppError::internal("reading the account sid", &e))?;
    Ok(NewApiKeyView {
        secret: backend::api_keys::reveal(&created.secret).to_owned(),
        key: key_view(created.key),
        account_sid,
    })
}

#[server(endpoint = "revoke_api_key")]
pub async fn revoke_api_key(id: String) -> Result<(), AppError> {
    let admin = require(Permission::ManageSettings, SETTINGS).await?;
    let state = state()?;
    backend::api_keys::revoke(&state.db, &actor(&admin), &id)
        .await
        .map_err(key_error)?;
    // This instance stops taking the key at once; others within a second.
    state.api_keys.clear();
    Ok(())
}
