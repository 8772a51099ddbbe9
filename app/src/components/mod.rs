//! What several screens share: the signed-in user ([`CurrentUser`]), the guard every page draws
//! itself in ([`Guarded`]) and what it shows a role that may not open the page ([`Forbidden`]), a
//! server function's error in a sentence ([`ErrorNote`]), the page for unknown paths, a moment in
//! the viewer's time zone ([`LocalTime`]), and the frame around every page (`layout`).

pub mod layout;
pub mod time;

pub use time::LocalTime;

use domain::access::Permission;
use leptos::prelude::*;
use leptos_meta::Title;

use crate::auth::SessionUser;
use crate::error::AppError;

/// The signed-in user, loaded once per page load and shared by the navigation and the pages.
#[derive(Clone, Copy)]
pub struct CurrentUser(pub Resource<Result<Option<SessionUser>, AppError>>);

/// Shows `children` when the signed-in user's role has `permission` (any signed-in user when
/// `None`), otherwise a page saying why not.
#[component]
pub fn Guarded(permission: Option<Permission>, children: ChildrenFn) -> impl IntoView {
    let CurrentUser(user) = expect_context::<CurrentUser>();
    // While the server renders, this closure may run more than once (Suspense runs it first to
    // find the resources it reads), so `children` are built more than once. Pages therefore make
    // their resources outside `Guarded`: a resource made in here would be made twice, and the
    // browser could pair its own with the discarded one's value (a hydration error, now and then).
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || user.get().map(|result| match result {
                Ok(Some(u)) if permission.is_none_or(|p| u.can(p)) => children().into_any(),
                Ok(Some(u)) => view! { <Forbidden role=u.role.label()/> }.into_any(),
                Ok(None) => view! {
                    <p>"Your session has ended. " <a href="/login">"Sign in"</a> " again."</p>
                }
                .into_any(),
                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
            })}
        </Suspense>
    }
}

/// What a role sees on a page it may not open (the server answers it with 403).
#[component]
pub fn Forbidden(role: &'static str) -> impl IntoView {
    view! {
        <Title text="Not allowed"/>
        <h1>"Not allowed"</h1>
        <p>
            "Your role (" {role} ") is not allowed to open this page. "
            "Ask an admin if you need it, or go back to the " <a href="/">"overview"</a> "."
        </p>
    }
}

/// Shows a server function's error in a sentence.
#[component]
pub fn ErrorNote(error: AppError) -> impl IntoView {
    view! { <p class="error" role="alert">{error.to_string()}</p> }
}

#[component]
pub fn NotFoundPage() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found"/>
        <h1>"Page not found"</h1>
        <p>"There is no page at this address. " <a href="/">"Go to the overview"</a> "."</p>
    }
}
