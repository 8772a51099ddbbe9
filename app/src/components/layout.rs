//! The frame around every page: the navigation, drawn for the signed-in user's role, and the
//! banner that says whether smsdesk sends for real.

use leptos::prelude::*;
use leptos_router::components::A;
use serde::{Deserialize, Serialize};

use crate::access::nav_for;
use crate::auth::Logout;
use crate::components::CurrentUser;
use crate::error::AppError;

#[cfg(feature = "ssr")]
use crate::auth::{current_user, state};

#[component]
pub fn Sidebar() -> impl IntoView {
    let CurrentUser(user) = expect_context::<CurrentUser>();
    let logout = ServerAction::<Logout>::new();
    // After signing out, load the sign-in page afresh (every resource forgets the user).
    Effect::new(move |_| {
        if let Some(Ok(())) = logout.value().get() {
            let _ = window().location().set_href("/login");
        }
    });
    view! {
        <nav class="sidebar" aria-label="Main">
            <a class="brand" href="/">"smsdesk"</a>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match user.await {
                        Ok(Some(u)) => view! {
                            <ul data-testid="nav">
                                {nav_for(u.role)
                                    .map(|page| view! {
                                        <li><A href=page.path exact=page.path == "/">{page.label}</A></li>
                                    })
                                    .collect_view()}
                            </ul>
                            <div class="sidebar-foot">
                                <p class="muted" data-testid="whoami">{u.email.clone()} <br/> {u.role.label()}</p>
                                <ActionForm action=logout>
                                    <button type="submit" class="button-quiet">"Sign out"</button>
                                </ActionForm>
                            </div>
                        }
                        .into_any(),
                        _ => view! {
                            <div class="sidebar-foot"><A href="/login">"Sign in"</A></div>
                        }
                        .into_any(),
                    }
                })}
            </Suspense>
        </nav>
    }
}

/// Whether smsdesk sends for real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeView {
    pub simulator: bool,
}

/// For the banner every signed-in person sees.
#[server(endpoint = "sending_mode")]
pub async fn sending_mode() -> Result<ModeView, AppError> {
    current_user()
        .await?
        .ok_or_else(|| AppError::Unauthenticated.respond())?;
    Ok(ModeView {
        simulator: state()?.simulator,
    })
}

/// Says, on every page, whether smsdesk sends for real or simulates.
#[component]
pub fn ModeBanner() -> impl IntoView {
    let CurrentUser(user) = expect_context::<CurrentUser>();
    // Asked from the browser once the page is up (not during server rendering): the banner is
    // about this installation, not this page.
    let mode = LocalResource::new(move || async move {
        match user.await {
            Ok(Some(_)) => sending_mode().await.ok(),
            _ => None,
        }
    });
    view! {
        <Suspense fallback=|| ()>
            {move || mode.get().flatten().map(|m| if m.simulator {
                view! {
                    <p class="mode-banner simulator" role="status" data-testid="mode-banner">
                        <strong>"Simulator"</strong>
                        " — no Twilio credentials are set: messages are not really sent. Delivery follows the simulator's settings."
                    </p>
                }.into_any()
            } else {
                view! {
                    <p class="mode-banner live" data-testid="mode-banner"><strong>"Live"</strong> " — sending through Twilio."</p>
                }.into_any()
            })}
        </Suspense>
    }
}

/// For finance and admins, on every page: each budget that has reached a warning level in its
/// running period (the highest level reached).
#[component]
pub fn BudgetBanner() -> impl IntoView {
    let CurrentUser(user) = expect_context::<CurrentUser>();
    // Asked from the browser once the page is up, like the mode banner: it is about the
    // installation, not the page.
    let alerts = LocalResource::new(move || async move {
        match user.await {
            Ok(Some(u)) if u.can(domain::access::Permission::ViewSpend) => {
                crate::spend::api::budget_alerts().await.unwrap_or_default()
            }
            _ => Vec::new(),
        }
    });
    view! {
        <Suspense fallback=|| ()>
            {move || alerts.get().filter(|a| !a.is_empty()).map(|alerts| view! {
                <div class="budget-banner" role="alert" data-testid="budget-banner">
                    {alerts.into_iter().map(|a| {
                        let money = |m: i64| domain::money::Money::from_micros(m).to_string();
                        view! {
                            <p>
                                <strong>{format!("The {} has reached {} %", a.name, a.level)}</strong>
                                {format!(" ({} of {} reserved). ", money(a.spent_micros), money(a.amount_micros))}
                                <a href="/spend">"See spend"</a>
                            </p>
                        }
                    }).collect_view()}
                </div>
            })}
        </Suspense>
    }
}
