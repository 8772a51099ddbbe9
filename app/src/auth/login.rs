//! `/login`: sign-in. After signing in, the page asked for (`?next=`) or the overview loads.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::auth::Login;
use crate::auth::enrol::{CodeStep, EnrolForm};
use crate::auth::second::{Enrolled, SignInStep};

/// Only paths of this console are followed after sign-in (no open redirect); anything else
/// goes to the overview. See [`is_console_path`].
fn safe_next(next: Option<String>) -> String {
    next.filter(|n| is_console_path(n))
        .unwrap_or_else(|| "/".to_owned())
}

/// Whether the browser reads `next` as a path on this site. It must start with one `/` followed
/// by anything but another `/` or a `\` (browsers read `//host` and `/\host` as another site),
/// and contain no `\`, whitespace or control character at all: browsers turn `\` into `/` and
/// silently drop tabs and newlines, so `/\t/evil.example` would become `//evil.example`.
fn is_console_path(next: &str) -> bool {
    let mut chars = next.chars();
    chars.next() == Some('/')
        && chars.next().is_none_or(|c| c != '/' && c != '\\')
        && !next
            .chars()
            .any(|c| c == '\\' || c.is_whitespace() || c.is_control())
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let next = safe_next(use_query_map().with_untracked(|q| q.get("next")));
    let go = {
        let next = next.clone();
        move || {
            let _ = window().location().set_href(&next);
        }
    };
    let step = move || login.value().get().and_then(Result::ok);
    Effect::new({
        let go = go.clone();
        move |_| {
            if let Some(SignInStep::Done(_)) = step() {
                go();
            }
        }
    });
    let error = move || login.value().get().and_then(Result::err);
    let finished = Callback::new({
        let go = go.clone();
        move |()| go()
    });
    let enrolled = Callback::new(move |_: Enrolled| go());
    view! {
        <Title text="Sign in"/>
        <div class="narrow">
            <h1>"Sign in"</h1>
            {move || match step() {
                Some(SignInStep::Code { masked }) => view! {
                    <CodeStep masked done=finished/>
                }.into_any(),
                Some(SignInStep::Enrol) => view! {
                    <p>
                        "Your role signs in with a second factor: a code texted to your phone. Add your mobile number to finish signing in."
                    </p>
                    <EnrolForm done=enrolled/>
                }.into_any(),
                _ => view! {
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
                }.into_any(),
            }}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/templates".into())), "/templates");
        assert_eq!(safe_next(Some("/".into())), "/");
        assert_eq!(
            safe_next(Some("/audit?action=user.role&actor=ops%40x.com".into())),
            "/audit?action=user.role&actor=ops%40x.com"
        );
        assert_eq!(safe_next(Some("//evil.example".into())), "/");
        assert_eq!(safe_next(Some("https://evil.example".into())), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn paths_a_browser_would_read_as_another_site_go_to_the_overview() {
        // Arrange: each as the page reads it from the query, already percent-decoded.
        let tricks = [
            "/\\evil.example",
            "\\/evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r//evil.example",
            "/ /evil.example",
            "/\u{0}/evil.example",
            "/\u{7f}/evil.example",
            "/\u{a0}/evil.example",
            "/\u{2028}/evil.example",
            "/templates\\..\\\\evil.example",
            "///evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
            " /templates",
        ];
        for trick in tricks {
            // Act
            let next = safe_next(Some(trick.to_owned()));
            // Assert
            assert_eq!(next, "/", "{trick:?} must not be followed");
        }
    }
}
