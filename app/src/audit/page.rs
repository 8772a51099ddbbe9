//! `/audit` (admins and compliance officers): every change, who made it, when, before and after.

use domain::access::Permission;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::audit::api::{AuditEntry, list_audit};
use crate::components::{ErrorNote, Guarded, LocalTime};
use crate::error::AppError;

#[component]
pub fn AuditPage() -> impl IntoView {
    // The page's resources are made here, once: the guard's closure may build its children
    // more than once while the server renders (see `Guarded`).
    // The filter lives in the address (`?actor=&action=`), so a filtered view can be shared.
    let query = use_query_map();
    let filter = Memo::new(move |_| {
        query.with(|q| {
            (
                q.get("actor").filter(|s| !s.is_empty()),
                q.get("action").filter(|s| !s.is_empty()),
            )
        })
    });
    let entries = Resource::new(
        move || filter.get(),
        |(actor, action)| list_audit(actor, action, Some(200)),
    );
    view! {
        <Title text="Audit log"/>
        <Guarded permission=Some(Permission::ViewAuditLog)>
            <Audit filter entries/>
        </Guarded>
    }
}

#[component]
fn Audit(
    filter: Memo<(Option<String>, Option<String>)>,
    entries: Resource<Result<Vec<AuditEntry>, AppError>>,
) -> impl IntoView {
    let filter = move || filter.get();
    view! {
        <h1>"Audit log"</h1>
        <form method="get" class="field-row" aria-label="Filter">
            <div class="field">
                <label for="audit-actor">"Who (contains)"</label>
                <input id="audit-actor" name="actor" value=move || filter().0.unwrap_or_default()/>
            </div>
            <div class="field">
                <label for="audit-action">"What (starts with, e.g. user. or template.)"</label>
                <input id="audit-action" name="action" value=move || filter().1.unwrap_or_default()/>
            </div>
            <button type="submit" class="button-quiet">"Filter"</button>
        </form>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match entries.await {
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <p>"No entries match."</p> }.into_any(),
                    Ok(list) => view! {
                        <table class="table" data-testid="audit-list">
                            <thead>
                                <tr>
                                    <th scope="col">"When"</th>
                                    <th scope="col">"Who"</th>
                                    <th scope="col">"What"</th>
                                    <th scope="col">"On"</th>
                                    <th scope="col">"Before"</th>
                                    <th scope="col">"After"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {list
                                    .into_iter()
                                    .map(|e| view! {
                                        <tr>
                                            <td><LocalTime micros=e.at/></td>
                                            <td>{e.actor}</td>
                                            <td>{e.action}</td>
                                            <td>{e.target}</td>
                                            <td class="clip"><code>{e.before.unwrap_or_default()}</code></td>
                                            <td class="clip"><code>{e.after.unwrap_or_default()}</code></td>
                                        </tr>
                                    })
                                    .collect_view()}
                            </tbody>
                        </table>
                    }
                    .into_any(),
                }
            })}
        </Suspense>
    }
}
