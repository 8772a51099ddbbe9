//! `/messages`, the delivery log (every role; read-only but for dispatchers and admins), and
//! `/messages/:sid`, one message with its timeline. The filter and the page live in the address
//! (`?status=problems&template=pickup&cursor=o1200`), so a view can be bookmarked and shared, and
//! both pages work without JavaScript: the filter is a plain GET form, paging plain links. With
//! JavaScript the log stays current: the rows' statuses change in place, and newer messages are
//! announced rather than pushed in above the reader.

use domain::access::Permission;
use domain::delivery::LogQuery;
use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::components::{ErrorNote, Guarded, LocalTime};
use crate::error::AppError;
use crate::messages::api::{
    CancelMessage, ExportStatus, LogChanges, LogView, MessageInfo, RetryMessage,
    UPDATE_EVERY_SECONDS, delivery_log, export_progress, log_updates, message_detail,
};

/// The statuses the filter offers, in the order a message goes through them.
const STATUSES: [&str; 9] = [
    "accepted",
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "undelivered",
    "failed",
    "canceled",
];

const CATEGORIES: [&str; 4] = ["shipment", "emergency", "two_factor", "driver"];

/// The typed filters: name in the address, label, input type, placeholder.
const TEXT_FILTERS: [(&str, &str, &str, &str); 7] = [
    ("template", "Template", "text", "key"),
    ("to", "Recipient", "tel", "any format"),
    ("source", "Sent by", "text", "e-mail or SK… key id"),
    ("error_code", "Error code", "text", "30003"),
    ("text", "Text contains", "search", ""),
    ("date_from", "From (UTC day)", "date", ""),
    ("date_to", "To (UTC day)", "date", ""),
];

/// `/messages?…` for a query and a cursor.
pub fn log_href(query: &LogQuery, cursor: Option<&str>) -> String {
    address("/messages", query, cursor.map(|c| ("cursor", c)))
}

/// `path?…` with the query's filters and one more parameter.
fn address(path: &str, query: &LogQuery, extra: Option<(&str, &str)>) -> String {
    let parts: Vec<String> = query
        .pairs()
        .into_iter()
        .chain(extra)
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect();
    if parts.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", parts.join("&"))
    }
}

