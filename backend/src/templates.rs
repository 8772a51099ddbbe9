//! Stored SMS templates: list, create, edit, duplicate, delete (each change audited), and the
//! five SafeShipper templates smsdesk starts with.

use domain::template::{
    Category, Charset, Template, TemplateBody, TemplateKey, TemplateParts, VariableSpec,
};
use serde::{Deserialize, Serialize};

use crate::audit::{self, Actor};
use crate::db::{Db, DbError, now_micros};
use crate::{on_db, on_tx};

/// A template as stored, with when and by whom it was last changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTemplate {
    pub id: i64,
    pub template: Template,
    /// Microseconds since the Unix epoch, UTC.
    pub updated_at: i64,
    pub updated_by: String,
}

/// Why a template could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum TemplateStoreError {
    #[error("a template named {0} already exists: choose another name")]
    KeyTaken(String),
    #[error("there is no template named {0}")]
    NotFound(String),
    #[error("the stored template {key} no longer reads as a valid template: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for TemplateStoreError {
    fn from(e: sqlx::Error) -> Self {
        TemplateStoreError::Db(DbError::Query(e))
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    key: String,
    definition_json: String,
    updated_at: i64,
    updated_by: String,
}

impl TryFrom<Row> for StoredTemplate {
    type Error = TemplateStoreError;

    fn try_from(row: Row) -> Result<Self, Self::Error> {
        let template = serde_json::from_str(&row.definition_json).map_err(|e| {
            TemplateStoreError::Corrupt {
                key: row.key.clone(),
                reason: e.to_string(),
            }
        })?;
        Ok(StoredTemplate {
            id: row.id,
            template,
            updated_at: row.updated_at,
            updated_by: row.updated_by,
        })
    }
}

const COLUMNS: &str = "id, key, definition_json, updated_at, updated_by";

/// Every template, by name.
pub async fn list(db: &Db) -> Result<Vec<StoredTemplate>, TemplateStoreError> {
    let sql = format!("SELECT {COLUMNS} FROM templates ORDER BY key");
    let rows = on_db!(db, |pool| sqlx::query_as::<_, Row>(&sql)
        .fetch_all(pool)
        .await?);
    rows.into_iter().map(StoredTemplate::try_from).collect()
}

/// One template by name.
pub async fn get(db: &Db, key: &str) -> Result<Option<StoredTemplate>, TemplateStoreError> {
    let sql = format!("SELECT {COLUMNS} FROM templates WHERE key = $1");
    let row = on_db!(db, |pool| {
        sqlx::query_as::<_, Row>(&sql)
            .bind(key)
            .fetch_optional(pool)
            .await?
    });
    row.map(StoredTemplate::try_from).transpose()
}

fn definition(template: &Template) -> String {
    serde_json::to_string(template).expect("a template always serializes")
}

/// Stores a new template.
pub async fn create(
    db: &Db,
    actor: &Actor,
    template: &Template,
) -> Result<StoredTemplate, TemplateStoreError> {
    let key = template.key().as_str();
    let now = now_micros();
    let mut tx = db.begin().await?;
    let inserted = on_tx!(&mut tx, |conn| {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO templates (key, category, definition_json, created_at, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT (key) DO NOTHING RETURNING id",
        )
        .bind(key)
        .bind(template.category().as_str())
        .bind(definition(template))
        .bind(now)
        .bind(&actor.label)
        .fetch_optional(conn)
        .await?
    });
    if inserted.is_none() {
        return Err(TemplateStoreError::KeyTaken(key.to_owned()));
    }
    audit::record(
        &mut tx,
        actor,
        "template.create",
        &format!("template:{key}"),
        None,
        Some(serde_json::to_value(template).expect("serializable")),
    )
    .await?;
    tx.commit().await?;
    get(db, key)
        .await?
        .ok_or_else(|| TemplateStoreError::NotFound(key.to_owned()))
}

/// Replaces the template named `key` (which may be renamed to `template.key()`).
pub async fn update(
    db: &Db,
    actor: &Actor,
    key: &str,
    template: &Template,
) -> Result<StoredTemplate, TemplateStoreError> {
    let before = get(db, key)
        .await?
        .ok_or_else(|| TemplateStoreError::NotFound(key.to_owned()))?;
    let new_key = template.key().as_str();
    if new_key != key && get(db, new_key).await?.is_some() {
        return Err(TemplateStoreError::KeyTaken(new_key.to_owned()));
    }
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query(
            "UPDATE templates SET key = $1, category = $2, definition_json = $3, updated_at = $4,
             updated_by = $5 WHERE key = $6",
        )
        .bind(new_key)
        .bind(template.category().as_str())
        .bind(definition(template))
        .bind(now_micros())
        .bind(&actor.label)
        .bind(key)
        .execute(conn)
        .await?
        .rows_affected()
    });
    audit::record(
        &mut tx,
        actor,
        "template.update",
        &format!("template:{new_key}"),
        Some(serde_json::to_value(&before.template).expect("serializable")),
        Some(serde_json::to_value(template).expect("serializable")),
    )
    .await?;
    tx.commit().await?;
    get(db, new_key)
        .await?
        .ok_or_else(|| TemplateStoreError::NotFound(new_key.to_owned()))
}

