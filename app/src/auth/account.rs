//! `/account` (everyone signed in): change one's own password. The current password is asked for
//! again; other sessions end, this one goes on.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::auth::ChangeOwnPassword;
use crate::components::{ErrorNote, Guarded};
use crate::error::AppError;

#[component]
pub fn AccountPage() -> impl IntoView {
    // The page's action is made here, once: the guard's closure may build its children more
    // than once while the server renders (see `Guarded`).
    let change = ServerAction::<ChangeOwnPassword>::new();
    view! {
        <Title text="Your account"/>
        <Guarded permission=None>
            <Account change/>
        </Guarded>
    }
}

#[component]
fn Account(change: ServerAction<ChangeOwnPassword>) -> impl IntoView {
    let new = RwSignal::new(String::new());
    let repeat = RwSignal::new(String::new());
    // Typed twice, so that a slip of the finger does not lock the person out.
    let mismatch = move || !repeat.get().is_empty() && new.get() != repeat.get();
    let error = move || change.value().get().and_then(Result::err);
    let done = move || matches!(change.value().get(), Some(Ok(())));
    view! {
        <h1>"Your account"</h1>
        <section aria-labelledby="change-password" class="narrow">
            <h2 id="change-password">"Change your password"</h2>
            <ActionForm action=change attr:class="stack">
                <div class="field">
                    <label for="current-password">"Current password"</label>
                    <input
                        id="current-password"
                        name="current"
                        type="password"
                        autocomplete="current-password"
                        required
                    />
                </div>
                <div class="field">
                    <label for="new-password">"New password"</label>
                    <input
                        id="new-password"
                        name="new"
                        type="password"
                        autocomplete="new-password"
                        minlength="10"
                        required
                        on:input=move |ev| new.set(event_target_value(&ev))
                    />
                    <p class="hint">"At least 10 characters."</p>
                </div>
                <div class="field">
                    <label for="repeat-password">"New password again"</label>
                    // No `name`: only the browser compares the two.
                    <input
                        id="repeat-password"
                        type="password"
                        autocomplete="new-password"
                        required
                        on:input=move |ev| repeat.set(event_target_value(&ev))
                    />
                </div>
                {move || mismatch().then(|| view! {
                    <p class="error" role="alert">"The two new passwords differ: type the same one twice."</p>
                })}
                {move || error().map(|e: AppError| view! { <ErrorNote error=e/> })}
                {move || done().then(|| view! {
                    <p role="status" data-testid="password-changed">
                        "Your password is changed. Your other sessions have ended; this one goes on."
                    </p>
                })}
                <button
                    type="submit"
                    class="button-primary"
                    disabled=move || mismatch() || change.pending().get()
                >
                    {move || if change.pending().get() { "Changing…" } else { "Change password" }}
                </button>
            </ActionForm>
        </section>
    }
}