/// The CSV export of a view: a plain link (the download is streamed by the server); with
/// JavaScript the page also shows how many rows have been written.
#[component]
fn Export(query: LogQuery, total: i64) -> impl IntoView {
    let href = address("/messages/export.csv", &query, None);
    let status = RwSignal::new(None::<Option<ExportStatus>>);
    let start = {
        let query = query.clone();
        move |ev: leptos::ev::MouseEvent| {
            ev.prevent_default();
            let random = || (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
            let token = format!("{:016x}{:016x}", random(), random());
            let url = address("/messages/export.csv", &query, Some(("progress", &token)));
            if window().location().set_href(&url).is_ok() {
                status.set(Some(None));
                follow(token, status);
            }
        }
    };
    let text = move || {
        status.get().map(|s| match s {
            None => "Export started…".to_owned(),
            Some(s) if s.failed => format!(
                "The export stopped after {} rows (the server log says why): try again.",
                s.rows
            ),
            Some(s) if s.done => format!("Exported {} rows.", s.rows),
            Some(s) => format!("Exporting: {} of about {total} rows…", s.rows),
        })
    };
    view! {
        <p class="export">
            <a href=href on:click=start data-testid="export">"Export CSV"</a>
            " "
            <span role="status" data-testid="export-progress">{text}</span>
        </p>
    }
}

/// Asks how far the export is every half second until it has ended.
fn follow(token: String, status: RwSignal<Option<Option<ExportStatus>>>) {
    leptos::task::spawn_local(async move {
        let answer = export_progress(token.clone()).await;
        let ended = match answer {
            Ok(Some(s)) => {
                status.try_set(Some(Some(s)));
                s.done || s.failed
            }
            // Not known here (yet, or on another instance): keep the last word.
            Ok(None) => false,
            Err(_) => true,
        };
        if !ended && status.try_get_untracked().is_some() {
            set_timeout(move || follow(token, status), Duration::from_millis(500));
        }
    });
}

/// Percent-encodes a query value (everything but unreserved characters).
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[component]
pub fn LogPage() -> impl IntoView {
    // Made here, once: the guard's closure may build its children more than once (`Guarded`).
    let address = use_query_map();
    let query = Memo::new(move |_| {
        address.with(|q| {
            LogQuery::from_pairs(
                LogQuery::NAMES
                    .iter()
                    .filter_map(|name| q.get_str(name).map(|v| (*name, v))),
            )
        })
    });
    let cursor = Memo::new(move |_| address.with(|q| q.get("cursor").filter(|c| !c.is_empty())));
    let log = Resource::new(
        move || (query.get(), cursor.get()),
        |(query, cursor)| delivery_log(query, cursor),
    );
    let updates = RwSignal::new(LogChanges::default());
    // In the browser only (effects do not run on the server): every few seconds, the statuses
    // of the rows shown and, on the newest page, how many newer messages match. The rows stay
    // where they are; the reader chooses when to see the newer ones.
    Effect::new(move |_| {
        query.track();
        cursor.track();
        updates.set(LogChanges::default());
    });
    Effect::new(move |_| {
        let ask = move || {
            let Some(Some(Ok(view))) = log.try_get_untracked() else {
                return;
            };
            let newest = view
                .newer
                .is_none()
                .then(|| view.rows.first().map_or(0, |r| r.id));
            let sids = view.rows.iter().map(|r| r.sid.clone()).collect();
            let Some(query) = query.try_get_untracked() else {
                return;
            };
            leptos::task::spawn_local(async move {
                if let Ok(fresh) = log_updates(query, sids, newest).await {
                    updates.try_set(fresh);
                }
            });
        };
        if let Ok(handle) = set_interval_with_handle(ask, Duration::from_secs(UPDATE_EVERY_SECONDS))
        {
            on_cleanup(move || handle.clear());
        }
    });
    view! {
        <Title text="Delivery log"/>
        <Guarded permission=Some(Permission::ViewDeliveryLog)>
            <Log query log updates/>
        </Guarded>
    }
}

#[component]
fn Log(
    query: Memo<LogQuery>,
    log: Resource<Result<LogView, AppError>>,
    updates: RwSignal<LogChanges>,
) -> impl IntoView {
    let value = move |name: &'static str| {
        move || query.with(|q| q.get(name).unwrap_or_default().to_owned())
    };
    let mut status_options = vec![("problems", "Problems (failed or undelivered)")];
    status_options.extend(STATUSES.map(|s| (s, s)));
    let category_options = CATEGORIES.map(|c| (c, c)).to_vec();
    view! {
        <h1>"Delivery log"</h1>
        <form method="get" action="/messages" class="filters" aria-label="Filter the log">
            <Choice query name="status" label="Status" options=status_options/>
            <Choice query name="category" label="Category" options=category_options/>
            {TEXT_FILTERS
                .into_iter()
                .map(|(name, label, kind, placeholder)| {
                    let id = format!("log-{name}");
                    view! {
                        <div class="field">
                            <label for=id.clone()>{label}</label>
                            <input id=id name=name type=kind placeholder=placeholder value=value(name)/>
                        </div>
                    }
                })
                .collect_view()}
            <div class="filter-actions">
                <button type="submit" class="button-primary">"Filter"</button>
                <a href="/messages" class="button-quiet">"Clear"</a>
            </div>
        </form>
        {move || {
            let newer = updates.with(|u| u.newer);
            (newer > 0).then(|| view! {
                <p class="notice" role="status" data-testid="log-newer">
                    {newer} {if newer == 1 { " newer message matches" } else { " newer messages match" }}
                    " this filter. "
                    <button type="button" class="button-quiet" on:click=move |_| {
                        updates.set(LogChanges::default());
                        log.refetch();
                    }>"Show"</button>
                </p>
            })
        }}
        <Transition fallback=|| view! { <p class="muted">"Loading the log…"</p> }>
            {move || Suspend::new(async move {
                match log.await {
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    Ok(view) => view! { <LogTable query=query.get_untracked() view updates/> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// A filter chosen from a list ("Any" first), selected as the address says.
#[component]
fn Choice(
    query: Memo<LogQuery>,
    name: &'static str,
    label: &'static str,
    options: Vec<(&'static str, &'static str)>,
) -> impl IntoView {
    let id = format!("log-{name}");
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <select id=id name=name>
                <option value="" selected=move || query.with(|q| q.get(name).is_none())>"Any"</option>
                {options
                    .into_iter()
                    .map(|(value, text)| view! {
                        <option value=value selected=move || query.with(|q| q.get(name) == Some(value))>
                            {text}
                        </option>
                    })
                    .collect_view()}
            </select>
        </div>
    }
}

#[component]
fn LogTable(query: LogQuery, view: LogView, updates: RwSignal<LogChanges>) -> impl IntoView {
    let LogView {
        rows,
        counts,
        capped,
        capped_at,
        older,
        newer,
    } = view;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let problems: i64 = counts
        .iter()
        .filter(|(s, _)| s == "failed" || s == "undelivered")
        .map(|(_, n)| n)
        .sum();
    let current = query.get("status").map(str::to_owned);
    // How many the view holds: all, or those of the status chosen.
    let shown = match current.as_deref() {
        None => total,
        Some("problems") => problems,
        Some(s) => counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n),
    };
    // Past the cap a count is a floor: "1000+".
    let shown_count = move |n: i64| {
        if capped {
            format!("{n}+")
        } else {
            n.to_string()
        }
    };
    let chip = |label: String, status: Option<String>, n: i64| {
        let href = match &status {
            Some(s) => log_href(&query.with("status", s), None),
            None => log_href(&query.without("status"), None),
        };
        let here = current == status;
        view! {
            <li>
                <a href=href class="chip" aria-current=here.then_some("true")>
                    {label} " " <span class="count">{shown_count(n)}</span>
                </a>
            </li>
        }
    };
    let mut chips = vec![
        chip("All".to_owned(), None, total),
        chip("Problems".to_owned(), Some("problems".to_owned()), problems),
    ];
    for (status, n) in counts {
        chips.push(chip(status.clone(), Some(status), n));
    }
    let pager = {
        let newer = newer.map(|c| log_href(&query, Some(&c)));
        let older = older.map(|c| log_href(&query, Some(&c)));
        view! {
            <nav class="pager" aria-label="Pages">
                {match newer {
                    Some(href) => view! { <a href=href rel="prev">"← Newer"</a> }.into_any(),
                    None => view! { <span class="muted">"Newest"</span> }.into_any(),
                }}
                {match older {
                    Some(href) => view! { <a href=href rel="next">"Older →"</a> }.into_any(),
                    None => view! { <span class="muted">"Oldest"</span> }.into_any(),
                }}
            </nav>
        }
    };
    view! {
        <ul class="chips" aria-label="Messages per status" data-testid="log-counts">{chips}</ul>
        {capped.then(|| view! {
            <p class="muted" data-testid="log-counts-capped">
                {format!("More than {capped_at} messages contain this text: the counts cover the newest {capped_at}. Pages and the CSV export hold every match.")}
            </p>
        })}
        <Export query=query.clone() total=shown/>
        {if rows.is_empty() {
            view! { <p data-testid="log-empty">"No messages match this filter."</p> }.into_any()
        } else {
            view! {
                <table class="table" data-testid="log">
                    <thead>
                        <tr>
                            <th scope="col">"Written"</th>
                            <th scope="col">"To"</th>
                            <th scope="col">"Status"</th>
                            <th scope="col">"Error"</th>
                            <th scope="col">"Category / template"</th>
                            <th scope="col">"Sent by"</th>
                            <th scope="col">"Segments"</th>
                            <th scope="col">"Text"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {rows
                            .into_iter()
                            .map(|r| {
                                let href = format!("/messages/{}", r.sid);
                                let kind = [r.category.clone(), r.template.clone()]
                                    .into_iter()
                                    .flatten()
                                    .collect::<Vec<_>>()
                                    .join(" / ");
                                // The status as the last update says, else as loaded.
                                let sid = r.sid.clone();
                                let (status, code) = (r.status.clone(), r.error_code);
                                let now = move || {
                                    updates
                                        .with(|u| {
                                            u.statuses
                                                .iter()
                                                .find(|(s, _, _)| *s == sid)
                                                .map(|(_, st, c)| (st.clone(), *c))
                                        })
                                        .unwrap_or_else(|| (status.clone(), code))
                                };
                                let now_too = now.clone();
                                let now_also = now.clone();
                                view! {
                                    <tr data-sid=r.sid.clone()>
                                        <td><a href=href><LocalTime micros=r.created_at/></a></td>
                                        <td><code>{r.to}</code></td>
                                        <td>
                                            <span class=move || format!("status status-{}", now().0)>
                                                {move || now_too().0}
                                            </span>
                                        </td>
                                        <td title=r.reason.clone()>{move || now_also().1}</td>
                                        <td>{kind}</td>
                                        <td>{r.source}</td>
                                        <td class="number">{r.segments}</td>
                                        <td class="clip">{r.preview.unwrap_or_else(|| "(two-factor code, not shown)".to_owned())}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            }
            .into_any()
        }}
        {pager}
    }
}

#[component]
pub fn MessagePage() -> impl IntoView {
    let params = use_params_map();
    let sid = Memo::new(move |_| params.with(|p| p.get("sid").unwrap_or_default()));
    let retry = ServerAction::<RetryMessage>::new();
    let cancel = ServerAction::<CancelMessage>::new();
    let detail = Resource::new(
        move || (sid.get(), retry.version().get(), cancel.version().get()),
        |(sid, _, _)| message_detail(sid),
    );
    view! {
        <Title text="Message"/>
        <Guarded permission=Some(Permission::ViewDeliveryLog)>
            <Message detail retry cancel/>
        </Guarded>
    }
}

#[component]
fn Message(
    detail: Resource<Result<MessageInfo, AppError>>,
    retry: ServerAction<RetryMessage>,
    cancel: ServerAction<CancelMessage>,
) -> impl IntoView {
    let action_error = move || {
        retry
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| cancel.value().get().and_then(Result::err))
    };
    view! {
        <p><a href="/messages">"← Delivery log"</a></p>
        {move || action_error().map(|e| view! { <ErrorNote error=e/> })}
        <Suspense fallback=|| view! { <p class="muted">"Loading the message…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Err(e) => view! { <ErrorNote error=e/> }.into_any(),
                    Ok(d) => view! { <MessageFacts d retry cancel/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn MessageFacts(
    d: MessageInfo,
    retry: ServerAction<RetryMessage>,
    cancel: ServerAction<CancelMessage>,
) -> impl IntoView {
    let sid = d.row.sid.clone();
    let optional = |v: Option<String>| v.unwrap_or_else(|| "—".to_owned());
    let time = |t: Option<i64>| match t {
        Some(t) => view! { <LocalTime micros=t/> }.into_any(),
        None => "—".into_any(),
    };
    view! {
        <h1>"Message " <code>{sid.clone()}</code></h1>
        <p>
            <span class=format!("status status-{}", d.row.status) data-testid="message-status">{d.row.status.clone()}</span>
            {d.row.error_code.map(|c| view! { " · error " {c} })}
        </p>
        {(d.can_retry || d.can_cancel).then(|| {
            let retry_sid = sid.clone();
            let cancel_sid = sid.clone();
            view! {
                <div class="message-actions">
                    {d.can_retry.then(|| view! {
                        <ActionForm action=retry>
                            <input type="hidden" name="sid" value=retry_sid.clone()/>
                            <button type="submit" class="button-primary">"Send again"</button>
                        </ActionForm>
                    })}
                    {d.can_cancel.then(|| view! {
                        <ActionForm action=cancel>
                            <input type="hidden" name="sid" value=cancel_sid.clone()/>
                            <button type="submit" class="button-quiet">"Cancel"</button>
                        </ActionForm>
                    })}
                </div>
            }
        })}
        <dl class="facts">
            <dt>"To"</dt><dd><code>{d.row.to.clone()}</code></dd>
            <dt>"From"</dt><dd>{optional(d.sender.clone())}</dd>
            <dt>"Sent by"</dt><dd>{d.row.source.clone()}</dd>
            <dt>"Category"</dt><dd>{optional(d.row.category.clone())}</dd>
            <dt>"Template"</dt><dd>{optional(d.row.template.clone())}</dd>
            <dt>"Priority"</dt><dd>{d.priority.clone()}</dd>
            <dt>"Encoding"</dt><dd>{d.encoding.clone()} ", " {d.row.segments} " segment(s)"</dd>
            <dt>"Price"</dt><dd>{optional(d.price.clone())}</dd>
            <dt>"Estimated"</dt><dd>{optional(d.estimated_price.clone())}</dd>
            <dt>"Attempts"</dt><dd>{d.attempts}</dd>
            <dt>"Twilio sid"</dt><dd><code>{optional(d.provider_sid.clone())}</code></dd>
            <dt>"Written"</dt><dd><LocalTime micros=d.row.created_at/></dd>
            <dt>"Handed to Twilio"</dt><dd>{time(d.dispatched_at)}</dd>
            <dt>"Valid until"</dt><dd>{time(d.validity_until)}</dd>
        </dl>
        <h2>"Text"</h2>
        {match (d.body.clone(), d.redacted_at) {
            (None, _) => view! { <p class="muted">"A two-factor code: never shown again."</p> }.into_any(),
            (Some(_), Some(at)) => view! {
                <p class="muted" data-testid="message-body-removed">
                    "Removed at " {time(Some(at))} " (the retention period in Settings); the rest of the record stays."
                </p>
            }.into_any(),
            (Some(b), None) => view! { <pre class="body" data-testid="message-body">{b}</pre> }.into_any(),
        }}
        {(!d.errors.is_empty()).then(|| view! {
            <h2>"What the errors mean"</h2>
            <dl class="errors" data-testid="message-errors">
                {d.errors.iter().map(|e| view! {
                    <dt><a href=e.url.clone() rel="noopener noreferrer" target="_blank">"Error " {e.code}</a></dt>
                    <dd>{e.meaning.clone()} <br/> <strong>"What to do: "</strong> {e.action.clone()}</dd>
                }).collect_view()}
            </dl>
        })}
        <h2>"Timeline"</h2>
        <table class="table" data-testid="timeline">
            <thead>
                <tr>
                    <th scope="col">"When"</th>
                    <th scope="col">"What"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Error"</th>
                    <th scope="col">"Detail"</th>
                </tr>
            </thead>
            <tbody>
                {d.events.iter().map(|e| view! {
                    <tr>
                        <td><LocalTime micros=e.at/></td>
                        <td>{e.kind.clone()}</td>
                        <td>{e.status.clone()}</td>
                        <td>{e.error_code}</td>
                        <td>{e.detail.clone()} {e.provider_sid.clone().map(|s| view! { " " <code>{s}</code> })}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}
