//! `smsdesk settings export` and `smsdesk settings import FILE|-`: the run-time settings (limits,
//! retries, senders, pace, geo permissions, simulator) as JSON, so several instances and their
//! settings can be managed as code. Import validates the whole document (unknown keys included)
//! before anything changes, applies it in one transaction and audits it as the command line.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use backend::audit::Actor;
use backend::db::Db;
use backend::settings::{SendingSettings, SettingsStoreError};
use serde_json::Value;

#[derive(Debug, clap::Subcommand)]
pub enum SettingsCommand {
    /// Prints the run-time settings as JSON (the defaults where none were saved).
    Export(ExportArgs),
    /// Checks a JSON document of settings and applies it (audited as `cli`). Keys left out keep
    /// their defaults; an unknown key or a bad value changes nothing and names the problem.
    Import(ImportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/smsdesk.db")]
    database_url: String,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The file to read, or `-` for standard input.
    file: String,
    /// Check the document and print what it would change, without applying it.
    #[arg(long)]
    check: bool,
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/smsdesk.db")]
    database_url: String,
}

pub fn run(command: SettingsCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            SettingsCommand::Export(args) => {
                let db = open(&args.database_url).await?;
                let settings = backend::settings::sending(&db)
                    .await
                    .context("reading the settings")?;
                let mut out = std::io::stdout().lock();
                serde_json::to_writer_pretty(&mut out, &settings)?;
                writeln!(out)?;
                Ok(ExitCode::SUCCESS)
            }
            SettingsCommand::Import(args) => import(args).await,
        }
    })
}

async fn open(url: &str) -> anyhow::Result<Db> {
    let db = Db::connect(url)
        .await
        .context("opening the database (DATABASE_URL)")?;
    db.migrate().await.context("migrating the database")?;
    Ok(db)
}

async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let text = if args.file == "-" {
        super::read_stdin()?
    } else {
        std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file))?
    };
    let settings = match parse(&text) {
        Ok(s) => s,
        Err(problem) => return refused(&problem),
    };
    if let Err(e) = backend::settings::validate(&settings) {
        return refused(&format!("{}: {}", e.field, e.message));
    }
    let db = open(&args.database_url).await?;
    let before = backend::settings::sending(&db)
        .await
        .context("reading the current settings")?;
    let changed = changed_keys(
        &serde_json::to_value(&before)?,
        &serde_json::to_value(&settings)?,
    );
    if !args.check && !changed.is_empty() {
        match backend::settings::save_sending(&db, &Actor::cli(), &settings).await {
            Ok(()) => {}
            Err(SettingsStoreError::Invalid(e)) => {
                return refused(&format!("{}: {}", e.field, e.message));
            }
            Err(e) => return Err(e).context("saving the settings"),
        }
    }
    super::print_json(&serde_json::json!({
        "applied": !args.check && !changed.is_empty(),
        "changed": changed,
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// The document was not applied: why, on standard error, and exit code 2.
fn refused(problem: &str) -> anyhow::Result<ExitCode> {
    writeln!(std::io::stderr(), "smsdesk: {problem}; nothing was changed")?;
    Ok(ExitCode::from(2))
}

/// The settings a document describes, or what is wrong with it (unknown keys named: a typo must
/// not silently leave a limit at its default).
fn parse(text: &str) -> Result<SendingSettings, String> {
    let given: Value =
        serde_json::from_str(text).map_err(|e| format!("the document is not JSON: {e}"))?;
    if !given.is_object() {
        return Err(
            "the document must be a JSON object, as `smsdesk settings export` prints".into(),
        );
    }
    let settings: SendingSettings = serde_json::from_value(given.clone())
        .map_err(|e| format!("the settings are not valid: {e}"))?;
    let known = serde_json::to_value(&settings).expect("settings serialize");
    let unknown = unknown_keys(&given, &known, "");
    if !unknown.is_empty() {
        return Err(format!(
            "unknown setting(s) {}: `smsdesk settings export` shows the names",
            unknown.join(", ")
        ));
    }
    Ok(settings)
}

/// Keys of `given` (as dotted paths) that `known` does not have.
fn unknown_keys(given: &Value, known: &Value, prefix: &str) -> Vec<String> {
    let (Value::Object(given), Value::Object(known)) = (given, known) else {
        return Vec::new();
    };
    given
        .iter()
        .flat_map(|(k, v)| {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match known.get(k) {
                None => vec![path],
                Some(inner) => unknown_keys(v, inner, &path),
            }
        })
        .collect()
}

/// Dotted paths whose values differ between two documents.
fn changed_keys(before: &Value, after: &Value) -> Vec<String> {
    fn walk(before: &Value, after: &Value, prefix: &str, out: &mut Vec<String>) {
        match (before, after) {
            (Value::Object(b), Value::Object(a)) => {
                let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(
                        b.get(k).unwrap_or(&Value::Null),
                        a.get(k).unwrap_or(&Value::Null),
                        &path,
                        out,
                    );
                }
            }
            (b, a) if b != a => out.push(prefix.to_owned()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(before, after, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_key_is_named_and_refused() {
        let problem = parse(r#"{"limits": {"per_secnd": 5}}"#).expect_err("refused");
        assert!(problem.contains("limits.per_secnd"), "{problem}");
        let problem = parse(r#"{"limitz": {}}"#).expect_err("refused");
        assert!(problem.contains("limitz"), "{problem}");
        assert!(parse("[]").is_err());
        assert!(parse("{").is_err());
    }

    #[test]
    fn an_exported_document_reads_back_unchanged() {
        let settings = SendingSettings::default();
        let text = serde_json::to_string_pretty(&settings).expect("json");
        assert_eq!(parse(&text).expect("valid"), settings);
    }

    #[test]
    fn changes_are_listed_by_their_paths() {
        let mut after = SendingSettings::default();
        after.limits.per_second = 5;
        after.allowed_countries.push("GB".into());
        let changed = changed_keys(
            &serde_json::to_value(SendingSettings::default()).expect("json"),
            &serde_json::to_value(&after).expect("json"),
        );
        assert_eq!(changed, ["allowed_countries", "limits.per_second"]);
    }
}
