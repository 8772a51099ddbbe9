//! `GET /messages/export.csv?…`: the delivery log's filtered view as CSV (the log page's filter
//! names), streamed a thousand rows at a time (`backend::export`), for a signed-in user whose
//! role reads the log; numbers are whole only for roles that send. `progress=<token>` (16 to 64
//! letters or digits, chosen by the page) lets the page follow it through the
//! `export_progress` server function.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use backend::crypto::DataKey;
use backend::db::{Db, now_micros};
use backend::delivery::{self, Cursor, Filter};
use backend::export::{self, BATCH, Exports, Progress};
use domain::access::Permission;
use domain::delivery::LogQuery;
use tower_sessions::Session;

/// What the export route needs.
#[derive(Clone)]
pub struct ExportState {
    pub db: Db,
    pub key: DataKey,
    pub exports: Exports,
}

/// Where a streamed export is.
struct Reading {
    state: ExportState,
    filter: Filter,
    whole_numbers: bool,
    token: Option<String>,
    cursor: Option<Cursor>,
    header_sent: bool,
    finished: bool,
    rows: u64,
}

impl Reading {
    fn report(&self, done: bool, failed: bool) {
        if let Some(token) = &self.token {
            self.state.exports.set(
                token,
                Progress {
                    rows: self.rows,
                    done,
                    failed,
                },
            );
        }
    }

    /// The next chunk: the header with the first batch, then a batch at a time.
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Reading)> {
        if self.finished {
            return None;
        }
        let mut chunk = if self.header_sent {
            Vec::new()
        } else {
            self.header_sent = true;
            export::header()
        };
        let batch = delivery::list(
            &self.state.db,
            &self.state.key,
            &self.filter,
            self.cursor,
            BATCH,
        )
        .await;
        match batch {
            Ok(batch) => {
                self.rows += batch.len() as u64;
                match batch.last() {
                    Some(last) if batch.len() == BATCH as usize => {
                        self.cursor = Some(Cursor::Older(last.id));
                    }
                    _ => self.finished = true,
                }
                chunk.extend(export::rows(&batch, self.whole_numbers));
                self.report(self.finished, false);
                Some((Ok(Bytes::from(chunk)), self))
            }
            Err(e) => {
                tracing::error!(error = %e, rows = self.rows, "the CSV export failed on the database");
                self.finished = true;
                self.report(false, true);
                Some((
                    Err(std::io::Error::other(
                        "the database failed during the export",
                    )),
                    self,
                ))
            }
        }
    }
}

/// 503 for a download or a chart whose database cannot be reached.
pub(crate) fn database_down() -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "smsdesk cannot reach its database; try again shortly",
    )
}

pub(crate) fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.to_owned(),
    )
        .into_response()
}

/// The signed-in user of a request that is not a page or a server function (a download, a
/// chart), if their role has `permission`; otherwise the answer (401, 403, or 503 when the
/// database cannot be reached). `what` completes "your role may not …".
pub(crate) async fn user_with(
    db: &Db,
    session: &Session,
    permission: Permission,
    what: &str,
) -> Result<app::auth::SessionUser, Response> {
    let user = match app::auth::user_of_session(db, session, now_micros()).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                &format!("sign in to {what}"),
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "checking the session of a download");
            return Err(database_down());
        }
    };
    if !user.can(permission) {
        tracing::warn!(
            user_id = user.id,
            ?permission,
            "download forbidden for this role"
        );
        return Err(refuse(
            StatusCode::FORBIDDEN,
            &format!("your role may not {what}"),
        ));
    }
    Ok(user)
}

/// `GET /messages/export.csv`.
pub async fn csv(State(state): State<ExportState>, session: Session, uri: Uri) -> Response {
    let user = match user_with(
        &state.db,
        &session,
        Permission::ViewDeliveryLog,
        "export the delivery log",
    )
    .await
    {
        Ok(user) => user,
        Err(refused) => return refused,
    };
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
    let query = LogQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let token = pairs
        .iter()
        .find(|(k, _)| k == "progress")
        .map(|(_, v)| v.clone())
        .filter(|t| Exports::valid_token(t));
    let region = match backend::settings::sending(&state.db).await {
        Ok(s) => s.default_region,
        Err(e) => {
            tracing::error!(error = %e, "reading the settings for an export");
            return database_down();
        }
    };
    let filter = match Filter::parse(&query, &state.key, Some(&region)) {
        Ok(f) => f,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    tracing::info!(user_id = user.id, "CSV export of the delivery log");
    let reading = Reading {
        state,
        filter,
        whole_numbers: user.can(Permission::SendMessages),
        token,
        cursor: None,
        header_sent: false,
        finished: false,
        rows: 0,
    };
    reading.report(false, false);
    let stream = futures::stream::unfold(reading, Reading::next);
    let name = chrono::DateTime::from_timestamp_micros(now_micros())
        .unwrap_or_default()
        .format("smsdesk-messages-%Y%m%d-%H%M%S.csv");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
