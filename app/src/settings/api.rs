//! The settings' server functions (admins): read the sending engine's settings, and save them
//! (audited).

#[cfg(feature = "ssr")]
use domain::access::Permission;
use domain::sending::SendingSettings;
use leptos::prelude::*;

use crate::error::AppError;

#[cfg(feature = "ssr")]
use crate::auth::{actor, require, state};

/// What a role without the permission is told it may not do (the API keys say the same).
#[cfg(feature = "ssr")]
pub(crate) const SETTINGS: &str = "change settings";

#[server(endpoint = "get_sending_settings")]
pub async fn get_sending_settings() -> Result<SendingSettings, AppError> {
    require(Permission::ManageSettings, SETTINGS).await?;
    backend::settings::sending(&state()?.db)
        .await
        .map_err(|e| AppError::internal("reading the settings", &e))
}

#[server(endpoint = "save_sending_settings", input = server_fn::codec::Json)]
pub async fn save_sending_settings(settings: SendingSettings) -> Result<(), AppError> {
    use backend::settings::SettingsStoreError as E;
    let admin = require(Permission::ManageSettings, SETTINGS).await?;
    match backend::settings::save_sending(&state()?.db, &actor(&admin), &settings).await {
        Ok(()) => Ok(()),
        Err(E::Invalid(e)) => Err(AppError::invalid(&e.field, e.message).respond()),
        Err(e) => Err(AppError::internal("saving the settings", &e)),
    }
}
