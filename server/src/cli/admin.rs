//! Operator commands: `smsdesk migrate`, `smsdesk user create|reset-second-factor`,
//! `smsdesk api-key create|revoke`.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;
use backend::audit::Actor;
use backend::db::Db;
use domain::access::Role;
use secrecy::SecretString;

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The database to migrate (as for `serve`).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/smsdesk.db")]
    database_url: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Creates a user; the password is read from standard input (one line).
    Create(CreateUserArgs),
    /// Removes a user's second factor (a lost phone and no recovery code left): they sign in
    /// with the password alone, or add a new phone at sign-in if their role requires one.
    /// Audited as the command line.
    ResetSecondFactor(ResetSecondFactorArgs),
}

#[derive(Debug, clap::Args)]
pub struct ResetSecondFactorArgs {
    #[arg(long)]
    email: String,
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/smsdesk.db")]
    database_url: String,
}

#[derive(Debug, clap::Args)]
pub struct CreateUserArgs {
    #[arg(long)]
    email: String,
    /// admin, dispatcher, compliance or finance.
    #[arg(long)]
    role: Role,
    /// Read the password from standard input (required: passwords never go on the command line).
    #[arg(long, required = true)]
    password_stdin: bool,
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/smsdesk.db")]
    database_url: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum ApiKeyCommand {
    /// Creates an API key and prints {"id","secret","account_sid"} (the secret only now).
    Create(CreateKeyArgs),
    /// Revokes an API key: requests with it fail from now on.
    Revoke(RevokeKeyArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateKeyArgs {
    /// Which service uses the key (shown in the console).
    #[arg(long)]
    name: String,
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/smsdesk.db")]
    database_url: String,
    /// The account sid the Twilio-compatible endpoint expects, when smsdesk fronts a real one.
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    twilio_account_sid: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RevokeKeyArgs {
    /// The key's id (SK...).
    id: String,
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/smsdesk.db")]
    database_url: String,
}

pub fn api_key(command: ApiKeyCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        match command {
            ApiKeyCommand::Create(args) => {
                let db = Db::connect(&args.database_url)
                    .await
                    .context("opening the database (DATABASE_URL)")?;
                db.migrate().await.context("migrating the database")?;
                let account_sid =
                    backend::settings::account_sid(&db, args.twilio_account_sid.as_deref())
                        .await
                        .context("reading the account sid")?;
                let created = backend::api_keys::create(&db, &Actor::cli(), &args.name).await?;
                let mut out = std::io::stdout().lock();
                serde_json::to_writer(
                    &mut out,
                    &serde_json::json!({
                        "id": created.key.id,
                        "secret": backend::api_keys::reveal(&created.secret),
                        "account_sid": account_sid,
                    }),
                )?;
                writeln!(out)?;
                Ok(ExitCode::SUCCESS)
            }
            ApiKeyCommand::Revoke(args) => {
                let db = Db::connect(&args.database_url)
                    .await
                    .context("opening the database (DATABASE_URL)")?;
                backend::api_keys::revoke(&db, &Actor::cli(), &args.id).await?;
                writeln!(std::io::stdout(), "{{\"revoked\":{:?}}}", args.id)?;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let db = Db::connect(&args.database_url)
            .await
            .context("opening the database (DATABASE_URL)")?;
        db.migrate().await.context("migrating the database")?;
        println!("{} database is up to date", db.backend_name());
        Ok(ExitCode::SUCCESS)
    })
}

pub fn user(command: UserCommand) -> anyhow::Result<ExitCode> {
    let args = match command {
        UserCommand::Create(args) => args,
        UserCommand::ResetSecondFactor(args) => return reset_second_factor(args),
    };
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = SecretString::from(line.trim_end_matches(['\r', '\n']).to_owned());
    runtime()?.block_on(async {
        let db = Db::connect(&args.database_url)
            .await
            .context("opening the database (DATABASE_URL)")?;
        db.migrate().await.context("migrating the database")?;
        match backend::users::create(&db, &Actor::cli(), &args.email, password, args.role).await {
            Ok(user) => {
                let mut out = std::io::stdout().lock();
                serde_json::to_writer(
                    &mut out,
                    &serde_json::json!({"id": user.id, "email": user.email, "role": user.role}),
                )?;
                writeln!(out)?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                writeln!(std::io::stderr(), "smsdesk: {e}")?;
                Ok(ExitCode::from(2))
            }
        }
    })
}

fn reset_second_factor(args: ResetSecondFactorArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let db = Db::connect(&args.database_url)
            .await
            .context("opening the database (DATABASE_URL)")?;
        db.migrate().await.context("migrating the database")?;
        let email = backend::users::normalize_email(&args.email)?;
        let found = backend::users::list(&db)
            .await?
            .into_iter()
            .find(|u| u.email == email);
        let Some(user) = found else {
            writeln!(std::io::stderr(), "smsdesk: there is no user {email}")?;
            return Ok(ExitCode::from(2));
        };
        let removed = backend::second_factor::remove(&db, &Actor::cli(), user.id).await?;
        writeln!(
            std::io::stdout(),
            "{}",
            serde_json::json!({ "email": user.email, "removed": removed })
        )?;
        Ok(ExitCode::SUCCESS)
    })
}
