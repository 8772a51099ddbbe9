//! `smsdesk serve` (the default): start the console and API.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use secrecy::ExposeSecret;

use crate::settings::{LogFormat, ServeArgs};
use crate::startup::Application;

/// Logs go to standard error: readable text or JSON lines (`SMSDESK_LOG_FORMAT`; by default
/// text at a terminal, JSON otherwise). `RUST_LOG` filters, default `info`.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_sessions=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init();
    } else {
        builder.compact().init();
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_tracing(args.log_format);
    let settings = match args.check() {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "smsdesk cannot start: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let simulator = settings.twilio.is_none();
        let backend = if settings.database_url.starts_with("sqlite:") { "SQLite" } else { "PostgreSQL" };
        let app = Application::build(settings).await?;
        let address = app.address();
        if let Some((email, password)) = &app.generated_admin {
            // Printed once, on purpose, on standard output: it is never logged.
            println!(
                "First admin created: sign in at http://{address}/login as {email} with the password {} (shown only now).",
                password.expose_secret()
            );
        }
        tracing::info!(
            %address,
            database = backend,
            sending = if simulator { "simulator" } else { "twilio" },
            "smsdesk listening on http://{address}"
        );
        app.run_until(shutdown_signal()).await?;
        tracing::info!("smsdesk stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Completes on Ctrl+C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
