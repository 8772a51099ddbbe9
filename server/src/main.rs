//! The `smsdesk` binary: reads its command line and runs the command.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // TEMPORARY (web scaffolding): serves the console alone until `smsdesk serve` exists.
    if std::env::args().nth(1).as_deref() == Some("web-dev") {
        return server::web::dev_serve();
    }
    // `.env` is read before the command line, so the environment and flags still win.
    let _ = dotenvy::dotenv();
    server::cli::Cli::parse().run()
}
