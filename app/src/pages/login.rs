//! `/login`: sign-in. After signing in, the page asked for (`?next=`) or the overview loads.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::auth::Login;

/// Only paths of this console are followed after sign-in (no open redirect).
fn safe_next(next: Option<String>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .unwrap_or_else(|| "/".to_owned())
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let next = safe_next(use_query_map().with_untracked(|q| q.get("next")));
    Effect::new(move |_| {
        if let Some(Ok(_)) = login.value().get() {
            let _ = window().location().set_href(&next);
        }
    });
    let error = move || login.value().get().and_then(Result::err);
    view! {
        <Title text="Sign in"/>
        <div class="narrow">
            <h1>"Sign in"</h1>
            <ActionForm action=login attr:class="stack">
                <div class="field">
                    <label for="login-email">"E-mail"</label>
                    <input id="login-email" name="email" type="email" autocomplete="username" required/>
                </div>
                <div class="field">
                    <label for="login-password">"Password"</label>
                    <input
                        id="login-password"
                        name="password"
                        type="password"
                        autocomplete="current-password"
                        required
                    />
                </div>
                {move || error().map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
                <button type="submit" class="button-primary" disabled=move || login.pending().get()>
                    {move || if login.pending().get() { "Signing in…" } else { "Sign in" }}
                </button>
            </ActionForm>
        </div>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(super::safe_next(Some("/templates".into())), "/templates");
        assert_eq!(super::safe_next(Some("//evil.example".into())), "/");
        assert_eq!(super::safe_next(Some("https://evil.example".into())), "/");
        assert_eq!(super::safe_next(None), "/");
    }
}
