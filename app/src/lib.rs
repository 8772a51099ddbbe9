//! What people see: the smsdesk console's pages and components (Leptos, rendered on the server and
//! hydrated in the browser), and the server functions behind them.
//!
//! Built twice: with `ssr` into the server, with `hydrate` into the browser's wasm. Both run the
//! same `domain` code, so the live counter and the server agree.

// Leptos' nested view types (a page inside Suspense inside the router) need more than rustc's
// default query depth when their layout is computed for hydration.
#![recursion_limit = "256"]

pub mod access;
pub mod api;
pub mod auth;
pub mod error;
pub mod layout;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod state;
pub mod templates;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

/// The HTML document around the app: what the server sends for every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The console: the navigation and the page for the current path.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Effects run only in the browser, after hydration: end-to-end tests wait for this attribute
    // before typing, so they test the hydrated page and not the server's HTML.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });

    let user = Resource::new(|| (), |_| auth::whoami());
    provide_context(pages::CurrentUser(user));

    view! {
        <Stylesheet id="leptos" href="/pkg/smsdesk.css"/>
        <Title formatter=|page: String| {
            if page.is_empty() { "smsdesk".to_owned() } else { format!("{page} · smsdesk") }
        }/>
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <div class="layout">
                <layout::Sidebar/>
                <main id="main" class="content" tabindex="-1">
                    <layout::ModeBanner/>
                    <Routes fallback=pages::NotFoundPage>
                        <Route path=path!("/login") view=pages::login::LoginPage/>
                        <Route path=path!("/") view=pages::home::HomePage/>
                        <Route path=path!("/templates") view=pages::templates::TemplatesPage/>
                        <Route path=path!("/templates/new") view=pages::templates::NewTemplatePage/>
                        <Route path=path!("/templates/:key") view=pages::templates::EditTemplatePage/>
                        <Route path=path!("/users") view=pages::users::UsersPage/>
                        <Route path=path!("/audit") view=pages::audit::AuditPage/>
                        <Route path=path!("/send") view=pages::send::SendPage/>
                        <Route path=path!("/settings") view=pages::settings::SettingsPage/>
                        <Route path=path!("/api-keys") view=pages::api_keys::ApiKeysPage/>
                        <Route path=path!("/account") view=pages::account::AccountPage/>
                    </Routes>
                </main>
            </div>
        </Router>
    }
}
