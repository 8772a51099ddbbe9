//! What SMS cost, for finance: per day and category, per template, per country, the month so
//! far against its budget, and the estimate against what Twilio reported. Every figure comes
//! from the daily totals (`totals`), so a chart over a million messages reads a few thousand
//! rows; canceled messages cost nothing and are left out.
//!
//! The charts are SVG drawn here with plotters, without text (the figures are in the page's
//! tables beside them): the page puts them in its HTML.

use serde::{Deserialize, Serialize};

use crate::db::{Db, DbError};
use crate::on_db;

const DAY: i64 = 86_400_000_000;

/// Messages and money of a group, µ$.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    pub messages: i64,
    pub segments: i64,
    /// Estimated at intake (what budgets count).
    pub estimated_micros: i64,
    /// What Twilio reported so far.
    pub actual_micros: i64,
}

impl Figures {
    /// Adds another group's figures to these.
    pub fn add(&mut self, other: &Figures) {
        self.messages += other.messages;
        self.segments += other.segments;
        self.estimated_micros += other.estimated_micros;
        self.actual_micros += other.actual_micros;
    }
}

/// What the figures are grouped by besides the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Category,
    Template,
    Country,
}

impl Group {
    fn column(self) -> &'static str {
        match self {
            Group::Category => "category",
            Group::Template => "template_key",
            Group::Country => "region",
        }
    }
}

/// One row of a report: a day (its first µs) or 0, a group's value ('' for none), its figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub day: i64,
    pub key: String,
    pub figures: Figures,
}

/// Figures from `from_day` to before `until_day` (µs, whole UTC days), per day and `group`
/// when `per_day`, else per `group` (largest estimate first). One statement over the totals and
/// the changes not yet folded.
pub async fn report(
    db: &Db,
    group: Group,
    per_day: bool,
    from_day: i64,
    until_day: i64,
) -> Result<Vec<Row>, DbError> {
    let column = group.column();
    let part = |table: &str| {
        format!(
            "SELECT day, {column} AS key, messages, segments, estimated_micros, price_micros
               FROM {table} WHERE day >= $1 AND day < $2 AND status <> 'canceled'"
        )
    };
    let (day, order) = if per_day {
        ("day", "day, key")
    } else {
        ("CAST(0 AS BIGINT)", "SUM(estimated_micros) DESC, key")
    };
    let sql = format!(
        "SELECT {day} AS d, key, CAST(SUM(messages) AS BIGINT), CAST(SUM(segments) AS BIGINT),
                CAST(SUM(estimated_micros) AS BIGINT), CAST(SUM(price_micros) AS BIGINT)
           FROM ({} UNION ALL {}) AS t
          GROUP BY d, key HAVING SUM(messages) <> 0 ORDER BY {order}",
        part("message_totals"),
        part("message_total_changes")
    );
    let rows: Vec<(i64, String, i64, i64, i64, i64)> = on_db!(db, |pool| sqlx::query_as(&sql)
        .bind(from_day)
        .bind(until_day)
        .fetch_all(pool)
        .await?);
    Ok(rows
        .into_iter()
        .map(
            |(day, key, messages, segments, estimated_micros, actual_micros)| Row {
                day,
                key,
                figures: Figures {
                    messages,
                    segments,
                    estimated_micros,
                    actual_micros,
                },
            },
        )
        .collect())
}

/// A day's estimate against what Twilio reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciled {
    pub day: i64,
    pub figures: Figures,
    /// Reported minus estimated, µ$.
    pub drift_micros: i64,
    /// The day ended more than a day ago (Twilio has had time to report every price) and the
    /// drift is more than the threshold's share of the estimate.
    pub flagged: bool,
}

/// Share of a day's estimate the reported total may differ by before the day is flagged.
pub const DRIFT_PERCENT: i64 = 5;

