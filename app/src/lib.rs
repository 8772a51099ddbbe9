//! What people see: the smsdesk console's pages and components (Leptos, rendered on the server and
//! hydrated in the browser), and the server functions behind them.
//!
//! One module per area of the console, its pages and its server functions together: `templates`,
//! `send`, `messages` (the delivery log), `inbox`, `consent`, `settings`, `api_keys`, `users`, `audit`,
//! and `auth` (sign-in, one's own account, and the session every other area checks); `home` is
//! the overview. In an area, `api` holds the server functions and the types they answer with;
//! each checks the session's role on the server before it does anything. `page` (`pages` for
//! templates) holds the pages, which are thin: they load data through server functions, check
//! the role (the server has already answered 403 or redirected; this draws the page that says
//! so), and hand the data to components. What several areas share is in `components`.
//!
//! Built twice: with `ssr` into the server, with `hydrate` into the browser's wasm. Both run the
//! same `domain` code, so the live counter and the server agree.

// Leptos' nested view types (a page inside Suspense inside the router) need more than rustc's
// default query depth when their layout is computed for hydration.
#![recursion_limit = "256"]

pub mod access;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod components;
pub mod consent;
pub mod error;
pub mod home;
pub mod inbox;
pub mod messages;
pub mod send;
pub mod settings;
pub mod spend;
#[cfg(feature = "ssr")]
pub mod state;
pub mod templates;
pub mod users;
pub mod verify;

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
    provide_context(components::CurrentUser(user));

    view! {
        <Stylesheet id="leptos" href="/pkg/smsdesk.css"/>
        <Title formatter=|page: String| {
            if page.is_empty() { "smsdesk".to_owned() } else { format!("{page} · smsdesk") }
        }/>
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <div class="layout">
                <components::layout::Sidebar/>
                <main id="main" class="content" tabindex="-1">
                    <components::layout::ModeBanner/>
                    <components::layout::BudgetBanner/>
                    <Routes fallback=components::NotFoundPage>
                        <Route path=path!("/login") view=auth::login::LoginPage/>
                        <Route path=path!("/") view=home::HomePage/>
                        <Route path=path!("/templates") view=templates::pages::TemplatesPage/>
                        <Route path=path!("/templates/new") view=templates::pages::NewTemplatePage/>
                        <Route path=path!("/templates/:key") view=templates::pages::EditTemplatePage/>
                        <Route path=path!("/users") view=users::page::UsersPage/>
                        <Route path=path!("/audit") view=audit::page::AuditPage/>
                        <Route path=path!("/consent") view=consent::page::ConsentPage/>
                        <Route path=path!("/inbox") view=inbox::page::InboxPage/>
                        <Route path=path!("/send") view=send::page::SendPage/>
                        <Route path=path!("/messages") view=messages::page::LogPage/>
                        <Route path=path!("/messages/:sid") view=messages::page::MessagePage/>
                        <Route path=path!("/settings") view=settings::page::SettingsPage/>
                        <Route path=path!("/spend") view=spend::page::SpendPage/>
                        <Route path=path!("/api-keys") view=api_keys::page::ApiKeysPage/>
                        <Route path=path!("/account") view=auth::account::AccountPage/>
                        <Route path=path!("/verify") view=verify::page::VerifyPage/>
                        <Route path=path!("/simulator") view=verify::page::SimulatorPage/>
                    </Routes>
                </main>
            </div>
        </Router>
    }
}
