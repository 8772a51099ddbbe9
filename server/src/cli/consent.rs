//! `smsdesk consent verify`: checks the consent ledger's hash chain. Prints
//! `{"ok": true, "entries": N}` and exits 0 when every entry follows the one before; otherwise
//! prints the first entry that does not (`{"ok": false, "entry": ID, "problem": "..."}`) and
//! exits 1.

use std::process::ExitCode;

use anyhow::Context;
use backend::db::Db;
use domain::consent::ChainBreak;

#[derive(Debug, clap::Subcommand)]
pub enum ConsentCommand {
    /// Checks that no ledger entry was changed, removed, inserted or reordered.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/smsdesk.db")]
    database_url: String,
}

pub fn run(command: ConsentCommand) -> anyhow::Result<ExitCode> {
    let ConsentCommand::Verify(args) = command;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let db = Db::connect(&args.database_url)
            .await
            .context("opening the database (DATABASE_URL)")?;
        db.migrate().await.context("migrating the database")?;
        backend::consent::seal_unchained(&db)
            .await
            .context("sealing entries from before the chain")?;
        let verdict = backend::consent::verify(&db)
            .await
            .context("reading the consent ledger")?;
        match verdict {
            Ok(entries) => {
                super::print_json(&serde_json::json!({ "ok": true, "entries": entries }))?;
                Ok(ExitCode::SUCCESS)
            }
            Err(broken) => {
                let id = match broken {
                    ChainBreak::Link { id } | ChainBreak::Changed { id } => id,
                };
                super::print_json(&serde_json::json!({
                    "ok": false,
                    "entry": id,
                    "problem": broken.to_string(),
                }))?;
                Ok(ExitCode::from(1))
            }
        }
    })
}
