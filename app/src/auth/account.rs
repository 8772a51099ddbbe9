//! `/account` (everyone signed in): change one's own password (the current password is asked for
//! again; other sessions end, this one goes on), and the second factor: add or change the mobile
//! number sign-in codes go to (recovery codes shown once), or remove it given the password.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::auth::ChangeOwnPassword;
use crate::auth::enrol::EnrolForm;
use crate::auth::second::{RemoveSecondFactor, SecondFactorView, second_factor};
use crate::components::{ErrorNote, Guarded};
use crate::error::AppError;

#[component]
pub fn AccountPage() -> impl IntoView {
    // The page's action is made here, once: the guard's closure may build its children more
    // than once while the server renders (see `Guarded`).
    let change = ServerAction::<ChangeOwnPassword>::new();
    let remove = ServerAction::<RemoveSecondFactor>::new();
    let refresh = RwSignal::new(0u32);
    let standing = Resource::new(
        move || (refresh.get(), remove.version().get()),
        |_| second_factor(),
    );
    view! {
        <Title text="Your account"/>
        <Guarded permission=None>
            <Account change/>
            <SecondFactor standing remove refresh/>
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

#[component]
fn SecondFactor(
    standing: Resource<Result<SecondFactorView, AppError>>,
    remove: ServerAction<RemoveSecondFactor>,
    refresh: RwSignal<u32>,
) -> impl IntoView {
    let adding = RwSignal::new(false);
    let enrolled = Callback::new(move |_| {
        adding.set(false);
        refresh.update(|n| *n += 1);
    });
    let remove_error = move || remove.value().get().and_then(Result::err);
    view! {
        <section aria-labelledby="second-factor" class="narrow">
            <h2 id="second-factor">"Second factor"</h2>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || standing.get().map(|s| match s {
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    Ok(s) => {
                    let has_phone = s.masked.is_some();
                    view! {
                        <div class="stack">
                            {match s.masked.clone() {
                                Some(masked) => view! {
                                    <p data-testid="second-factor-on">
                                        "Sign-in codes go to " <strong>{masked}</strong> ". "
                                        {format!("{} recovery codes left.", s.recovery_left)}
                                    </p>
                                }.into_any(),
                                None => view! {
                                    <p data-testid="second-factor-off">
                                        "You sign in with your password alone. Add a mobile number and each sign-in will also ask for a code texted to it."
                                    </p>
                                }.into_any(),
                            }}
                            {s.required.then(|| view! {
                                <p class="hint">"Your role must sign in with a second factor."</p>
                            })}
                            {move || if adding.get() {
                                view! { <EnrolForm done=enrolled ask_password=true/> }.into_any()
                            } else {
                                view! {
                                    <button type="button" on:click=move |_| adding.set(true)>
                                        {if has_phone { "Change the number (new recovery codes)" } else { "Add a mobile number" }}
                                    </button>
                                }.into_any()
                            }}
                            {(has_phone && !s.required).then(|| view! {
                                <ActionForm action=remove attr:class="stack">
                                    <div class="field">
                                        <label for="remove-password">"Password, to remove the second factor"</label>
                                        <input
                                            id="remove-password"
                                            name="password"
                                            type="password"
                                            autocomplete="current-password"
                                            required
                                        />
                                    </div>
                                    {move || remove_error().map(|e| view! { <ErrorNote error=e/> })}
                                    <button type="submit" disabled=move || remove.pending().get()>
                                        "Remove the second factor"
                                    </button>
                                </ActionForm>
                            })}
                        </div>
                    }.into_any()
                    }
                })}
            </Suspense>
        </section>
    }
}
