//! `smsdesk seed messages --count 1000000`: fills a database with realistic finished messages
//! (`backend::seed`) to try the console and the delivery log at size, and for benchmarks. Fake
//! data: it refuses a database that already holds messages unless `--into-existing` says so.
//! Prints `{"written": N, "seconds": S}`.

use std::process::ExitCode;

use anyhow::Context;
use backend::crypto::DataKey;
use backend::db::Db;
use secrecy::ExposeSecret;

#[derive(Debug, clap::Subcommand)]
pub enum SeedCommand {
    /// Writes finished messages spread over the last days.
    Messages(MessagesArgs),
}

#[derive(Debug, clap::Args)]
pub struct MessagesArgs {
    /// How many.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Spread over this many days before now.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Seed of the random choices (the same seed writes the same messages).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Add to a database that already holds messages.
    #[arg(long)]
    into_existing: bool,
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/smsdesk.db")]
    database_url: String,
    #[arg(long, env = "SMSDESK_DATA_KEY", hide_env_values = true)]
    data_key: Option<String>,
}

pub fn run(command: SeedCommand) -> anyhow::Result<ExitCode> {
    let SeedCommand::Messages(args) = command;
    let key = crate::settings::key::<32>(
        "SMSDESK_DATA_KEY",
        args.data_key.as_deref(),
        "the key the server runs with (in .env after make run)",
    )?;
    let key = DataKey::new(key.expose_secret());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let db = Db::connect(&args.database_url)
            .await
            .context("opening the database (DATABASE_URL)")?;
        db.migrate().await.context("migrating the database")?;
        let empty = backend::seed::outbox_is_empty(&db)
            .await
            .context("reading the outbox")?;
        if !empty && !args.into_existing {
            anyhow::bail!(
                "this database already holds messages: seeding adds fake ones; pass --into-existing if that is what you want"
            );
        }
        let started = std::time::Instant::now();
        let spec = backend::seed::Spec {
            count: args.count,
            days: args.days,
            now: backend::db::now_micros(),
            seed: args.seed,
        };
        let written = backend::seed::messages(&db, &key, &spec, |n| {
            if n % 100_000 == 0 {
                eprintln!("{n} of {} written", args.count);
            }
        })
        .await
        .context("writing the messages")?;
        super::print_json(&serde_json::json!({
            "written": written,
            "seconds": started.elapsed().as_secs_f64(),
        }))?;
        Ok(ExitCode::SUCCESS)
    })
}
