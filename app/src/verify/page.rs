//! `/verify` (admins): Verify services with their guards against SMS pumping (code life,
//! countries, hourly cap per country), recent verifications (masked numbers, never a code) and the
//! share approved per day. `/simulator?to=…` (admins, while simulating): what one simulated phone
//! received, codes included.

use domain::access::Permission;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::{ErrorNote, Guarded, LocalTime};
use crate::error::AppError;
use crate::verify::api::{
    DAYS, ReceivedView, ServiceView, SetVerifyGuards, VerifyFigures, simulated_phone,
    verify_overview,
};

#[component]
pub fn VerifyPage() -> impl IntoView {
    // Made here, once: the guard's closure may build its children more than once (`Guarded`).
    let save = ServerAction::<SetVerifyGuards>::new();
    let overview = Resource::new(move || save.version().get(), |_| verify_overview());
    view! {
        <Title text="Verify"/>
        <Guarded permission=Some(Permission::ManageSettings)>
            <Verify save overview/>
        </Guarded>
    }
}

#[component]
fn Verify(
    save: ServerAction<SetVerifyGuards>,
    overview: Resource<Result<VerifyFigures, AppError>>,
) -> impl IntoView {
    let error = move || save.value().get().and_then(Result::err);
    view! {
        <h1>"Verify"</h1>
        <p class="hint">
            "Two-factor codes: services send them through " <code>"/v2/Services/{VA…}/Verifications"</code>
            " (Twilio Verify's API, with an API key), and the console's own sign-in uses the service named smsdesk console. "
            "Codes are never stored or shown; each goes out through the two_factor_auth template."
        </p>
        {move || error().map(|e| view! { <ErrorNote error=e/> })}
        {move || save.value().get().and_then(Result::ok).map(|s| view! {
            <p role="status" data-testid="guards-saved">{format!("Saved the guards of {}.", s.friendly_name)}</p>
        })}
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    Ok(o) => view! {
                        {o.simulating.then(|| view! {
                            <p class="hint">
                                "smsdesk is simulating: " <a href="/simulator">"read what each simulated phone received"</a> "."
                            </p>
                        })}
                        <Services services=o.services save/>
                        <Recent recent=o.recent/>
                        <Days days=o.days/>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Services(services: Vec<ServiceView>, save: ServerAction<SetVerifyGuards>) -> impl IntoView {
    if services.is_empty() {
        return view! {
            <section aria-labelledby="services">
                <h2 id="services">"Services"</h2>
                <p data-testid="no-services">"No service yet: one is made by " <code>"POST /v2/Services"</code> ", or at the first console sign-in with a code."</p>
            </section>
        }
        .into_any();
    }
    view! {
        <section aria-labelledby="services">
            <h2 id="services">"Services"</h2>
            {services.into_iter().map(|s| {
                let id = s.sid.clone();
                let label = format!("Guards of {}", s.friendly_name);
                let name = s.friendly_name.clone();
                let sid = s.sid.clone();
                view! {
                    <ActionForm action=save attr:class="card stack" attr:aria-label=label>
                        <h3>{name} " " <small><code>{sid}</code></small></h3>
                        <p class="hint">
                            {format!("{}-digit codes; {}; created ", s.code_length, s.origin)}
                            <LocalTime micros=s.created_at/>
                        </p>
                        <input type="hidden" name="sid" value=s.sid.clone()/>
                        <div class="field-row">
                            <div class="field">
                                <label for=format!("{id}-life")>"Code life (minutes)"</label>
                                <input id=format!("{id}-life") name="lifetime_minutes" type="number" min="2" max="1440"
                                    value=s.lifetime_minutes.to_string() required/>
                            </div>
                            <div class="field">
                                <label for=format!("{id}-countries")>"Countries (empty: the geo permissions)"</label>
                                <input id=format!("{id}-countries") name="countries" value=s.countries.clone()
                                    placeholder="US, AU"/>
                            </div>
                            <div class="field">
                                <label for=format!("{id}-cap")>"Codes per hour per country (empty: no cap)"</label>
                                <input id=format!("{id}-cap") name="hourly_cap" type="number" min="1"
                                    value=s.hourly_cap.map(|c| c.to_string()).unwrap_or_default()/>
                            </div>
                        </div>
                        <button type="submit">"Save guards"</button>
                    </ActionForm>
                }
            }).collect_view()}
        </section>
    }
    .into_any()
}

#[component]
fn Recent(recent: Vec<crate::verify::api::VerificationView>) -> impl IntoView {
    view! {
        <section aria-labelledby="recent-verifications">
            <h2 id="recent-verifications">"Recent verifications"</h2>
            {if recent.is_empty() {
                view! { <p>"None yet."</p> }.into_any()
            } else {
                view! {
                    <table class="table" data-testid="verifications">
                        <thead>
                            <tr>
                                <th scope="col">"Started"</th>
                                <th scope="col">"Service"</th>
                                <th scope="col">"Number"</th>
                                <th scope="col">"Status"</th>
                                <th scope="col" class="num">"Texts"</th>
                                <th scope="col" class="num">"Checks"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {recent.into_iter().map(|v| view! {
                                <tr>
                                    <td><LocalTime micros=v.created_at/></td>
                                    <td>{v.service}</td>
                                    <td>{v.masked} " " <small>{v.country}</small></td>
                                    <td><span class=format!("status status-{}", v.status)>{v.status.replace('_', " ")}</span></td>
                                    <td class="num">{v.sends}</td>
                                    <td class="num">{v.checks}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn Days(days: Vec<crate::verify::api::DayView>) -> impl IntoView {
    view! {
        <section aria-labelledby="approved-per-day">
            <h2 id="approved-per-day">{format!("Approved per day (last {DAYS} days, UTC)")}</h2>
            {if days.is_empty() {
                view! { <p>"No verification in that time."</p> }.into_any()
            } else {
                view! {
                    <table class="table" data-testid="verify-days">
                        <thead>
                            <tr>
                                <th scope="col">"Day"</th>
                                <th scope="col" class="num">"Started"</th>
                                <th scope="col" class="num">"Approved"</th>
                                <th scope="col" class="num">"Share approved"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {days.into_iter().map(|d| view! {
                                <tr>
                                    <td>{d.day}</td>
                                    <td class="num">{d.started}</td>
                                    <td class="num">{d.approved}</td>
                                    <td class="num">{d.approved_per_mille.map(|p| format!("{}.{} %", p / 10, p % 10)).unwrap_or_default()}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[component]
pub fn SimulatorPage() -> impl IntoView {
    let query = use_query_map();
    let to = move || query.with(|q| q.get("to").unwrap_or_default());
    let received = Resource::new(to, simulated_phone);
    view! {
        <Title text="Simulated phones"/>
        <Guarded permission=Some(Permission::ManageSettings)>
            <Simulator to=Signal::derive(to) received/>
        </Guarded>
    }
}

#[component]
fn Simulator(
    to: Signal<String>,
    received: Resource<Result<Vec<ReceivedView>, AppError>>,
) -> impl IntoView {
    view! {
        <h1>"Simulated phones"</h1>
        <p class="hint">
            "While smsdesk simulates, nothing reaches a real phone: here is what a simulated one received, newest first, codes included. "
            "Programs read the same at " <code>"GET /simulator/inbox?to=…"</code> " with an API key."
        </p>
        <form method="get" action="/simulator" class="field-row">
            <div class="field">
                <label for="simulator-to">"Phone number"</label>
                <input id="simulator-to" name="to" type="tel" value=to.get_untracked() placeholder="+1 415 555 2671" required/>
            </div>
            <button type="submit">"Read"</button>
        </form>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match received.await {
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <p data-testid="simulator-empty">"Nothing received."</p>
                    }.into_any(),
                    Ok(list) => view! {
                        <ol class="stack" data-testid="simulator-messages">
                            {list.into_iter().map(|m| view! {
                                <li class="card">
                                    <p class="hint">
                                        {m.at.map(|at| view! { <LocalTime micros=at/> })}
                                        {format!(" from {} · {}", m.from.unwrap_or_default(), m.status)}
                                    </p>
                                    <p data-testid="simulator-body">{m.body}</p>
                                </li>
                            }).collect_view()}
                        </ol>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
