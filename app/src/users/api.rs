//! The users' server functions (admins only): list, create, change role, disable, reset password.
//! Each change is audited.

#[cfg(feature = "ssr")]
use domain::access::Permission;
use domain::access::Role;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[cfg(feature = "ssr")]
use crate::auth::{actor, require, state};

/// A user as the admin page shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    pub locked: bool,
    pub created_at: i64,
}

/// A user with the password generated for them, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserWithPassword {
    pub user: UserView,
    pub password: String,
}

#[cfg(feature = "ssr")]
fn view(u: backend::users::User) -> UserView {
    let now = backend::db::now_micros();
    UserView {
        id: u.id,
        email: u.email,
        role: u.role,
        disabled: u.disabled,
        locked: u.locked_until.is_some_and(|t| t > now),
        created_at: u.created_at,
    }
}

#[cfg(feature = "ssr")]
fn user_error(e: backend::users::UserError) -> AppError {
    use backend::users::UserError as E;
    match e {
        E::BadEmail(_) | E::EmailTaken(_) => AppError::invalid("email", e.to_string()).respond(),
        E::WeakPassword => AppError::invalid("password", e.to_string()).respond(),
        E::SelfChange(_) => AppError::Conflict(e.to_string()).respond(),
        E::NotFound(_) => AppError::NotFound(e.to_string()).respond(),
        E::Hash | E::Db(_) => AppError::internal("changing a user", &e),
    }
}

#[cfg(feature = "ssr")]
const MANAGE: &str = "manage users";

#[server(endpoint = "list_users")]
pub async fn list_users() -> Result<Vec<UserView>, AppError> {
    require(Permission::ManageUsers, MANAGE).await?;
    let users = backend::users::list(&state()?.db)
        .await
        .map_err(user_error)?;
    Ok(users.into_iter().map(view).collect())
}

/// Creates a user with a generated password (shown once to the admin, who passes it on).
#[server(endpoint = "create_user")]
pub async fn create_user(email: String, role: Role) -> Result<UserWithPassword, AppError> {
    use secrecy::ExposeSecret;
    let admin = require(Permission::ManageUsers, MANAGE).await?;
    let password = backend::users::generate_password();
    let user = backend::users::create(&state()?.db, &actor(&admin), &email, password.clone(), role)
        .await
        .map_err(user_error)?;
    Ok(UserWithPassword {
        user: view(user),
        password: password.expose_secret().to_owned(),
    })
}

#[server(endpoint = "set_user_role")]
pub async fn set_user_role(id: i64, role: Role) -> Result<UserView, AppError> {
    let admin = require(Permission::ManageUsers, MANAGE).await?;
    backend::users::set_role(&state()?.db, &actor(&admin), id, role)
        .await
        .map(view)
        .map_err(user_error)
}

#[server(endpoint = "set_user_disabled")]
pub async fn set_user_disabled(id: i64, disabled: bool) -> Result<UserView, AppError> {
    let admin = require(Permission::ManageUsers, MANAGE).await?;
    backend::users::set_disabled(&state()?.db, &actor(&admin), id, disabled)
        .await
        .map(view)
        .map_err(user_error)
}

/// Gives a user a new generated password (shown once); their sessions end.
#[server(endpoint = "reset_user_password")]
pub async fn reset_user_password(id: i64) -> Result<UserWithPassword, AppError> {
    use secrecy::ExposeSecret;
    let admin = require(Permission::ManageUsers, MANAGE).await?;
    let password = backend::users::generate_password();
    let user = backend::users::set_password(&state()?.db, &actor(&admin), id, password.clone())
        .await
        .map_err(user_error)?;
    Ok(UserWithPassword {
        user: view(user),
        password: password.expose_secret().to_owned(),
    })
}
