//! `/consent` (compliance officers and admins): look a number up (its state and every entry with
//! its evidence), record an opt-out or opt-in by hand with a note, and read the latest changes.
//! The number looked up is in the address (`?number=`), so the lookup works without JavaScript.

use domain::access::Permission;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::{ErrorNote, Guarded, LocalTime};
use crate::consent::api::{
    ConsentEntry, ConsentOfNumber, MAX_NOTE, RecordConsent, number_consent, recent_consent,
};
use crate::error::AppError;

#[component]
pub fn ConsentPage() -> impl IntoView {
    // Made here, once: the guard's closure may build its children more than once (`Guarded`).
    let address = use_query_map();
    let number =
        Memo::new(move |_| address.with(|q| q.get("number").filter(|n| !n.trim().is_empty())));
    let record = ServerAction::<RecordConsent>::new();
    let found = Resource::new(
        move || (number.get(), record.version().get()),
        |(number, _)| async move {
            match number {
                Some(n) => number_consent(n).await.map(Some),
                None => Ok(None),
            }
        },
    );
    let recent = Resource::new(move || record.version().get(), |_| recent_consent());
    view! {
        <Title text="Consent"/>
        <Guarded permission=Some(Permission::ViewConsent)>
            <Consent number found recent record/>
        </Guarded>
    }
}

#[component]
fn Consent(
    number: Memo<Option<String>>,
    found: Resource<Result<Option<ConsentOfNumber>, AppError>>,
    recent: Resource<Result<Vec<ConsentEntry>, AppError>>,
    record: ServerAction<RecordConsent>,
) -> impl IntoView {
    let typed = move || number.get().unwrap_or_default();
    view! {
        <h1>"Consent"</h1>
        <form method="get" action="/consent" class="field-row" aria-label="Look a number up">
            <div class="field">
                <label for="consent-number">"Phone number"</label>
                <input id="consent-number" name="number" type="tel" required placeholder="any format" value=typed/>
            </div>
            <button type="submit" class="button-primary">"Look up"</button>
        </form>
        <Suspense fallback=|| view! { <p class="muted">"Looking up…"</p> }>
            {move || Suspend::new(async move {
                match found.await {
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    Ok(None) => ().into_any(),
                    Ok(Some(n)) => view! { <NumberState n/> }.into_any(),
                }
            })}
        </Suspense>
        <section aria-labelledby="by-hand">
            <h2 id="by-hand">"Record by hand"</h2>
            <p class="hint">"When someone asks by phone or e-mail. The note is kept as the evidence."</p>
            <ActionForm action=record attr:class="field-grid">
                <div class="field">
                    <label for="record-number">"Number to change"</label>
                    <input id="record-number" name="number" type="tel" required value=typed/>
                </div>
                <div class="field">
                    <label for="record-action">"Change"</label>
                    <select id="record-action" name="action">
                        <option value="opt_out">"Opt out (stop sending)"</option>
                        <option value="opt_in">"Opt in (may send again)"</option>
                    </select>
                </div>
                <div class="field">
                    <label for="record-note">"Note"</label>
                    <input id="record-note" name="note" required maxlength=MAX_NOTE.to_string() placeholder="Customer called on 30 Nov, ticket 4411"/>
                </div>
                <div class="form-actions">
                    <button type="submit" class="button-primary">"Record"</button>
                </div>
            </ActionForm>
            {move || record.value().get().map(|r| match r {
                Ok(()) => view! { <p role="status" data-testid="consent-recorded">"Recorded."</p> }.into_any(),
                Err(e) => view! { <ErrorNote error=e/> }.into_any(),
            })}
        </section>
        <section aria-labelledby="recent">
            <h2 id="recent">"Latest changes"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match recent.await {
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p>"No opt-outs or opt-ins yet."</p> }.into_any(),
                        Ok(list) => view! { <Entries list testid="consent-recent"/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn NumberState(n: ConsentOfNumber) -> impl IntoView {
    view! {
        <section data-testid="consent-state">
            {if n.opted_out {
                view! { <p class="warning"><code>{n.number.clone()}</code> " has opted out: smsdesk does not send to it."</p> }.into_any()
            } else if n.history.is_empty() {
                view! { <p><code>{n.number.clone()}</code> " has no opt-out or opt-in on record: smsdesk sends to it."</p> }.into_any()
            } else {
                view! { <p><code>{n.number.clone()}</code> " has opted back in: smsdesk sends to it."</p> }.into_any()
            }}
            {(!n.history.is_empty()).then(|| view! { <Entries list=n.history testid="consent-history"/> })}
        </section>
    }
}

#[component]
fn Entries(list: Vec<ConsentEntry>, testid: &'static str) -> impl IntoView {
    view! {
        <table class="table" data-testid=testid>
            <thead>
                <tr>
                    <th scope="col">"When"</th>
                    <th scope="col">"Number"</th>
                    <th scope="col">"Change"</th>
                    <th scope="col">"Source"</th>
                    <th scope="col">"Evidence"</th>
                </tr>
            </thead>
            <tbody>
                {list.into_iter().map(|e| view! {
                    <tr>
                        <td><LocalTime micros=e.at/></td>
                        <td><code>{e.number}</code></td>
                        <td>{if e.action == "opt_out" { "opt-out" } else { "opt-in" }}</td>
                        <td>{e.source}</td>
                        <td>{e.evidence}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}
