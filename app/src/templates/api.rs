//! The templates' server functions: list, read, save, duplicate, delete. Dispatchers and admins
//! edit; the server validates every save with the same code the editor runs in the browser.

#[cfg(feature = "ssr")]
use domain::access::Permission;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::Json;

use crate::error::AppError;
use crate::templates::model::TemplateDraft;

#[cfg(feature = "ssr")]
use crate::auth::{actor, require, state};

/// A row of the templates list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSummary {
    pub key: String,
    pub category: String,
    pub priority: String,
    pub body: String,
    pub updated_at: i64,
    pub updated_by: String,
}

/// A template opened in the editor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateView {
    pub draft: TemplateDraft,
    pub updated_at: i64,
    pub updated_by: String,
}

#[cfg(feature = "ssr")]
fn store_error(e: backend::templates::TemplateStoreError) -> AppError {
    use backend::templates::TemplateStoreError as E;
    match e {
        E::KeyTaken(_) => AppError::invalid("key", e.to_string()).respond(),
        E::NotFound(_) => AppError::NotFound(e.to_string()).respond(),
        E::Corrupt { .. } | E::Db(_) => AppError::internal("storing a template", &e),
    }
}

#[cfg(feature = "ssr")]
fn view(stored: backend::templates::StoredTemplate) -> TemplateView {
    TemplateView {
        draft: TemplateDraft::from(&stored.template),
        updated_at: stored.updated_at,
        updated_by: stored.updated_by,
    }
}

#[server(endpoint = "list_templates")]
pub async fn list_templates() -> Result<Vec<TemplateSummary>, AppError> {
    require(Permission::ViewTemplates, "see templates").await?;
    let all = backend::templates::list(&state()?.db)
        .await
        .map_err(store_error)?;
    Ok(all
        .into_iter()
        .map(|s| TemplateSummary {
            key: s.template.key().as_str().to_owned(),
            category: s.template.category().as_str().to_owned(),
            priority: s.template.priority().as_str().to_owned(),
            body: s.template.body().source().to_owned(),
            updated_at: s.updated_at,
            updated_by: s.updated_by,
        })
        .collect())
}

#[server(endpoint = "get_template")]
pub async fn get_template(key: String) -> Result<TemplateView, AppError> {
    require(Permission::ViewTemplates, "see templates").await?;
    backend::templates::get(&state()?.db, &key)
        .await
        .map_err(store_error)?
        .map(view)
        .ok_or_else(|| AppError::NotFound(format!("there is no template named {key}")).respond())
}

/// Saves a new template (`original_key` `None`) or replaces one (which may be renamed).
#[server(endpoint = "save_template", input = Json)]
pub async fn save_template(
    original_key: Option<String>,
    draft: TemplateDraft,
) -> Result<TemplateView, AppError> {
    let user = require(Permission::EditTemplates, "edit templates").await?;
    let template = draft
        .validate()
        .map_err(|errors| AppError::Fields(errors).respond())?;
    let db = state()?.db;
    let stored = match original_key {
        None => backend::templates::create(&db, &actor(&user), &template).await,
        Some(key) => backend::templates::update(&db, &actor(&user), &key, &template).await,
    }
    .map_err(store_error)?;
    Ok(view(stored))
}

#[server(endpoint = "duplicate_template")]
pub async fn duplicate_template(key: String, new_key: String) -> Result<TemplateView, AppError> {
    let user = require(Permission::EditTemplates, "edit templates").await?;
    let new_key = domain::template::TemplateKey::parse(new_key.trim())
        .map_err(|e| AppError::invalid("new_key", e.to_string()).respond())?;
    let copy = backend::templates::duplicate(&state()?.db, &actor(&user), &key, new_key)
        .await
        .map_err(store_error)?;
    Ok(view(copy))
}

#[server(endpoint = "delete_template")]
pub async fn delete_template(key: String) -> Result<(), AppError> {
    let user = require(Permission::EditTemplates, "edit templates").await?;
    backend::templates::delete(&state()?.db, &actor(&user), &key)
        .await
        .map_err(store_error)
}