/// Deletes a template.
pub async fn delete(db: &Db, actor: &Actor, key: &str) -> Result<(), TemplateStoreError> {
    let before = get(db, key)
        .await?
        .ok_or_else(|| TemplateStoreError::NotFound(key.to_owned()))?;
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |conn| {
        sqlx::query("DELETE FROM templates WHERE key = $1")
            .bind(key)
            .execute(conn)
            .await?
            .rows_affected()
    });
    audit::record(
        &mut tx,
        actor,
        "template.delete",
        &format!("template:{key}"),
        Some(serde_json::to_value(&before.template).expect("serializable")),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Copies a template under a new name.
pub async fn duplicate(
    db: &Db,
    actor: &Actor,
    key: &str,
    new_key: TemplateKey,
) -> Result<StoredTemplate, TemplateStoreError> {
    let source = get(db, key)
        .await?
        .ok_or_else(|| TemplateStoreError::NotFound(key.to_owned()))?;
    let mut parts = TemplateParts::from(source.template);
    parts.key = new_key;
    let copy = Template::new(parts).map_err(|e| TemplateStoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    create(db, actor, &copy).await
}

/// The five SafeShipper templates smsdesk starts with.
pub fn defaults() -> Vec<Template> {
    fn var(name: &str, max_len: usize, charset: Charset, sample: &str) -> VariableSpec {
        VariableSpec::new(name, max_len, charset, sample).expect("a valid built-in variable")
    }
    let gsm = Charset::Gsm7;
    let any = Charset::Unicode;
    let seeds = [
        (
            "shipment_created",
            Category::Shipment,
            "SafeShipper: Shipment {tracking_number} created. Track: {tracking_url}",
            vec![
                var("tracking_number", 20, gsm, "SS-2026-004417"),
                var(
                    "tracking_url",
                    60,
                    gsm,
                    "https://track.safeshipper.com/SS-2026-004417",
                ),
            ],
        ),
        (
            "shipment_delivered",
            Category::Shipment,
            "SafeShipper: Shipment {tracking_number} was delivered to {recipient_name}. Reply STOP to opt out.",
            vec![
                var("tracking_number", 20, gsm, "SS-2026-004417"),
                var("recipient_name", 40, any, "Zoë Müller"),
            ],
        ),
        (
            "emergency_alert",
            Category::Emergency,
            "SafeShipper EMERGENCY: {hazard} incident at {location}. {instructions} Call {hotline} now.",
            vec![
                var("hazard", 40, gsm, "Class 3 flammable liquid spill"),
                var("location", 60, any, "Depot 7, Bay C"),
                var(
                    "instructions",
                    120,
                    gsm,
                    "Evacuate 100 m upwind and keep ignition sources away.",
                ),
                var("hotline", 20, gsm, "1800 127 127"),
            ],
        ),
        (
            "two_factor_auth",
            Category::TwoFactor,
            "Your SafeShipper code is {code}. It expires in {minutes} minutes. Never share it.",
            vec![var("code", 10, gsm, "482913"), var("minutes", 2, gsm, "10")],
        ),
        (
            "driver_update",
            Category::Driver,
            "SafeShipper: Driver {driver_name} is {eta_minutes} min from {stop_name} with shipment {tracking_number}.",
            vec![
                var("driver_name", 40, any, "Ana Pérez"),
                var("eta_minutes", 3, gsm, "25"),
                var("stop_name", 60, any, "Port Botany Gate 2"),
                var("tracking_number", 20, gsm, "SS-2026-004417"),
            ],
        ),
    ];
    seeds
        .into_iter()
        .map(|(key, category, body, variables)| {
            Template::new(TemplateParts {
                key: TemplateKey::parse(key).expect("a valid built-in key"),
                body: TemplateBody::parse(body).expect("a valid built-in body"),
                variables,
                category,
                priority: None,
                smart_encoding: false,
                ttl_seconds: None,
            })
            .expect("a valid built-in template")
        })
        .collect()
}

/// Stores the default templates when there are no templates at all (first start).
pub async fn seed_defaults(db: &Db) -> Result<usize, TemplateStoreError> {
    let count = on_db!(db, |pool| {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM templates")
            .fetch_one(pool)
            .await?
    });
    if count > 0 {
        return Ok(0);
    }
    let defaults = defaults();
    for template in &defaults {
        match create(db, &Actor::system(), template).await {
            // Another instance seeded at the same moment: fine.
            Ok(_) | Err(TemplateStoreError::KeyTaken(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(defaults.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_five_default_templates_are_valid_and_distinct() {
        let keys: Vec<String> = defaults()
            .iter()
            .map(|t| t.key().as_str().to_owned())
            .collect();
        assert_eq!(
            keys,
            [
                "shipment_created",
                "shipment_delivered",
                "emergency_alert",
                "two_factor_auth",
                "driver_update"
            ]
        );
    }
}
