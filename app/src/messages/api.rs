//! The delivery log's server functions: a page of the log with its counts per status, one
//! message with its timeline, and the two actions. Every role may read (compliance and finance
//! read only); sending again and canceling need the send permission, and are audited. Numbers
//! are shown whole only to roles that send; the others see them masked.

#[cfg(feature = "ssr")]
use domain::access::Permission;
use domain::delivery::LogQuery;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[cfg(feature = "ssr")]
use crate::auth::{SessionUser, require, state};

/// Messages on one page of the log.
pub const PAGE_SIZE: u32 = 50;

/// One message as a row of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRow {
    pub id: i64,
    pub sid: String,
    pub created_at: i64,
    /// Whole for roles that send, masked for the others.
    pub to: String,
    pub status: String,
    pub category: Option<String>,
    pub template: Option<String>,
    /// `api_key:SK…` or `user:<e-mail>`.
    pub source: String,
    pub segments: i64,
    pub error_code: Option<i64>,
    /// Why it failed, as Twilio (or smsdesk) said it; numbers masked.
    pub reason: Option<String>,
    /// The start of the body; `None` for two-factor codes.
    pub preview: Option<String>,
}

/// A page of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogView {
    pub rows: Vec<LogRow>,
    /// Messages per status for the filter (its own status left out), in Twilio's order.
    pub counts: Vec<(String, i64)>,
    /// A search by text matched more than the log counts: the counts cover the newest
    /// `capped_at` + 1.
    pub capped: bool,
    pub capped_at: i64,
    /// Cursors (`o…`, `n…`) to the older and newer pages, when there are such.
    pub older: Option<String>,
    pub newer: Option<String>,
}

/// One event of a message's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub at: i64,
    pub kind: String,
    pub status: Option<String>,
    pub error_code: Option<i64>,
    pub detail: String,
    pub provider_sid: Option<String>,
}

/// What an error code means and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorExplained {
    pub code: i64,
    pub meaning: String,
    pub action: String,
    /// Twilio's page for the code.
    pub url: String,
}

/// A message's own page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageInfo {
    pub row: LogRow,
    /// `None` for two-factor codes, never shown again.
    pub body: Option<String>,
    pub encoding: String,
    pub priority: String,
    pub sender: Option<String>,
    pub attempts: i64,
    pub provider_sid: Option<String>,
    pub error_message: Option<String>,
    /// Dollars, once Twilio has said (`$0.0083`).
    pub price: Option<String>,
    /// Dollars, as estimated at intake; `None` without a price for the country.
    pub estimated_price: Option<String>,
    pub dispatched_at: Option<i64>,
    pub validity_until: Option<i64>,
    pub updated_at: i64,
    /// When the body was removed (the retention period, or a two-factor code that has left).
    pub redacted_at: Option<i64>,
    pub events: Vec<TimelineEvent>,
    /// Each error code of the message and its timeline, explained.
    pub errors: Vec<ErrorExplained>,
    /// Whether the signed-in user may send it again / cancel it now.
    pub can_retry: bool,
    pub can_cancel: bool,
}

#[cfg(feature = "ssr")]
fn row(m: &backend::outbox::MessageView, whole_numbers: bool) -> LogRow {
    const PREVIEW_CHARS: usize = 80;
    LogRow {
        id: m.id,
        sid: m.sid.clone(),
        created_at: m.created_at,
        to: if whole_numbers {
            m.to.clone()
        } else {
            m.to_masked.clone()
        },
        status: m.status.as_str().to_owned(),
        category: m.category.map(|c| c.as_str().to_owned()),
        template: m.template_key.clone(),
        source: m.source.to_string(),
        segments: m.segments,
        error_code: m.error_code,
        reason: m.error_message.clone(),
        preview: m.body.as_ref().map(|b| {
            if b.chars().count() > PREVIEW_CHARS {
                let cut: String = b.chars().take(PREVIEW_CHARS - 1).collect();
                format!("{cut}…")
            } else {
                b.clone()
            }
        }),
    }
}

/// Whether this user sees whole numbers (roles that send need them; the others do not).
#[cfg(feature = "ssr")]
fn sees_numbers(user: &SessionUser) -> bool {
    user.can(Permission::SendMessages)
}

