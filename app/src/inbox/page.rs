//! `/inbox` (dispatchers and admins): replies that are not keywords, newest first, each beside
//! the last message smsdesk sent to that number, unread ones marked. `?unread=1` shows only the
//! unread; `?before=<id>` is the next page. A plain GET form and links: it works without
//! JavaScript, and a view can be bookmarked.

use domain::access::Permission;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::{ErrorNote, Guarded, LocalTime};
use crate::error::AppError;
use crate::inbox::api::{InboxPage, InboxReply, MarkReply, inbox};

#[component]
pub fn InboxPage() -> impl IntoView {
    // Made here, once: the guard's closure may build its children more than once (`Guarded`).
    let address = use_query_map();
    let unread_only = Memo::new(move |_| address.with(|q| q.get("unread").as_deref() == Some("1")));
    let before =
        Memo::new(move |_| address.with(|q| q.get("before").and_then(|b| b.parse::<i64>().ok())));
    let mark = ServerAction::<MarkReply>::new();
    let page = Resource::new(
        move || (unread_only.get(), before.get(), mark.version().get()),
        |(unread_only, before, _)| inbox(unread_only, before),
    );
    view! {
        <Title text="Inbox"/>
        <Guarded permission=Some(Permission::SendMessages)>
            <Inbox unread_only page mark/>
        </Guarded>
    }
}

#[component]
fn Inbox(
    unread_only: Memo<bool>,
    page: Resource<Result<InboxPage, AppError>>,
    mark: ServerAction<MarkReply>,
) -> impl IntoView {
    view! {
        <h1>"Inbox"</h1>
        <p class="hint">
            "Replies to smsdesk's messages. STOP, START and HELP are answered automatically and kept in the consent ledger."
        </p>
        <form method="get" action="/inbox" class="field-row" aria-label="Which replies">
            <label class="check">
                <input type="checkbox" name="unread" value="1" checked=move || unread_only.get()/>
                " Unread only"
            </label>
            <button type="submit">"Show"</button>
        </form>
        {move || mark.value().get().and_then(Result::err).map(|e| view! { <ErrorNote error=e/> })}
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    Ok(p) => view! { <Replies p unread_only=unread_only.get_untracked() mark/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Replies(p: InboxPage, unread_only: bool, mark: ServerAction<MarkReply>) -> impl IntoView {
    let unread = match p.unread {
        0 => "Nothing unread.".to_owned(),
        1 => "1 unread reply.".to_owned(),
        n => format!("{n} unread replies."),
    };
    let older = p.older.map(|id| {
        let unread = if unread_only { "unread=1&" } else { "" };
        format!("/inbox?{unread}before={id}")
    });
    view! {
        <p role="status" data-testid="inbox-unread">{unread}</p>
        {if p.replies.is_empty() {
            view! { <p data-testid="inbox-empty">"No replies here."</p> }.into_any()
        } else {
            view! {
                <table class="table" data-testid="inbox">
                    <thead>
                        <tr>
                            <th scope="col">"Received"</th>
                            <th scope="col">"From"</th>
                            <th scope="col">"Reply"</th>
                            <th scope="col">"In reply to"</th>
                            <th scope="col"><span class="visually-hidden">"Read"</span></th>
                        </tr>
                    </thead>
                    <tbody>
                        {p.replies.into_iter().map(|r| view! { <ReplyRow r mark/> }).collect_view()}
                    </tbody>
                </table>
            }.into_any()
        }}
        {older.map(|href| view! { <nav class="pager" aria-label="Pages"><a href=href>"Older replies"</a></nav> })}
    }
}

#[component]
fn ReplyRow(r: InboxReply, mark: ServerAction<MarkReply>) -> impl IntoView {
    let class = if r.read { "" } else { "unread" };
    let state = if r.read { "read" } else { "unread" };
    view! {
        <tr class=class data-state=state>
            <td><LocalTime micros=r.received_at/></td>
            <td><code>{r.from}</code></td>
            <td>
                {match r.body {
                    Some(b) if r.read => view! { <span>{b}</span> }.into_any(),
                    Some(b) => view! { <strong>{b}</strong> }.into_any(),
                    None => view! { <span class="muted">"(removed after the retention period)"</span> }.into_any(),
                }}
            </td>
            <td>
                {match r.thread {
                    None => view! { <span class="muted">"nothing sent to this number before"</span> }.into_any(),
                    Some(t) => view! {
                        <a href=format!("/messages/{}", t.sid)>
                            {t.body.unwrap_or_else(|| "(text not kept)".to_owned())}
                        </a>
                        <br/>
                        <span class="muted">
                            {t.template.map(|k| format!("{k} · "))} {t.status} " · " <LocalTime micros=t.created_at/>
                        </span>
                    }.into_any(),
                }}
            </td>
            <td>
                <ActionForm action=mark>
                    <input type="hidden" name="id" value=r.id.to_string()/>
                    <input type="hidden" name="read" value=(!r.read).to_string()/>
                    <button type="submit">{if r.read { "Mark unread" } else { "Mark read" }}</button>
                </ActionForm>
            </td>
        </tr>
    }
}
