//! `/consent` (compliance officers and admins): look a number up (its state and every entry with
//! its evidence), record an opt-out or opt-in by hand with a note, read the latest changes
//! (filtered by kind and source), opt-outs per day as a chart, export the ledger as CSV (one
//! number, or a range of days) and import earlier records. The number looked up and the filters
//! are in the address (`?number=&action=&source=`): it all works without JavaScript.

use domain::access::Permission;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::{ErrorNote, Guarded, LocalTime};
use crate::consent::api::{
    CHART_DAYS, ConsentEntry, ConsentOfNumber, DayFigures, ImportConsent, MAX_NOTE, RecordConsent,
    consent_per_day, number_consent, recent_consent,
};
use crate::error::AppError;

#[component]
pub fn ConsentPage() -> impl IntoView {
    // Made here, once: the guard's closure may build its children more than once (`Guarded`).
    let address = use_query_map();
    let number =
        Memo::new(move |_| address.with(|q| q.get("number").filter(|n| !n.trim().is_empty())));
    let action = Memo::new(move |_| address.with(|q| q.get("action")));
    let source = Memo::new(move |_| address.with(|q| q.get("source")));
    let record = ServerAction::<RecordConsent>::new();
    let import = ServerAction::<ImportConsent>::new();
    let changed = move || (record.version().get(), import.version().get());
    let found = Resource::new(
        move || (number.get(), changed()),
        |(number, _)| async move {
            match number {
                Some(n) => number_consent(n).await.map(Some),
                None => Ok(None),
            }
        },
    );
    let recent = Resource::new(
        move || (action.get(), source.get(), changed()),
        |(action, source, _)| recent_consent(action, source),
    );
    let per_day = Resource::new(changed, |_| consent_per_day());
    let filters = Filters { action, source };
    view! {
        <Title text="Consent"/>
        <Guarded permission=Some(Permission::ViewConsent)>
            <Consent number found record/>
            <RecentFilters filters number/>
            <Changes recent/>
            <PerDay per_day/>
            <Export number/>
            <Import import/>
        </Guarded>
    }
}

/// The recent changes' filters, from the address.
#[derive(Clone, Copy)]
struct Filters {
    action: Memo<Option<String>>,
    source: Memo<Option<String>>,
}

/// The sources offered as filters: value and label.
const SOURCES: [(&str, &str); 4] = [
    ("inbound", "a reply (STOP, START)"),
    ("console", "recorded by hand"),
    ("twilio_callback", "Twilio's 21610"),
    ("import", "imported"),
];

#[component]
fn RecentFilters(filters: Filters, number: Memo<Option<String>>) -> impl IntoView {
    let selected = move |memo: Memo<Option<String>>, value: &'static str| {
        move || memo.get().as_deref() == Some(value)
    };
    view! {
        <section aria-labelledby="recent">
            <h2 id="recent">"Latest changes"</h2>
            <form method="get" action="/consent" class="field-row" aria-label="Filter the latest changes">
                {move || number.get().map(|n| view! { <input type="hidden" name="number" value=n/> })}
                <div class="field">
                    <label for="recent-action">"Changes"</label>
                    <select id="recent-action" name="action">
                        <option value="">"opt-outs and opt-ins"</option>
                        <option value="opt_out" selected=selected(filters.action, "opt_out")>"opt-outs"</option>
                        <option value="opt_in" selected=selected(filters.action, "opt_in")>"opt-ins"</option>
                    </select>
                </div>
                <div class="field">
                    <label for="recent-source">"From"</label>
                    <select id="recent-source" name="source">
                        <option value="">"any source"</option>
                        {SOURCES.into_iter().map(|(value, label)| view! {
                            <option value=value selected=selected(filters.source, value)>{label}</option>
                        }).collect_view()}
                    </select>
                </div>
                <button type="submit">"Filter"</button>
            </form>
        </section>
    }
}

