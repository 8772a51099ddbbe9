//! The command line: tools for operators and scripts. Commands print JSON on standard output, so
//! scripts and other languages can use the exact rules smsdesk applies.

mod admin;
mod budget;
mod consent;
mod phone;
mod seed;
mod segments;
mod serve;
mod settings;

use std::io::{self, BufRead, Read, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "smsdesk",
    version,
    about = "smsdesk: a self-hosted SMS operations console for Twilio"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Settings for `serve`, the default command.
    #[command(flatten)]
    serve: crate::settings::ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Starts the console and API (the default).
    Serve,
    /// Brings the database schema up to date and exits.
    Migrate(admin::MigrateArgs),
    /// Manages users from the command line.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manages API keys for the services that send through smsdesk.
    #[command(subcommand)]
    ApiKey(admin::ApiKeyCommand),
    /// Exports or imports the run-time settings (limits, retries, senders, pace, geo
    /// permissions, simulator) as JSON.
    #[command(subcommand)]
    Settings(settings::SettingsCommand),
    /// Budgets for scripts: `smsdesk budget set --period day|month --amount USD [--category
    /// NAME] [--hard-stop] [--warn 50,80,100]`, `smsdesk budget list`, `smsdesk budget remove`.
    #[command(subcommand)]
    Budget(budget::BudgetCommand),
    /// Checks the consent ledger: `smsdesk consent verify` names the first entry that was
    /// changed, removed, inserted or reordered.
    #[command(subcommand)]
    Consent(consent::ConsentCommand),
    /// Fills a database with realistic fake history: `smsdesk seed messages --count 1000000`
    /// (to try the console and the delivery log at size; refuses a database holding messages
    /// unless told).
    #[command(subcommand)]
    Seed(seed::SeedCommand),
    /// Counts the segments of a message body as Twilio bills them.
    ///
    /// Reads the body on standard input exactly as given (a trailing newline counts: use
    /// `printf '%s'` rather than `echo`) and prints one JSON object. With --jsonl, reads JSON lines
    /// {"text": "...", "smart": true|false} and prints one object per line.
    Segments(segments::Args),
    /// Parses a phone number into E.164 with its region and type.
    ///
    /// Reads one number on standard input and prints one JSON object. With --jsonl, reads JSON
    /// lines {"input": "...", "region": "US"} and prints one object per line.
    Phone(phone::Args),
}

impl Cli {
    pub fn run(self) -> ExitCode {
        let result = match self.command {
            None | Some(Command::Serve) => serve::run(self.serve),
            Some(Command::Migrate(args)) => admin::migrate(args),
            Some(Command::User(command)) => admin::user(command),
            Some(Command::ApiKey(command)) => admin::api_key(command),
            Some(Command::Settings(command)) => settings::run(command),
            Some(Command::Consent(command)) => consent::run(command),
            Some(Command::Budget(command)) => budget::run(command),
            Some(Command::Seed(command)) => seed::run(command),
            Some(Command::Segments(args)) => args.run(),
            Some(Command::Phone(args)) => args.run(),
        };
        match result {
            Ok(code) => code,
            Err(e) => {
                // The CLI's own error output: one line saying what went wrong.
                let _ = writeln!(io::stderr(), "smsdesk: {e:#}");
                ExitCode::from(2)
            }
        }
    }
}

/// Reads all of standard input as UTF-8 text.
fn read_stdin() -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    io::stdin().read_to_end(&mut bytes)?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "standard input is not UTF-8 text (invalid byte at offset {}): save the text as UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Applies `answer` to each non-blank JSON line of standard input and prints one JSON line each,
/// flushing as it goes so a caller can stream. A line that is not valid JSON for `T` gets an
/// error object of its own; the other lines are still answered.
fn for_each_json_line<T: serde::de::DeserializeOwned>(
    mut answer: impl FnMut(T) -> serde_json::Value,
) -> anyhow::Result<()> {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    for (number, line) in stdin.lock().lines().enumerate() {
        let line = line.map_err(|e| anyhow::anyhow!("reading line {}: {e}", number + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let value = match serde_json::from_str::<T>(&line) {
            Ok(request) => answer(request),
            Err(e) => {
                serde_json::json!({ "error": format!("line {}: not a valid request: {e}", number + 1) })
            }
        };
        serde_json::to_writer(&mut out, &value)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Prints one JSON value on its own line.
fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}
