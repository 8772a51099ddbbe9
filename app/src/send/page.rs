//! `/send` (dispatchers): one number or many (typed, pasted, or a CSV file), a template with its
//! values or free text with the live counter; before sending, how many recipients are valid,
//! invalid (and why), opted out or geo-blocked, the total segments and when the last one will go
//! out at the current limits; after sending, progress until every message has its outcome.

use std::collections::BTreeMap;

use domain::access::Permission;
use domain::segments::SegmentedMessage;
use domain::template::{Category, TemplateBody};
use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{ErrorNote, Guarded};
use crate::error::AppError;
use crate::send::api::{Review, ReviewSend, SendDraft, SendMessages, send_progress};
use crate::templates::api::{TemplateSummary, list_templates};

#[component]
pub fn SendPage() -> impl IntoView {
    // The page's resources are made here, once: the guard's closure may build its children
    // more than once while the server renders (see `Guarded`).
    let templates = Resource::new(|| (), |_| list_templates());
    view! {
        <Title text="Send"/>
        <Guarded permission=Some(Permission::SendMessages)>
            <Send templates/>
        </Guarded>
    }
}

fn duration(seconds: i64) -> String {
    match seconds {
        s if s < 1 => "at once".to_owned(),
        s if s < 120 => format!("in about {s} s"),
        s if s < 7_200 => format!("in about {} min", (s + 59) / 60),
        s => format!("in about {:.1} h", s as f64 / 3_600.0),
    }
}

/// Reads a chosen CSV file into the recipients box (in the browser).
#[cfg(feature = "hydrate")]
fn read_file(ev: leptos::ev::Event, recipients: RwSignal<String>) {
    use wasm_bindgen::JsCast;
    let Some(input) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
    else {
        return;
    };
    let Some(file) = input.files().and_then(|f| f.get(0)) else {
        return;
    };
    leptos::task::spawn_local(async move {
        if let Ok(text) = wasm_bindgen_futures::JsFuture::from(file.text()).await
            && let Some(text) = text.as_string()
        {
            recipients.update(|r| {
                if !r.trim().is_empty() {
                    r.push('\n');
                }
                r.push_str(&text);
            });
        }
    });
}

#[cfg(not(feature = "hydrate"))]
fn read_file(_ev: leptos::ev::Event, _recipients: RwSignal<String>) {}