/// The filter a log address asks for (numbers read with the default region).
#[cfg(feature = "ssr")]
async fn filter_of(
    state: &crate::state::AppState,
    query: &LogQuery,
) -> Result<backend::delivery::Filter, AppError> {
    let settings = backend::settings::sending(&state.db)
        .await
        .map_err(|e| AppError::internal("reading the sending settings", &e))?;
    backend::delivery::Filter::parse(query, &state.key, Some(&settings.default_region))
        .map_err(|e| AppError::invalid(e.field, e.message).respond())
}

/// A page of the log for a filter (as in the page's address) from a cursor.
#[server(endpoint = "delivery_log", input = server_fn::codec::Json)]
pub async fn delivery_log(query: LogQuery, cursor: Option<String>) -> Result<LogView, AppError> {
    use backend::delivery::{self, Cursor};
    let user = require(Permission::ViewDeliveryLog, "read the delivery log").await?;
    let state = state()?;
    let cursor = match cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(Cursor::parse(c).ok_or_else(|| {
            AppError::invalid(
                "cursor",
                "this page's address is damaged: start from the newest",
            )
            .respond()
        })?),
    };
    let filter = filter_of(&state, &query).await?;
    let failed = |e: backend::db::DbError| AppError::internal("reading the delivery log", &e);
    let page = delivery::page(&state.db, &state.key, &filter, cursor, PAGE_SIZE)
        .await
        .map_err(failed)?;
    let counts = delivery::log_counts(&state.db, &filter)
        .await
        .map_err(failed)?;
    let whole = sees_numbers(&user);
    Ok(LogView {
        rows: page.messages.iter().map(|m| row(m, whole)).collect(),
        capped: counts.capped,
        capped_at: delivery::TEXT_COUNT_CAP,
        counts: counts
            .by_status
            .into_iter()
            .map(|(s, n)| (s.as_str().to_owned(), n))
            .collect(),
        older: page.older.map(|id| Cursor::Older(id).to_string()),
        newer: page.newer.map(|id| Cursor::Newer(id).to_string()),
    })
}

/// What changed since a page of the log was drawn.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChanges {
    /// Each row's status and error code now: (sid, status, error code).
    pub statuses: Vec<(String, String, Option<i64>)>,
    /// Messages matching the filter that arrived after the page's newest.
    pub newer: i64,
}

/// How often an open log page asks for its updates, in seconds.
pub const UPDATE_EVERY_SECONDS: u64 = 5;

/// The current statuses of the rows a page shows, and how many newer messages match its filter
/// (the page does not move: the reader chooses when to see them).
#[server(endpoint = "log_updates", input = server_fn::codec::Json)]
pub async fn log_updates(
    query: LogQuery,
    sids: Vec<String>,
    newest: Option<i64>,
) -> Result<LogChanges, AppError> {
    use backend::delivery;
    require(Permission::ViewDeliveryLog, "read the delivery log").await?;
    let state = state()?;
    let failed = |e: backend::db::DbError| AppError::internal("reading the log's updates", &e);
    let filter = filter_of(&state, &query).await?;
    let newer = match newest {
        Some(id) => delivery::count_newer(&state.db, &filter, id)
            .await
            .map_err(failed)?,
        None => 0,
    };
    let statuses = delivery::statuses(&state.db, &sids)
        .await
        .map_err(failed)?
        .into_iter()
        .map(|(sid, status, code)| (sid, status.as_str().to_owned(), code))
        .collect();
    Ok(LogChanges { statuses, newer })
}

/// How far a CSV export has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportStatus {
    pub rows: u64,
    pub done: bool,
    pub failed: bool,
}

/// How far the CSV export started with `token` has got (`None`: this instance does not know it,
/// say behind a load balancer that sent the download elsewhere).
#[server(endpoint = "export_progress")]
pub async fn export_progress(token: String) -> Result<Option<ExportStatus>, AppError> {
    require(Permission::ViewDeliveryLog, "read the delivery log").await?;
    Ok(state()?.exports.get(&token).map(|p| ExportStatus {
        rows: p.rows,
        done: p.done,
        failed: p.failed,
    }))
}

