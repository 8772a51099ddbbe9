//! The console's routes: every Leptos page, the server functions, and the static files cargo-leptos
//! builds into the site root (`target/site`: the wasm, its JS glue, the CSS, `public/`).

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