#[component]
fn Changes(recent: Resource<Result<Vec<ConsentEntry>, AppError>>) -> impl IntoView {
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match recent.await {
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <p data-testid="consent-recent-empty">"No changes match."</p> }.into_any(),
                    Ok(list) => view! { <Entries list testid="consent-recent"/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn PerDay(per_day: Resource<Result<Vec<DayFigures>, AppError>>) -> impl IntoView {
    let alt = format!("Opt-outs (bars) and opt-ins (line) per day over the last {CHART_DAYS} days");
    view! {
        <section aria-labelledby="per-day">
            <h2 id="per-day">"Opt-outs per day (last " {CHART_DAYS} " days, UTC)"</h2>
            <img src=format!("/consent/opt-outs.svg?days={CHART_DAYS}") alt=alt width="720" height="180" class="chart"/>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match per_day.await {
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                        Ok(days) => {
                            let outs: i64 = days.iter().map(|d| d.opt_outs).sum();
                            let ins: i64 = days.iter().map(|d| d.opt_ins).sum();
                            view! {
                                <details data-testid="consent-per-day">
                                    <summary>{outs} " opt-outs and " {ins} " opt-ins: the figures per day"</summary>
                                    <table class="table">
                                        <thead><tr><th scope="col">"Day"</th><th scope="col">"Opt-outs"</th><th scope="col">"Opt-ins"</th></tr></thead>
                                        <tbody>
                                            {days.into_iter().rev().filter(|d| d.opt_outs + d.opt_ins > 0).map(|d| view! {
                                                <tr><td>{d.day}</td><td>{d.opt_outs}</td><td>{d.opt_ins}</td></tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                </details>
                            }.into_any()
                        }
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn Export(number: Memo<Option<String>>) -> impl IntoView {
    view! {
        <section aria-labelledby="export">
            <h2 id="export">"Export for auditors (CSV)"</h2>
            {move || number.get().map(|n| view! {
                <p>
                    <a data-testid="consent-export-number" rel="external" download href=format!("/consent/export.csv?number={}", crate::messages::page::encode(&n))>
                        "This number's whole history"
                    </a>
                </p>
            })}
            <form method="get" action="/consent/export.csv" class="field-row" aria-label="Export a range">
                <div class="field">
                    <label for="export-from">"From (UTC day)"</label>
                    <input id="export-from" name="from" type="date" required/>
                </div>
                <div class="field">
                    <label for="export-to">"To (UTC day, included)"</label>
                    <input id="export-to" name="to" type="date" required/>
                </div>
                <button type="submit">"Export"</button>
            </form>
            <p class="hint">"Each entry with its link in the chain (entry_hash), to check against " <code>"smsdesk consent verify"</code> "."</p>
        </section>
    }
}

#[component]
fn Import(import: ServerAction<ImportConsent>) -> impl IntoView {
    view! {
        <section aria-labelledby="import">
            <h2 id="import">"Import earlier records"</h2>
            <p class="hint">
                "CSV with a header naming " <code>"number,action,at,evidence"</code> ": action opt_out or opt_in, at a time "
                "(2025-06-30T14:05:00Z) or a UTC day, evidence what shows it. One bad row imports nothing; a record older "
                "than what the ledger holds for its number is kept out and listed. At most 5,000 records (250 KB) at a time. Audited."
            </p>
            <ActionForm action=import>
                <div class="field">
                    <label for="import-csv">"Records (CSV)"</label>
                    <textarea id="import-csv" name="csv" rows="6" required
                        placeholder="number,action,at,evidence\n+14155552671,opt_out,2025-06-30,Signed form 12"></textarea>
                </div>
                <div class="form-actions">
                    <button type="submit" class="button-primary">"Import"</button>
                </div>
            </ActionForm>
            {move || import.value().get().map(|r| match r {
                Ok(o) => view! {
                    <div role="status" data-testid="consent-imported">
                        <p>{format!("Imported {} record{}.", o.imported, if o.imported == 1 { "" } else { "s" })}</p>
                        {(!o.skipped.is_empty()).then(|| view! {
                            <p>"Kept out:"</p>
                            <ul>{o.skipped.into_iter().map(|s| view! { <li>{s}</li> }).collect_view()}</ul>
                        })}
                    </div>
                }.into_any(),
                Err(e) => view! { <ErrorNote error=e/> }.into_any(),
            })}
        </section>
    }
}

#[component]
fn Consent(
    number: Memo<Option<String>>,
    found: Resource<Result<Option<ConsentOfNumber>, AppError>>,
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
