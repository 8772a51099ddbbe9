//! The console's routes: every Leptos page, the server functions, and the static files cargo-leptos
//! builds into the site root (`target/site`: the wasm, its JS glue, the CSS, `public/`).

use std::process::ExitCode;

use app::{App, shell};
use axum::Router;
use leptos::config::LeptosOptions;
use leptos_axum::{LeptosRoutes, file_and_error_handler_with_context, generate_route_list};

/// Where the site is: `LEPTOS_*` variables as cargo-leptos sets them, else `target/site` and the
/// bundle name `smsdesk`. A binary built by plain `cargo build` (tests, clippy) has no compiled-in
/// bundle name, hence the default.
pub fn leptos_options() -> anyhow::Result<LeptosOptions> {
    let mut options = leptos::config::get_configuration(None)
        .map_err(|e| anyhow::anyhow!("reading the LEPTOS_* settings: {e}"))?
        .leptos_options;
    if options.output_name.is_empty() {
        options.output_name = "smsdesk".into();
    }
    Ok(options)
}

/// The console: pages (server-rendered, then hydrated), server functions under `/api`, and a
/// fallback that serves files from the site root or renders the not-found page with a 404.
///
/// `context` runs for every page render and every server function call: provide there what
/// server functions read with `expect_context` (the database, settings...).
pub fn router(
    options: LeptosOptions,
    context: impl Fn() + Clone + Send + Sync + 'static,
) -> Router<()> {
    let routes = generate_route_list(App);
    Router::new()
        .leptos_routes_with_context(&options, routes, context.clone(), {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(file_and_error_handler_with_context(context, shell))
        .with_state(options)
}

/// TEMPORARY, for the web scaffolding's own testing until `smsdesk serve` exists:
/// `smsdesk web-dev` serves the console alone on `LEPTOS_SITE_ADDR` (default 127.0.0.1:3000).
pub fn dev_serve() -> ExitCode {
    let run = async {
        let options = leptos_options()?;
        let addr = options.site_addr;
        let app = router(options, || ());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("smsdesk web-dev: listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    };
    match tokio::runtime::Runtime::new().map(|rt| rt.block_on(run)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("smsdesk web-dev: {e:#}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("smsdesk web-dev: starting the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
