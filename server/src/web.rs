//! The console's routes: every Leptos page, the server functions, and the static files cargo-leptos
//! builds into the site root (`target/site`: the wasm, its JS glue, the CSS, `public/`).

use app::{App, shell};
use axum::Router;
use axum::http::{HeaderValue, header};
use leptos::config::LeptosOptions;
use leptos_axum::{LeptosRoutes, file_and_error_handler_with_context, generate_route_list};
use tower_http::set_header::SetResponseHeaderLayer;

/// The Content-Security-Policy of every console answer that is not a page (server functions,
/// files, health): nothing in it may run, load anything or be framed.
pub const ANSWER_POLICY: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The Content-Security-Policy of a console page rendered with `nonce`. Scripts: the console's
/// own files (under `/pkg`) and the inline scripts Leptos writes into the page (the hydration
/// loader, streamed resources), which all carry this render's nonce, so `'unsafe-inline'` is not
/// needed; `'wasm-unsafe-eval'` lets the browser compile the wasm bundle (JavaScript `eval`
/// stays forbidden). Everything else comes from this site only; no plugins, no `<base>`, forms
/// post only here, and no other site may frame the console (clickjacking).
pub fn page_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Puts the page policy with this render's nonce on the response being rendered. Leptos makes a
/// nonce for every page render (none for server functions, which keep [`ANSWER_POLICY`]).
fn set_page_policy() {
    let Some(nonce) = leptos::nonce::use_nonce() else {
        return;
    };
    let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() else {
        return;
    };
    match HeaderValue::from_str(&page_policy(&nonce)) {
        Ok(policy) => response.insert_header(header::CONTENT_SECURITY_POLICY, policy),
        // A nonce is URL-safe base64; this cannot happen, and the strict default then applies.
        Err(e) => tracing::error!(error = %e, "the page's Content-Security-Policy is unreadable"),
    }
}

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
/// server functions read with `expect_context` (the database, settings...). Pages get their
/// Content-Security-Policy ([`page_policy`]) there too.
///
/// Pages and server-function answers are about one person at one moment, so no browser or proxy
/// may store them (`Cache-Control: no-store`); files served by the fallback (the wasm, JS and CSS
/// under `/pkg`) keep their caching.
pub fn router(
    options: LeptosOptions,
    context: impl Fn() + Clone + Send + Sync + 'static,
) -> Router<()> {
    let context = move || {
        context();
        set_page_policy();
    };
    let routes = generate_route_list(App);
    // The bundle (wasm, JS, CSS) is served by tower-http directly, outside any Leptos owner:
    // leptos_axum's fallback serves a file inside a new reactive owner, and a page rendering on
    // the same thread at that moment could lend that file its own status and headers (seen: the
    // wasm answered 403 with the page policy of a forbidden page being rendered).
    let pkg = std::path::Path::new(&*options.site_root).join(&*options.site_pkg_dir);
    Router::new()
        .leptos_routes_with_context(&options, routes, context.clone(), {
            let options = options.clone();
            move || shell(options.clone())
        })
        .route_layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .nest_service(
            &format!("/{}", options.site_pkg_dir),
            tower_http::services::ServeDir::new(pkg),
        )
        .fallback(file_and_error_handler_with_context(context, shell))
        .with_state(options)
}

/// Adds what every console answer carries (pages, server functions, files, health, refusals):
/// the strict [`ANSWER_POLICY`] unless the answer is a page with its own, no MIME sniffing (a
/// file is only ever what its type says), and no address of a console page sent to other sites.
pub fn with_security_headers(console: Router) -> Router {
    console
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(ANSWER_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
}