/// Per day: estimated against reported, drift above [`DRIFT_PERCENT`] flagged once the day has
/// had 24 hours for Twilio's prices to come in.
pub fn reconcile(per_day: &[Row], now: i64) -> Vec<Reconciled> {
    let mut days: Vec<(i64, Figures)> = Vec::new();
    for row in per_day {
        match days.last_mut() {
            Some((day, figures)) if *day == row.day => figures.add(&row.figures),
            _ => days.push((row.day, row.figures)),
        }
    }
    days.into_iter()
        .map(|(day, figures)| {
            let drift_micros = figures.actual_micros - figures.estimated_micros;
            let settled = day + 2 * DAY <= now;
            let flagged = settled
                && i128::from(drift_micros).abs() * 100
                    > i128::from(DRIFT_PERCENT) * i128::from(figures.estimated_micros.abs());
            Reconciled {
                day,
                figures,
                drift_micros,
                flagged,
            }
        })
        .collect()
}

/// A message Twilio took more than 24 hours ago without reporting its price yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unpriced {
    pub sid: String,
    pub created_at: i64,
    pub status: String,
    pub region: String,
    pub estimated_micros: Option<i64>,
}

/// Up to `limit` messages handed to Twilio from `from` to 24 hours before `now` that have no
/// reported price, latest first (the partial index `messages_unpriced` holds exactly these).
pub async fn unpriced(db: &Db, from: i64, now: i64, limit: i64) -> Result<Vec<Unpriced>, DbError> {
    let rows: Vec<(String, i64, String, String, Option<i64>)> = on_db!(db, |pool| sqlx::query_as(
        "SELECT sid, created_at, status, to_region, estimated_micros FROM messages
          WHERE price_micros IS NULL AND provider_sid IS NOT NULL
            AND dispatched_at >= $1 AND dispatched_at < $2
          ORDER BY dispatched_at DESC LIMIT $3"
    )
    .bind(from)
    .bind(now - DAY)
    .bind(limit)
    .fetch_all(pool)
    .await?);
    Ok(rows
        .into_iter()
        .map(
            |(sid, created_at, status, region, estimated_micros)| Unpriced {
                sid,
                created_at,
                status,
                region,
                estimated_micros,
            },
        )
        .collect())
}

/// The colour a category's bars are drawn in, as CSS; the page's legend uses the same.
pub fn category_colour(category: &str) -> (u8, u8, u8) {
    match category {
        "emergency" => (185, 28, 28),
        "shipment" => (29, 78, 216),
        "two_factor" => (124, 58, 237),
        "driver" => (4, 120, 87),
        _ => (107, 114, 128),
    }
}

/// The categories in the order bars are stacked (bottom first).
pub const STACK: [&str; 5] = ["emergency", "shipment", "driver", "two_factor", ""];

/// Estimated spend per day stacked by category (one slot per day from `from_day`, `days` of
/// them), with a dashed line at `budget` (a daily budget, µ$) when there is one.
pub fn draw_per_day(
    rows: &[Row],
    from_day: i64,
    days: usize,
    budget: Option<i64>,
) -> Result<String, String> {
    let mut stacks = vec![[0i64; STACK.len()]; days];
    for row in rows {
        let slot = usize::try_from((row.day - from_day) / DAY).ok();
        let layer = STACK
            .iter()
            .position(|c| *c == row.key)
            .unwrap_or(STACK.len() - 1);
        if let Some(stack) = slot.and_then(|s| stacks.get_mut(s)) {
            stack[layer] += row.figures.estimated_micros.max(0);
        }
    }
    let top = stacks
        .iter()
        .map(|s| s.iter().sum::<i64>())
        .chain(budget)
        .max()
        .unwrap_or(0)
        .max(1);
    draw(|root| {
        use plotters::prelude::*;
        let slot = 10i64;
        let width = i64::try_from(days).unwrap_or(1).max(1) * slot;
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .build_cartesian_2d(0..width, 0..top + top / 20)?;
        for (i, stack) in (0i64..).zip(&stacks) {
            let mut base = 0;
            for (layer, micros) in stack.iter().enumerate() {
                if *micros == 0 {
                    continue;
                }
                let (r, g, b) = category_colour(STACK[layer]);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(i * slot + 1, base), (i * slot + slot - 1, base + micros)],
                    RGBColor(r, g, b).filled(),
                )))?;
                base += micros;
            }
        }
        if let Some(budget) = budget {
            chart.draw_series(DashedLineSeries::new(
                [(0, budget), (width, budget)],
                6,
                4,
                RGBColor(17, 24, 39).stroke_width(2),
            ))?;
        }
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(0, 0), (width, 0)],
            BLACK.stroke_width(1),
        )))?;
        Ok(())
    })
}