/// One message with its timeline.
#[server(endpoint = "message_detail")]
pub async fn message_detail(sid: String) -> Result<MessageInfo, AppError> {
    use backend::outbox::{self, MessageState};
    use domain::status::MessageStatus;
    let user = require(Permission::ViewDeliveryLog, "read the delivery log").await?;
    let state = state()?;
    let found = outbox::find(&state.db, &state.key, &sid)
        .await
        .map_err(|e| AppError::internal("reading a message", &e))?;
    let Some(m) = found else {
        return Err(AppError::NotFound(format!("there is no message {sid}")).respond());
    };
    let events = outbox::events(&state.db, m.id)
        .await
        .map_err(|e| AppError::internal("reading a message's timeline", &e))?;
    let mut codes: Vec<i64> = events.iter().filter_map(|e| e.error_code).collect();
    codes.extend(m.error_code);
    codes.sort_unstable();
    codes.dedup();
    let errors = codes
        .into_iter()
        .filter_map(|code| {
            let info = domain::errors::lookup(u32::try_from(code).ok()?);
            Some(ErrorExplained {
                code,
                meaning: info.meaning().to_owned(),
                action: info.operator_action().to_owned(),
                url: info.more_info_url(),
            })
        })
        .collect();
    let may_act = user.can(Permission::SendMessages);
    let failed = matches!(m.status, MessageStatus::Failed | MessageStatus::Undelivered);
    Ok(MessageInfo {
        row: row(&m, sees_numbers(&user)),
        can_retry: may_act
            && m.state == MessageState::Done
            && failed
            && m.category != Some(domain::template::Category::TwoFactor)
            && m.redacted_at.is_none(),
        can_cancel: may_act && m.state == MessageState::Waiting,
        body: m.body,
        encoding: m.encoding,
        priority: m.priority.as_str().to_owned(),
        sender: m.sender,
        attempts: m.attempts,
        provider_sid: m.provider_sid,
        error_message: m.error_message,
        price: m
            .price_micros
            .map(|p| domain::money::Money::from_micros(p).to_string()),
        estimated_price: m
            .estimated_micros
            .map(|p| domain::money::Money::from_micros(p).to_string()),
        dispatched_at: m.dispatched_at,
        validity_until: m.validity_until,
        updated_at: m.updated_at,
        redacted_at: m.redacted_at,
        events: events
            .into_iter()
            .map(|e| TimelineEvent {
                at: e.at,
                kind: e.kind,
                status: e.status,
                error_code: e.error_code,
                detail: e.detail,
                provider_sid: e.provider_sid,
            })
            .collect(),
        errors,
    })
}

#[cfg(feature = "ssr")]
async fn act(
    sid: &str,
    what: &str,
    // Whether the worker has new work (a retry does; a cancellation takes work away).
    wake_worker: bool,
    run: impl AsyncFnOnce(&backend::db::Db, &backend::audit::Actor) -> backend::delivery::ActionResult,
) -> Result<(), AppError> {
    use backend::delivery::ActionRefused;
    let user = require(Permission::SendMessages, what).await?;
    let state = state()?;
    let actor = backend::audit::Actor::user(user.id, &user.email);
    match run(&state.db, &actor).await {
        Ok(Ok(())) => {
            if wake_worker {
                state.intake.written();
            }
            Ok(())
        }
        Ok(Err(ActionRefused::NotFound(_))) => {
            Err(AppError::NotFound(format!("there is no message {sid}")).respond())
        }
        Ok(Err(ActionRefused::NotNow(why))) => Err(AppError::Conflict(why).respond()),
        Err(e) => Err(AppError::internal(what, &e)),
    }
}

/// Sends a failed message again (a new attempt; its history stays). Audited.
#[server(endpoint = "retry_message")]
pub async fn retry_message(sid: String) -> Result<(), AppError> {
    act(&sid, "send messages again", true, async |db, actor| {
        backend::delivery::retry(db, &sid, actor, backend::db::now_micros()).await
    })
    .await
}

