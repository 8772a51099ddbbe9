//! The inbox's server functions: a page of replies with their threads, and marking one read or
//! unread. Both need the send permission (dispatchers and admins: the people who answer).

#[cfg(feature = "ssr")]
use domain::access::Permission;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[cfg(feature = "ssr")]
use crate::auth::{require, state};

/// Replies on one page of the inbox.
pub const PAGE_SIZE: i64 = 50;

/// The message smsdesk sent last to the number that replied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadMessage {
    pub sid: String,
    pub created_at: i64,
    pub status: String,
    pub template: Option<String>,
    /// Its text; `None` for a two-factor code or a text removed after the retention period.
    pub body: Option<String>,
}

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxReply {
    pub id: i64,
    pub from: String,
    pub to: String,
    pub received_at: i64,
    /// `None` once removed after the retention period.
    pub body: Option<String>,
    pub read: bool,
    pub thread: Option<ThreadMessage>,
}

/// A page of the inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxPage {
    pub replies: Vec<InboxReply>,
    /// Replies nobody has read yet (all of them, not only this page's).
    pub unread: i64,
    /// Where the next (older) page starts, when there is one.
    pub older: Option<i64>,
}

#[cfg(feature = "ssr")]
fn reply(r: backend::inbox::Reply) -> InboxReply {
    InboxReply {
        id: r.id,
        from: r.from,
        to: r.to,
        received_at: r.received_at,
        body: r.redacted_at.is_none().then_some(r.body),
        read: r.read_at.is_some(),
        thread: r.in_reply_to.map(|m| ThreadMessage {
            body: m.body.filter(|_| m.redacted_at.is_none()),
            sid: m.sid,
            created_at: m.created_at,
            status: m.status.as_str().to_owned(),
            template: m.template_key,
        }),
    }
}

/// The replies, newest first: `PAGE_SIZE` of them older than the reply `before` (none: the
/// newest), only the unread ones if asked.
#[server(endpoint = "inbox")]
pub async fn inbox(unread_only: bool, before: Option<i64>) -> Result<InboxPage, AppError> {
    require(Permission::SendMessages, "read the inbox").await?;
    let state = state()?;
    let failed = |e: backend::db::DbError| AppError::internal("reading the inbox", &e);
    let filter = backend::inbox::Filter { unread_only };
    let mut replies = backend::inbox::list(&state.db, &state.key, filter, before, PAGE_SIZE + 1)
        .await
        .map_err(failed)?;
    let more = replies.len() > PAGE_SIZE as usize;
    replies.truncate(PAGE_SIZE as usize);
    Ok(InboxPage {
        older: more.then(|| replies.last().map(|r| r.id)).flatten(),
        unread: backend::inbox::unread(&state.db).await.map_err(failed)?,
        replies: replies.into_iter().map(reply).collect(),
    })
}

/// Marks a reply read, or unread again.
#[server(endpoint = "mark_reply")]
pub async fn mark_reply(id: i64, read: bool) -> Result<(), AppError> {
    require(Permission::SendMessages, "read the inbox").await?;
    let state = state()?;
    let found = backend::inbox::mark(&state.db, id, read, backend::db::now_micros())
        .await
        .map_err(|e| AppError::internal("marking a reply", &e))?;
    if found {
        Ok(())
    } else {
        Err(AppError::invalid("id", "there is no such reply: reload the inbox").respond())
    }
}