#[component]
fn Send(templates: Resource<Result<Vec<TemplateSummary>, AppError>>) -> impl IntoView {
    let recipients = RwSignal::new(String::new());
    let template = RwSignal::new(String::new());
    let variables = RwSignal::new(BTreeMap::<String, String>::new());
    let body = RwSignal::new(String::new());
    let category = RwSignal::new(String::new());
    let review = ServerAction::<ReviewSend>::new();
    let send = ServerAction::<SendMessages>::new();

    let draft = move || SendDraft {
        recipients: recipients.get_untracked(),
        template: Some(template.get_untracked()).filter(|t| !t.is_empty()),
        variables: variables.get_untracked(),
        body: body.get_untracked(),
        category: category.get_untracked().parse::<Category>().ok(),
    };
    // Any change makes the last review stale: it must be done again before sending.
    let reviewed_version = RwSignal::new(None::<usize>);
    let edits = RwSignal::new(0usize);
    let touch = move || edits.update(|n| *n += 1);
    let current_review = move || {
        (reviewed_version.get() == Some(edits.get()))
            .then(|| review.value().get().and_then(Result::ok))
            .flatten()
    };
    let on_review = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        reviewed_version.set(Some(edits.get_untracked()));
        review.dispatch(ReviewSend { draft: draft() });
    };

    // The chosen template's variables (parsed in the browser from its body).
    let chosen_variables = move || {
        let key = template.get();
        templates
            .get()
            .and_then(Result::ok)
            .and_then(|list| list.into_iter().find(|t| t.key == key))
            .and_then(|t| TemplateBody::parse(&t.body).ok())
            .map(|b| {
                let mut names: Vec<String> = b.variables().into_iter().map(str::to_owned).collect();
                names.sort();
                names.dedup();
                names
            })
            .unwrap_or_default()
    };
    let counter = move || {
        body.with(|b| match SegmentedMessage::analyze(b, false) {
            Ok(m) => format!(
                "{} · {} segment{} · {} characters",
                m.encoding(),
                m.segment_count(),
                if m.segment_count() == 1 { "" } else { "s" },
                m.characters()
            ),
            Err(e) => e.to_string(),
        })
    };

    // Each block is type-erased: one nested view type for the whole form is too deep to lay out.
    let recipients_block = view! {
        <div class="field">
            <label for="recipients">"Recipients: one number per line, or CSV rows"</label>
            <textarea
                id="recipients"
                rows="6"
                placeholder="+1 415 555 2671"
                prop:value=move || recipients.get()
                on:input=move |ev| { recipients.set(event_target_value(&ev)); touch(); }
            ></textarea>
            <label class="hint" for="csv">"…or add a CSV file (the first cell that looks like a number is used):"</label>
            <input id="csv" type="file" accept=".csv,text/csv,text/plain"
                on:change=move |ev| { read_file(ev, recipients); touch(); }/>
        </div>
    }
    .into_any();
    let template_block = view! {
        <div class="field">
            <label for="template">"Template"</label>
            <select id="template" on:change=move |ev| { template.set(event_target_value(&ev)); variables.set(BTreeMap::new()); touch(); }>
                <option value="">"Free text"</option>
                <Suspense fallback=|| ()>
                    {move || templates.get().and_then(Result::ok).map(|list| list.into_iter().map(|t| {
                        let key = t.key.clone();
                        view! { <option value=key.clone()>{key.clone()} " (" {t.category.clone()} ")"</option> }
                    }).collect_view())}
                </Suspense>
            </select>
        </div>
    }
    .into_any();
    let values_block = move || {
        view! {
            <fieldset class="vars">
                <legend>"Values"</legend>
                {move || chosen_variables().into_iter().map(|name| {
                    let id = format!("var-{name}");
                    let key = name.clone();
                    let key2 = name.clone();
                    view! {
                        <div class="field">
                            <label for=id.clone()>{name.clone()}</label>
                            <input id=id
                                prop:value=move || variables.with(|v| v.get(&key).cloned().unwrap_or_default())
                                on:input=move |ev| { let v = event_target_value(&ev); variables.update(|m| { m.insert(key2.clone(), v); }); touch(); }/>
                        </div>
                    }
                }).collect_view()}
            </fieldset>
        }
        .into_any()
    };
    let text_block = move || {
        view! {
            <div class="field">
                <label for="body">"Message"</label>
                <textarea id="body" rows="4"
                    prop:value=move || body.get()
                    on:input=move |ev| { body.set(event_target_value(&ev)); touch(); }></textarea>
                <p class="hint" data-testid="send-counter" aria-live="polite">{counter}</p>
            </div>
            <div class="field">
                <label for="category">"Category (sets the priority)"</label>
                <select id="category" on:change=move |ev| { category.set(event_target_value(&ev)); touch(); }>
                    <option value="">"None (normal)"</option>
                    {Category::ALL.map(|c| view! { <option value=c.as_str()>{c.as_str()}</option> }).collect_view()}
                </select>
            </div>
        }
        .into_any()
    };
    let content_block = move || {
        if template.with(String::is_empty) {
            text_block()
        } else {
            values_block()
        }
    };
    let form = view! {
        <form on:submit=on_review class="send-form" data-testid="send-form">
            {recipients_block}
            {template_block}
            {content_block}
            <div class="form-actions">
                <button type="submit" class="button-quiet">"Review"</button>
            </div>
        </form>
    }
    .into_any();
    view! {
        <h1>"Send"</h1>
        {form}
        {move || review.value().get().and_then(Result::err).map(|e| view! { <ErrorNote error=e/> })}
        {move || current_review().map(|r| view! { <ReviewPanel review=r send=send draft=draft/> })}
        {move || send.value().get().map(|result| match result {
            Err(e) => view! { <ErrorNote error=e/> }.into_any(),
            Ok(sent) => view! {
                {sent.refused.map(|r| view! { <p class="error" role="alert">{format!("Some messages were not sent: {r}")}</p> })}
                <ProgressPanel sids=sent.sids/>
            }.into_any(),
        })}
    }
}

