//! Forms of the second factor, shared by the sign-in page and the account page: the code step
//! of a sign-in (with "send again" after a pause) and adding a mobile number (send a code,
//! confirm it, see the recovery codes once).

use leptos::prelude::*;

use crate::auth::second::{
    ConfirmPhone, EnrolPhone, Enrolled, RESEND_PAUSE, ResendSignInCode, SignInCode,
};
use crate::components::ErrorNote;
use crate::error::AppError;

/// A signal that turns true `RESEND_PAUSE` after each `restart` (in the browser; the server
/// renders these steps only after an action, so never).
fn pause() -> (ReadSignal<bool>, impl Fn() + Copy) {
    let (ready, set_ready) = signal(false);
    let restart = move || {
        set_ready.set(false);
        set_timeout(move || set_ready.set(true), RESEND_PAUSE);
    };
    (ready, restart)
}

/// The code step of a sign-in: the SMS code or a recovery code; `done` runs once signed in.
#[component]
pub fn CodeStep(masked: String, done: Callback<()>) -> impl IntoView {
    let check = ServerAction::<SignInCode>::new();
    let resend = ServerAction::<ResendSignInCode>::new();
    let (ready, restart) = pause();
    restart();
    Effect::new(move |_| {
        if let Some(Ok(_)) = check.value().get() {
            done.run(());
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(())) = resend.value().get() {
            restart();
        }
    });
    let error = move || {
        check
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| resend.value().get().and_then(Result::err))
    };
    let sent_again = move || matches!(resend.value().get(), Some(Ok(())));
    view! {
        <ActionForm action=check attr:class="stack" attr:data-testid="code-step">
            <p>"We texted a code to " <strong>{masked}</strong> ". It works for 10 minutes."</p>
            <div class="field">
                <label for="sign-in-code">"Code"</label>
                <input
                    id="sign-in-code"
                    name="code"
                    type="text"
                    inputmode="numeric"
                    autocomplete="one-time-code"
                    autofocus
                    required
                />
                <p class="hint">"Lost your phone? Type one of your recovery codes instead."</p>
            </div>
            {move || error().map(|e: AppError| view! { <ErrorNote error=e/> })}
            {move || sent_again().then(|| view! { <p role="status">"A new text is on its way (the same code)."</p> })}
            <div class="form-actions">
                <button type="submit" class="button-primary" disabled=move || check.pending().get()>
                    {move || if check.pending().get() { "Checking…" } else { "Sign in" }}
                </button>
                <button
                    type="button"
                    disabled=move || !ready.get() || resend.pending().get()
                    title=format!("Available {} seconds after each text", RESEND_PAUSE.as_secs())
                    on:click=move |_| {
                        resend.dispatch(ResendSignInCode {});
                    }
                >
                    "Send again"
                </button>
            </div>
        </ActionForm>
    }
}

/// Adding a mobile number: send a code to it, confirm it, then the recovery codes (once).
/// `done` gets what the confirmation returned when the person has read the codes. Signed in
/// (`ask_password`), the password is asked for with the number.
#[component]
pub fn EnrolForm(done: Callback<Enrolled>, #[prop(optional)] ask_password: bool) -> impl IntoView {
    let send = ServerAction::<EnrolPhone>::new();
    let confirm = ServerAction::<ConfirmPhone>::new();
    let sent_to = move || send.value().get().and_then(Result::ok);
    let enrolled = move || confirm.value().get().and_then(Result::ok);
    let send_error = move || send.value().get().and_then(Result::err);
    let confirm_error = move || confirm.value().get().and_then(Result::err);
    view! {
        <div class="stack" data-testid="enrol">
            {move || match enrolled() {
                Some(result) => {
                    let codes = result.recovery_codes.clone();
                    view! {
                        <div class="stack" data-testid="recovery-codes">
                            <p role="status">
                                "Your phone is confirmed. Keep these recovery codes somewhere safe: each signs you in once if you lose your phone. They are shown only now."
                            </p>
                            <ul class="recovery-codes">
                                {codes.into_iter().map(|c| view! { <li><code>{c}</code></li> }).collect_view()}
                            </ul>
                            <button
                                type="button"
                                class="button-primary"
                                on:click=move |_| done.run(result.clone())
                            >
                                "I have kept them"
                            </button>
                        </div>
                    }
                        .into_any()
                }
                None => {
                    view! {
                        <ActionForm action=send attr:class="stack">
                            <div class="field">
                                <label for="enrol-phone">"Mobile number"</label>
                                <input
                                    id="enrol-phone"
                                    name="phone"
                                    type="tel"
                                    autocomplete="tel"
                                    placeholder="+61 412 345 678"
                                    required
                                />
                            </div>
                            {if ask_password {
                                view! {
                                    <div class="field">
                                        <label for="enrol-password">"Your password"</label>
                                        <input
                                            id="enrol-password"
                                            name="password"
                                            type="password"
                                            autocomplete="current-password"
                                            required
                                        />
                                    </div>
                                }.into_any()
                            } else {
                                view! { <input type="hidden" name="password" value=""/> }.into_any()
                            }}
                            {move || send_error().map(|e| view! { <ErrorNote error=e/> })}
                            <button type="submit" disabled=move || send.pending().get()>
                                {move || if sent_to().is_some() { "Send a new code" } else { "Send a code" }}
                            </button>
                        </ActionForm>
                        {move || sent_to().map(|masked| view! {
                            <ActionForm action=confirm attr:class="stack">
                                <p role="status">"We texted a code to " <strong>{masked}</strong> "."</p>
                                <div class="field">
                                    <label for="enrol-code">"Code from the text"</label>
                                    <input
                                        id="enrol-code"
                                        name="code"
                                        type="text"
                                        inputmode="numeric"
                                        autocomplete="one-time-code"
                                        required
                                    />
                                </div>
                                {move || confirm_error().map(|e| view! { <ErrorNote error=e/> })}
                                <button type="submit" class="button-primary" disabled=move || confirm.pending().get()>
                                    "Confirm"
                                </button>
                            </ActionForm>
                        })}
                    }
                        .into_any()
                }
            }}
        </div>
    }
}
