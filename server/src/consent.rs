//! The consent ledger's downloads, for compliance officers and admins:
//! - `GET /consent/export.csv?number=…`: one number's whole history (the number typed in any
//!   format), or `?from=YYYY-MM-DD&to=YYYY-MM-DD` (UTC days, both included) with optional
//!   `action=opt_out|opt_in` and `source=inbound|console|twilio_callback|import`: the entries in
//!   that range, numbers masked. Streamed a thousand entries at a time (`backend::consent::export`).
//! - `GET /consent/opt-outs.svg?days=30`: opt-outs (bars) and opt-ins (line) per UTC day, drawn on
//!   the server; the page shows the same figures as text.

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use backend::consent::{self, Action, DayCount, LedgerFilter};
use backend::crypto::DataKey;
use backend::db::{Db, now_micros};
use domain::access::Permission;
use serde::Deserialize;
use tower_sessions::Session;

use crate::export::{database_down, refuse, user_with};

/// Entries read per query of an export.
const BATCH: u32 = 1_000;
const DAY: i64 = 86_400_000_000;

/// What the consent downloads need.
#[derive(Clone)]
pub struct ConsentState {
    pub db: Db,
    pub key: DataKey,
}

#[derive(Debug, Default, Deserialize)]
pub struct ExportParams {
    number: Option<String>,
    from: Option<String>,
    to: Option<String>,
    action: Option<String>,
    source: Option<String>,
}

/// A UTC day's first microsecond.
fn day(field: &str, text: &str) -> Result<i64, String> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
        .ok_or_else(|| format!("{field}: {text:?} is not a day such as 2025-06-30"))
}

/// The range filter of an export, or what is wrong with it.
fn range_filter(p: &ExportParams) -> Result<LedgerFilter, String> {
    fn nonempty(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
    let action = nonempty(&p.action)
        .map(|a| {
            a.parse::<Action>()
                .map_err(|_| format!("action: {a:?} is not opt_out or opt_in"))
        })
        .transpose()?;
    let source = nonempty(&p.source)
        .map(|s| {
            consent::SOURCES
                .into_iter()
                .find(|known| *known == s)
                .ok_or_else(|| {
                    format!(
                        "source: {s:?} is not one of {}",
                        consent::SOURCES.join(", ")
                    )
                })
        })
        .transpose()?;
    let from = nonempty(&p.from).map(|d| day("from", d)).transpose()?;
    let until = nonempty(&p.to)
        .map(|d| day("to", d).map(|start| start + DAY))
        .transpose()?;
    if let (Some(from), Some(until)) = (from, until)
        && until <= from
    {
        return Err("to: the range ends before it begins".to_owned());
    }
    Ok(LedgerFilter {
        action,
        source,
        from,
        until,
    })
}

/// `GET /consent/export.csv`.
pub async fn export(
    State(state): State<ConsentState>,
    session: Session,
    params: Result<Query<ExportParams>, QueryRejection>,
) -> Response {
    let user = match user_with(
        &state.db,
        &session,
        Permission::ViewConsent,
        "export the consent ledger",
    )
    .await
    {
        Ok(user) => user,
        Err(refused) => return refused,
    };
    let Ok(Query(params)) = params else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the export's parameters do not read",
        );
    };
    let name_time = chrono::DateTime::from_timestamp_micros(now_micros())
        .unwrap_or_default()
        .format("%Y%m%d-%H%M%S");
    let number = params
        .number
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let (body, name) = match number {
        Some(typed) => {
            let region = match backend::settings::sending(&state.db).await {
                Ok(s) => s.default_region,
                Err(e) => {
                    tracing::error!(error = %e, "reading the settings for a consent export");
                    return database_down();
                }
            };
            let e164 = match domain::phone::PhoneNumber::parse(typed, Some(&region)) {
                Ok(n) => n.e164().to_owned(),
                Err(e) => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        &format!("number: not a phone number ({e}); write it as +14155552671"),
                    );
                }
            };
            let history = match consent::history(&state.db, &state.key, &e164).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(error = %e, "reading a number's consent for an export");
                    return database_down();
                }
            };
            let mut csv = consent::export::header();
            csv.extend(consent::export::rows(&history, Some(&e164)));
            tracing::info!(
                user_id = user.id,
                entries = history.len(),
                "consent export of one number"
            );
            (
                Body::from(csv),
                format!("smsdesk-consent-number-{name_time}.csv"),
            )
        }
        None => {
            let filter = match range_filter(&params) {
                Ok(f) => f,
                Err(why) => return refuse(StatusCode::BAD_REQUEST, &why),
            };
            tracing::info!(user_id = user.id, "consent export of a range");
            let start = (state, filter, None::<i64>, false, false);
            let stream = futures::stream::unfold(
                start,
                |(state, filter, before, header_sent, done)| async move {
                    if done {
                        return None;
                    }
                    let mut chunk = if header_sent {
                        Vec::new()
                    } else {
                        consent::export::header()
                    };
                    match consent::entries(&state.db, &state.key, &filter, before, BATCH).await {
                        Ok(batch) => {
                            chunk.extend(consent::export::rows(&batch, None));
                            let next = batch.last().map(|e| e.id);
                            let finished = batch.len() < BATCH as usize;
                            Some((
                                Ok::<_, std::io::Error>(Bytes::from(chunk)),
                                (state, filter, next, true, finished),
                            ))
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "the consent export failed on the database");
                            Some((
                                Err(std::io::Error::other(
                                    "the database failed during the export",
                                )),
                                (state, filter, before, true, true),
                            ))
                        }
                    }
                },
            );
            (
                Body::from_stream(stream),
                format!("smsdesk-consent-{name_time}.csv"),
            )
        }
    };
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

