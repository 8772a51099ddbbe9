//! `GET /spend/export.csv?by=day|template|country&from=YYYY-MM-DD&to=YYYY-MM-DD` (finance and
//! admins): the rows behind each of the spend page's charts and tables, from the daily totals (a
//! few thousand rows at most). Amounts are USD decimal strings; text cells a spreadsheet would
//! read as a formula are neutralised.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use backend::db::{Db, now_micros};
use backend::export::neutralise;
use backend::spend::{self, Group};
use domain::access::Permission;
use domain::money::Money;
use serde::Deserialize;
use tower_sessions::Session;

use crate::export::{database_down, refuse, user_with};

#[derive(Debug, Deserialize)]
pub struct ExportParams {
    by: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

fn dollars(micros: i64) -> String {
    Money::from_micros(micros).to_decimal()
}

/// `GET /spend/export.csv`.
pub async fn export(
    State(db): State<Db>,
    session: Session,
    params: Result<Query<ExportParams>, QueryRejection>,
) -> Response {
    if let Err(refused) = user_with(&db, &session, Permission::ViewSpend, "export spend").await {
        return refused;
    }
    let Ok(Query(params)) = params else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the export's parameters do not read",
        );
    };
    let now = now_micros();
    let (from, until) = match spend::range(params.from.as_deref(), params.to.as_deref(), now) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e),
    };
    let (group, per_day, first_column) = match params.by.as_deref().unwrap_or("day") {
        "day" => (Group::Category, true, "category"),
        "template" => (Group::Template, false, "template"),
        "country" => (Group::Country, false, "country"),
        other => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("by: {other:?} is not day, template or country"),
            );
        }
    };
    let rows = match spend::report(&db, group, per_day, from, until).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "reading the spend totals for an export");
            return database_down();
        }
    };
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header = Vec::new();
    if per_day {
        header.push("day");
    }
    header.extend([
        first_column,
        "messages",
        "segments",
        "estimated_usd",
        "reported_usd",
    ]);
    let written = out.write_record(&header).and_then(|()| {
        rows.iter().try_for_each(|r| {
            let mut record: Vec<String> = Vec::new();
            if per_day {
                record.push(spend::format_day(r.day));
            }
            record.push(neutralise(&r.key).into_owned());
            record.extend([
                r.figures.messages.to_string(),
                r.figures.segments.to_string(),
                dollars(r.figures.estimated_micros),
                dollars(r.figures.actual_micros),
            ]);
            out.write_record(&record)
        })
    });
    let body = match written
        .map_err(|e| e.to_string())
        .and_then(|()| out.into_inner().map_err(|e| e.to_string()))
    {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "writing a spend export");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the export could not be written",
            );
        }
    };
    let name = format!(
        "smsdesk-spend-by-{}-{}-to-{}.csv",
        params.by.as_deref().unwrap_or("day"),
        spend::format_day(from),
        spend::format_day(until - 86_400_000_000)
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}