/// Cancels a message still waiting in the outbox. Audited.
#[server(endpoint = "cancel_message")]
pub async fn cancel_message(sid: String) -> Result<(), AppError> {
    act(&sid, "cancel messages", false, async |db, actor| {
        backend::delivery::cancel(db, &sid, actor, backend::db::now_micros()).await
    })
    .await
}

/// The overview's figures: today's messages, the queue, recent failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverviewFigures {
    /// Today (UTC), `YYYY-MM-DD`: the day the figures count.
    pub today: String,
    /// Messages written today per status, in Twilio's order.
    pub by_status: Vec<(String, i64)>,
    /// Today's messages delivered (or read), and those that reached a final outcome: the
    /// delivery rate is the one over the other.
    pub delivered: i64,
    pub ended: i64,
    pub waiting: i64,
    pub in_doubt: i64,
    /// When the oldest waiting message was written.
    pub oldest_waiting: Option<i64>,
    /// The latest failed or undelivered messages.
    pub failures: Vec<LogRow>,
    /// For finance and admins: what today and this month are estimated to cost, and each
    /// budget's share used.
    pub spend: Option<SpendFigures>,
}

/// The overview's spend, µ$.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendFigures {
    pub today_micros: i64,
    pub month_micros: i64,
    /// (name, reserved, amount) per budget.
    pub budgets: Vec<(String, i64, i64)>,
}

/// The overview: what happened today and what needs looking at (every signed-in role).
#[server(endpoint = "overview")]
pub async fn overview() -> Result<OverviewFigures, AppError> {
    use backend::delivery::{self, Filter, StatusFilter};
    use domain::status::MessageStatus;
    let user = require(Permission::ViewDeliveryLog, "read the delivery log").await?;
    let state = state()?;
    const DAY: i64 = 86_400_000_000;
    let now = backend::db::now_micros();
    let start = now - now.rem_euclid(DAY);
    let failed = |e: backend::db::DbError| AppError::internal("reading the overview", &e);
    let today = Filter {
        created_from: Some(start),
        ..Filter::default()
    };
    let by_status = delivery::counts(&state.db, &today).await.map_err(failed)?;
    let count = |s: MessageStatus| {
        by_status
            .iter()
            .find(|(status, _)| *status == s)
            .map_or(0, |(_, n)| *n)
    };
    let delivered = count(MessageStatus::Delivered) + count(MessageStatus::Read);
    let ended = delivered + count(MessageStatus::Undelivered) + count(MessageStatus::Failed);
    let queue = backend::outbox::queue(&state.db).await.map_err(failed)?;
    let problems = Filter {
        status: Some(StatusFilter::Problems),
        ..Filter::default()
    };
    let failures = delivery::list(&state.db, &state.key, &problems, None, 5)
        .await
        .map_err(failed)?;
    let whole = sees_numbers(&user);
    let spend = if user.can(Permission::ViewSpend) {
        use domain::budget::Period;
        let month_start = Period::Month.start(now);
        let rows = backend::spend::report(
            &state.db,
            backend::spend::Group::Category,
            true,
            month_start,
            start + DAY,
        )
        .await
        .map_err(failed)?;
        let standings = backend::budgets::standings(&state.db, now)
            .await
            .map_err(failed)?;
        Some(SpendFigures {
            today_micros: rows
                .iter()
                .filter(|r| r.day == start)
                .map(|r| r.figures.estimated_micros)
                .sum(),
            month_micros: rows.iter().map(|r| r.figures.estimated_micros).sum(),
            budgets: standings
                .iter()
                .map(|s| {
                    (
                        backend::budgets::describe(&s.budget),
                        s.spent_micros,
                        s.budget.amount_micros,
                    )
                })
                .collect(),
        })
    } else {
        None
    };
    Ok(OverviewFigures {
        spend,
        today: crate::components::time::format_time(start)
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_owned(),
        delivered,
        ended,
        by_status: by_status
            .into_iter()
            .map(|(s, n)| (s.as_str().to_owned(), n))
            .collect(),
        waiting: queue.waiting.iter().map(|(_, n)| n).sum(),
        in_doubt: queue.in_doubt,
        oldest_waiting: queue.oldest_created_at,
        failures: failures.iter().map(|m| row(m, whole)).collect(),
    })
}
