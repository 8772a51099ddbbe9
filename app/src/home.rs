//! `/`: the overview: today's messages by status and the delivery rate, the queue, the latest
//! failures with their reasons, and where to go. Each figure links to the delivery log filtered
//! to it.

use domain::delivery::LogQuery;
use leptos::prelude::*;
use leptos_meta::Title;

use crate::access::nav_for;
use crate::components::{CurrentUser, ErrorNote, Guarded, LocalTime};
use crate::messages::api::{OverviewFigures, overview};
use crate::messages::page::log_href;

#[component]
pub fn HomePage() -> impl IntoView {
    let CurrentUser(user) = expect_context::<CurrentUser>();
    // Made here, once: the guard's closure may build its children more than once (`Guarded`).
    let figures = Resource::new(|| (), |_| overview());
    view! {
        <Title text="Overview"/>
        <Guarded permission=None>
            <h1>"Overview"</h1>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match figures.await {
                        Ok(o) => view! { <Figures o/> }.into_any(),
                        Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    }
                })}
            </Suspense>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    user.await.ok().flatten().map(|u| view! {
                        <p>"Signed in as " <strong>{u.email.clone()}</strong> " (" {u.role.label()} ")."</p>
                        <ul>
                            {nav_for(u.role)
                                .filter(|p| p.path != "/")
                                .map(|p| view! { <li><a href=p.path>{p.label}</a></li> })
                                .collect_view()}
                        </ul>
                    })
                })}
            </Suspense>
        </Guarded>
    }
}

#[component]
fn Figures(o: OverviewFigures) -> impl IntoView {
    let today = LogQuery::default()
        .with("date_from", &o.today)
        .with("date_to", &o.today);
    let total: i64 = o.by_status.iter().map(|(_, n)| n).sum();
    let rate = if o.ended > 0 {
        format!("{:.1} %", o.delivered as f64 * 100.0 / o.ended as f64)
    } else {
        "—".to_owned()
    };
    view! {
        <section aria-labelledby="today" data-testid="overview-today">
            <h2 id="today">"Today (" {o.today.clone()} ", UTC)"</h2>
            <ul class="chips">
                <li><a class="chip" href=log_href(&today, None)>"All " <span class="count">{total}</span></a></li>
                {o.by_status.iter().map(|(status, n)| view! {
                    <li>
                        <a class="chip" href=log_href(&today.with("status", status), None)>
                            {status.clone()} " " <span class="count">{*n}</span>
                        </a>
                    </li>
                }).collect_view()}
            </ul>
            <p>
                "Delivery rate: " <strong data-testid="delivery-rate">{rate}</strong>
                <span class="muted">" (delivered among messages with a final outcome)"</span>
            </p>
        </section>
        <section aria-labelledby="queue">
            <h2 id="queue">"Queue"</h2>
            <p data-testid="overview-queue">
                <a href=log_href(&LogQuery::default().with("status", "accepted"), None)>{o.waiting} " waiting"</a>
                ", " {o.in_doubt} " in doubt (Twilio is asked before they are sent again)"
                {o.oldest_waiting.map(|t| view! { "; the oldest written " <LocalTime micros=t/> })}
            </p>
        </section>
        {o.spend.clone().map(|s| {
            let money = |m: i64| domain::money::Money::from_micros(m).to_string();
            view! {
                <section aria-labelledby="spend">
                    <h2 id="spend"><a href="/spend">"Spend (estimated)"</a></h2>
                    <p data-testid="overview-spend">
                        "Today " <strong>{money(s.today_micros)}</strong>
                        ", this month " <strong>{money(s.month_micros)}</strong> "."
                    </p>
                    {(!s.budgets.is_empty()).then(|| view! {
                        <ul>
                            {s.budgets.iter().map(|(name, spent, amount)| view! {
                                <li>
                                    <a href="/spend">{name.clone()}</a> ": "
                                    {format!("{} of {} ({} %)", money(*spent), money(*amount), spent.saturating_mul(100) / (*amount).max(1))}
                                </li>
                            }).collect_view()}
                        </ul>
                    })}
                </section>
            }
        })}
        <section aria-labelledby="failures">
            <h2 id="failures">
                <a href=log_href(&LogQuery::default().with("status", "problems"), None)>"Latest failures"</a>
            </h2>
            {if o.failures.is_empty() {
                view! { <p class="muted">"None."</p> }.into_any()
            } else {
                view! {
                    <ul data-testid="overview-failures">
                        {o.failures.iter().map(|f| view! {
                            <li>
                                <a href=format!("/messages/{}", f.sid)><LocalTime micros=f.created_at/></a>
                                " · " <code>{f.to.clone()}</code> " · " {f.status.clone()}
                                {f.error_code.map(|c| view! {
                                    " · "
                                    <a href=log_href(&LogQuery::default().with("error_code", &c.to_string()), None)>
                                        "error " {c}
                                    </a>
                                })}
                                {f.reason.clone().map(|r| view! { " · " {r} })}
                            </li>
                        }).collect_view()}
                    </ul>
                }
                .into_any()
            }}
        </section>
    }
}