#[derive(Debug, Deserialize)]
pub struct ChartParams {
    days: Option<u32>,
}

/// `GET /consent/opt-outs.svg`.
pub async fn chart(
    State(state): State<ConsentState>,
    session: Session,
    params: Result<Query<ChartParams>, QueryRejection>,
) -> Response {
    if let Err(refused) = user_with(
        &state.db,
        &session,
        Permission::ViewConsent,
        "read the consent ledger",
    )
    .await
    {
        return refused;
    }
    let days = params
        .ok()
        .and_then(|Query(p)| p.days)
        .unwrap_or(30)
        .clamp(7, 366);
    let counts = match consent::per_day(&state.db, now_micros(), days).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "reading the consent counts for the chart");
            return database_down();
        }
    };
    match draw(&counts) {
        Ok(svg) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            svg,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "drawing the consent chart");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the chart could not be drawn",
            )
        }
    }
}

/// Opt-outs as bars, opt-ins as a line, one slot per day, scaled to the busiest day.
pub fn draw(counts: &[DayCount]) -> Result<String, String> {
    draw_svg(counts).map_err(|e| e.to_string())
}

fn draw_svg(counts: &[DayCount]) -> Result<String, Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    const SLOT: i32 = 10;
    let width = i32::try_from(counts.len()).unwrap_or(i32::MAX / SLOT) * SLOT;
    let top = counts
        .iter()
        .map(|d| d.opt_outs.max(d.opt_ins))
        .max()
        .unwrap_or(0)
        .max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 180)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .build_cartesian_2d(0..width, 0..top)?;
        chart.draw_series(counts.iter().zip(0..).map(|(d, i)| {
            Rectangle::new(
                [(i * SLOT + 1, 0), (i * SLOT + SLOT - 1, d.opt_outs)],
                RGBColor(185, 28, 28).filled(),
            )
        }))?;
        chart.draw_series(LineSeries::new(
            counts
                .iter()
                .zip(0..)
                .map(|(d, i)| (i * SLOT + SLOT / 2, d.opt_ins)),
            RGBColor(29, 78, 216).stroke_width(2),
        ))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(0, 0), (width, 0)],
            BLACK.stroke_width(1),
        )))?;
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_a_bar_per_day_with_opt_outs() {
        let counts = [
            DayCount {
                day: 0,
                opt_outs: 3,
                opt_ins: 0,
            },
            DayCount {
                day: DAY,
                opt_outs: 0,
                opt_ins: 1,
            },
            DayCount {
                day: 2 * DAY,
                opt_outs: 1,
                opt_ins: 2,
            },
        ];
        let svg = draw(&counts).expect("drawn");
        assert!(svg.starts_with("<svg"), "{svg}");
        // The background and a bar per day (flat on a day without opt-outs), and the line of
        // opt-ins.
        assert_eq!(svg.matches("<rect").count(), 1 + counts.len(), "{svg}");
        assert!(svg.contains("<polyline"), "{svg}");
    }

    #[test]
    fn the_export_range_is_read_from_days_and_checked() {
        let p = ExportParams {
            from: Some("2025-06-01".into()),
            to: Some("2025-06-30".into()),
            action: Some("opt_out".into()),
            source: Some("inbound".into()),
            ..Default::default()
        };
        let f = range_filter(&p).expect("valid");
        assert_eq!(f.from, Some(1_748_736_000_000_000));
        assert_eq!(
            f.until,
            Some(1_751_241_600_000_000 + DAY),
            "the last day is included"
        );
        assert_eq!(f.action, Some(Action::OptOut));
        assert_eq!(f.source, Some("inbound"));
        let bad = |p: ExportParams| range_filter(&p).unwrap_err();
        assert!(
            bad(ExportParams {
                from: Some("30/06/2025".into()),
                ..Default::default()
            })
            .starts_with("from:")
        );
        assert!(
            bad(ExportParams {
                action: Some("maybe".into()),
                ..Default::default()
            })
            .starts_with("action:")
        );
        assert!(
            bad(ExportParams {
                source: Some("api".into()),
                ..Default::default()
            })
            .starts_with("source:")
        );
        assert!(
            bad(ExportParams {
                from: Some("2025-07-01".into()),
                to: Some("2025-06-01".into()),
                ..Default::default()
            })
            .contains("ends before")
        );
    }
}