#[component]
fn ReviewPanel(
    review: Review,
    send: ServerAction<SendMessages>,
    draft: impl Fn() -> SendDraft + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let budget_error = review.budget_error();
    let can_send = review.valid > 0 && review.message_error.is_none() && budget_error.is_none();
    let valid = review.valid;
    let money = |m: i64| domain::money::Money::from_micros(m).to_string();
    view! {
        <section class="review" aria-labelledby="review-title" data-testid="review">
            <h2 id="review-title">"Before sending"</h2>
            {review.message_error.clone().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <dl class="counter-values">
                <div><dt>"Valid"</dt><dd data-testid="review-valid">{review.valid}</dd></div>
                <div><dt>"Invalid"</dt><dd data-testid="review-invalid">{review.invalid}</dd></div>
                <div><dt>"Opted out"</dt><dd data-testid="review-opted-out">{review.opted_out}</dd></div>
                <div><dt>"Geo-blocked"</dt><dd data-testid="review-geo">{review.geo_blocked}</dd></div>
                <div><dt>"Duplicates"</dt><dd>{review.duplicates}</dd></div>
                <div><dt>"Segments in all"</dt><dd data-testid="review-segments">{review.total_segments}</dd></div>
                <div><dt>"Estimated cost"</dt><dd data-testid="review-cost">{money(review.cost_micros)}</dd></div>
            </dl>
            {(review.unpriced > 0).then(|| view! {
                <p class="muted">{format!("{} message(s) go to countries without a price and are not in the estimate.", review.unpriced)}</p>
            })}
            {(!review.budgets.is_empty()).then(|| view! {
                <table class="table" data-testid="review-budgets">
                    <caption>"Budgets"</caption>
                    <thead><tr>
                        <th scope="col">"Budget"</th><th scope="col">"Amount"</th><th scope="col">"Reserved now"</th>
                        <th scope="col">"After this send"</th><th scope="col">"Hard stop"</th>
                    </tr></thead>
                    <tbody>
                        {review.budgets.iter().map(|b| view! {
                            <tr class:over={b.refused > 0}>
                                <td>{b.name.clone()}</td>
                                <td class="num">{money(b.amount_micros)}</td>
                                <td class="num">{money(b.spent_micros)}</td>
                                <td class="num">{money(b.after_micros)}</td>
                                <td>{if b.hard_stop { "yes" } else { "no" }}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
            {budget_error.map(|e| view! { <p class="error" role="alert" data-testid="review-budget-error">{e}</p> })}
            {review.sample_body.clone().map(|b| view! { <p>"Text: " <q>{b}</q></p> })}
            <p data-testid="review-eta">
                "At the current limits the last one goes out " {duration(review.last_send_after_seconds)}
                {(review.backlog > 0).then(|| format!(" ({} messages are already waiting)", review.backlog))} "."
            </p>
            {(!review.problems.is_empty()).then(|| view! {
                <table class="table" data-testid="review-problems">
                    <thead><tr><th scope="col">"Line"</th><th scope="col">"Input"</th><th scope="col">"Why not"</th></tr></thead>
                    <tbody>
                        {review.problems.iter().take(200).map(|p| view! {
                            <tr><td>{p.line}</td><td>{p.input.clone()}</td><td>{p.reason.clone()}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
            <button type="button" class="button-primary" disabled=!can_send
                on:click=move |_| { send.dispatch(SendMessages { draft: draft() }); }>
                {format!("Send {valid} message{}", if valid == 1 { "" } else { "s" })}
            </button>
        </section>
    }
}

#[component]
fn ProgressPanel(sids: Vec<String>) -> impl IntoView {
    let tick = RwSignal::new(0u32);
    let sids_for_load = sids.clone();
    let progress = Resource::new(
        move || tick.get(),
        move |_| send_progress(sids_for_load.clone()),
    );
    // Polls every second until every message has its outcome (for at most ten minutes).
    Effect::new(move |_| {
        let done = progress
            .get()
            .and_then(Result::ok)
            .is_some_and(|p| p.finished());
        if !done && tick.get_untracked() < 600 {
            set_timeout(
                move || tick.update(|t| *t += 1),
                std::time::Duration::from_secs(1),
            );
        }
    });
    view! {
        <section class="progress" aria-labelledby="progress-title" data-testid="progress">
            <h2 id="progress-title">{format!("Sending {} messages", sids.len())}</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || progress.get().map(|p| match p {
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    Ok(p) => {
                        let total = p.total.max(1);
                        let out = p.in_flight + p.delivered + p.failed;
                        view! {
                            <progress max=total value=out></progress>
                            <p aria-live="polite" data-testid="progress-text">
                                {format!("{} waiting in smsdesk · {} with Twilio · {} delivered · {} failed", p.waiting, p.in_flight, p.delivered, p.failed)}
                            </p>
                        }.into_any()
                    }
                })}
            </Transition>
        </section>
    }
}