/// Horizontal bars, one per row (at most 12, largest first), scaled to the largest.
pub fn draw_bars(rows: &[Row]) -> Result<String, String> {
    let rows: Vec<i64> = rows
        .iter()
        .take(12)
        .map(|r| r.figures.estimated_micros.max(0))
        .collect();
    let top = rows.iter().copied().max().unwrap_or(0).max(1);
    let count = i64::try_from(rows.len()).unwrap_or(0).max(1);
    draw(|root| {
        use plotters::prelude::*;
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .build_cartesian_2d(0..top, 0..count * 10)?;
        chart.draw_series(rows.iter().zip(0i64..).map(|(micros, i)| {
            let y = (count - 1 - i) * 10;
            Rectangle::new(
                [(0, y + 2), (*micros, y + 8)],
                RGBColor(29, 78, 216).filled(),
            )
        }))?;
        Ok(())
    })
}

/// The month so far: cumulative estimated spend per day (a line over `days_in_month` slots)
/// against the monthly budget (a dashed line) when there is one.
pub fn draw_month(
    cumulative: &[i64],
    days_in_month: usize,
    budget: Option<i64>,
) -> Result<String, String> {
    let top = cumulative
        .iter()
        .copied()
        .chain(budget)
        .max()
        .unwrap_or(0)
        .max(1);
    let slots = i64::try_from(days_in_month).unwrap_or(31).max(1);
    draw(|root| {
        use plotters::prelude::*;
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .build_cartesian_2d(0..slots, 0..top + top / 20)?;
        chart.draw_series(LineSeries::new(
            std::iter::once((0, 0)).chain((1i64..).zip(cumulative.iter().copied())),
            RGBColor(29, 78, 216).stroke_width(3),
        ))?;
        if let Some(budget) = budget {
            chart.draw_series(DashedLineSeries::new(
                [(0, budget), (slots, budget)],
                6,
                4,
                RGBColor(185, 28, 28).stroke_width(2),
            ))?;
        }
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(0, 0), (slots, 0)],
            BLACK.stroke_width(1),
        )))?;
        Ok(())
    })
}

type Area<'a> =
    plotters::drawing::DrawingArea<plotters::backend::SVGBackend<'a>, plotters::coord::Shift>;

