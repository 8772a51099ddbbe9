//! `/`: the overview: who is signed in and where to go.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::access::nav_for;
use crate::components::{CurrentUser, Guarded};

#[component]
pub fn HomePage() -> impl IntoView {
    let CurrentUser(user) = expect_context::<CurrentUser>();
    view! {
        <Title text="Overview"/>
        <Guarded permission=None>
            <h1>"Overview"</h1>
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
            <p class="muted">"Sending, the delivery log, consent and spend arrive with the next releases."</p>
        </Guarded>
    }
}