/// Draws on a white 720 × 200 SVG.
fn draw(
    paint: impl FnOnce(&Area<'_>) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<String, String> {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 200)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        paint(&root).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(day: i64, key: &str, estimated: i64, actual: i64) -> Row {
        Row {
            day,
            key: key.to_owned(),
            figures: Figures {
                messages: 1,
                segments: 1,
                estimated_micros: estimated,
                actual_micros: actual,
            },
        }
    }

    /// Every element closes and the document is one `<svg>`.
    fn parses(svg: &str) -> usize {
        let mut reader = quick_xml::Reader::from_str(svg);
        let mut elements = 0;
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(quick_xml::events::Event::Start(_) | quick_xml::events::Event::Empty(_)) => {
                    elements += 1;
                }
                Ok(_) => {}
                Err(e) => panic!("not well-formed SVG: {e}\n{svg}"),
            }
        }
        assert!(svg.trim_start().starts_with("<svg"), "{svg}");
        elements
    }

    #[test]
    fn the_per_day_chart_stacks_categories_and_draws_the_budget() {
        let rows = [
            row(0, "shipment", 500, 0),
            row(0, "emergency", 200, 0),
            row(2 * DAY, "", 100, 0),
        ];
        let svg = draw_per_day(&rows, 0, 3, Some(600)).expect("drawn");
        parses(&svg);
        // The background and three bars (day 1 has none).
        assert_eq!(svg.matches("<rect").count(), 4, "{svg}");
        assert!(
            svg.contains("<polyline"),
            "the budget line and the axis: {svg}"
        );
        let (r, g, b) = category_colour("emergency");
        assert!(svg.contains(&format!("#{r:02X}{g:02X}{b:02X}")), "{svg}");
    }

    #[test]
    fn charts_render_without_data() {
        assert!(parses(&draw_per_day(&[], 0, 30, None).expect("drawn")) >= 2);
        assert!(parses(&draw_bars(&[]).expect("drawn")) >= 2);
        assert!(parses(&draw_month(&[], 31, None).expect("drawn")) >= 2);
    }

    #[test]
    fn the_month_chart_has_the_spend_line_and_the_budget_line() {
        let svg = draw_month(&[100, 250, 400], 30, Some(1_000)).expect("drawn");
        parses(&svg);
        assert!(svg.matches("<polyline").count() >= 2, "{svg}");
        let bars = draw_bars(&[row(0, "a", 10, 0), row(0, "b", 5, 0)]).expect("drawn");
        parses(&bars);
        assert_eq!(bars.matches("<rect").count(), 3, "{bars}");
    }

    #[test]
    fn drift_is_flagged_only_on_settled_days_beyond_the_threshold() {
        let rows = [
            row(0, "shipment", 1_000, 1_040),
            row(0, "driver", 1_000, 1_000),
            row(DAY, "", 1_000, 1_100),
            row(5 * DAY, "", 1_000, 0),
        ];
        let days = reconcile(&rows, 6 * DAY);
        assert_eq!(days.len(), 3);
        assert_eq!(days[0].figures.estimated_micros, 2_000);
        assert_eq!(days[0].drift_micros, 40);
        assert!(!days[0].flagged, "2 % is within the threshold");
        assert!(days[1].flagged, "10 % on a settled day");
        assert!(!days[2].flagged, "yesterday's prices may still come in");
    }
}

/// The first µs of a UTC day written `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Result<i64, String> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_micros())
        .ok_or_else(|| format!("{text:?} is not a date: write it as 2026-12-01"))
}

/// A UTC day as `YYYY-MM-DD`.
pub fn format_day(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Most days one report covers.
pub const MAX_DAYS: i64 = 366;

/// The days a report covers, from the page's `from` and `to` (both `YYYY-MM-DD`, inclusive):
/// the 30 days to today when not given. Answers (first day, day after the last), in µs.
pub fn range(from: Option<&str>, to: Option<&str>, now: i64) -> Result<(i64, i64), String> {
    fn given(t: Option<&str>) -> Option<&str> {
        t.map(str::trim).filter(|t| !t.is_empty())
    }
    let until = match given(to) {
        Some(t) => parse_day(t)? + DAY,
        None => now.div_euclid(DAY) * DAY + DAY,
    };
    let from = match given(from) {
        Some(f) => parse_day(f)?,
        None => until - 30 * DAY,
    };
    if from >= until {
        return Err("the first day is after the last: swap them".to_owned());
    }
    if until - from > MAX_DAYS * DAY {
        return Err(format!("at most {MAX_DAYS} days at once: narrow the range"));
    }
    Ok((from, until))
}

#[cfg(test)]
mod range_tests {
    use super::*;

    #[test]
    fn a_range_defaults_to_thirty_days_to_today_and_is_checked() {
        let now = parse_day("2026-12-01").expect("date") + 3_600_000_000;
        let (from, until) = range(None, None, now).expect("default");
        assert_eq!(
            (format_day(from), format_day(until)),
            ("2026-11-02".into(), "2026-12-02".into())
        );
        let (from, until) = range(Some("2026-11-01"), Some("2026-11-30"), now).expect("given");
        assert_eq!((until - from) / DAY, 30);
        assert!(range(Some("2026-12-05"), Some("2026-12-01"), now).is_err());
        assert!(
            range(Some("2024-01-01"), Some("2026-12-01"), now)
                .unwrap_err()
                .contains("366")
        );
        assert!(
            range(Some("yesterday"), None, now)
                .unwrap_err()
                .contains("2026-12-01")
        );
    }
}
