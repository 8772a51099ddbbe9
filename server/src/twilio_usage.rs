//! Twilio's Usage Records, so finance tools written for Twilio's usage (twilio-python's
//! `client.usage.records.list(...)`, `.daily.list(...)`, ...) read smsdesk's spend by changing
//! only the base URL: `GET /2010-04-01/Accounts/{AccountSid}/Usage/Records.json` and its
//! sub-resources `Daily`, `Monthly`, `Yearly`, `AllTime`, `Today`, `Yesterday`, `ThisMonth`,
//! `LastMonth`, with `Category`, `StartDate`, `EndDate` (`YYYY-MM-DD`, or `-30days` / `+2days`
//! from today), `PageSize` and `Page`.
//!
//! smsdesk knows SMS only: the categories `sms` and `sms-outbound` (the same figures: replies are
//! not priced), counted from the daily totals (`backend::totals::usage_per_day`): `count` is
//! messages handed to Twilio (or failed), `usage` their segments, `price` what Twilio reported,
//! in dollars. Any other category has no records.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use backend::db::now_micros;
use backend::totals::DayUsage;
use chrono::{DateTime, Datelike, Days, Months, NaiveDate};
use domain::money::Money;
use serde_json::{Value, json};

use crate::sending::Sending;
use crate::twilio_api::{
    check, invalid, page_size, param, query_params, twilio_error, unavailable,
};

/// Which list of records was asked for: the resource itself or one of its sub-resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// `Records.json`: one record per category over the whole span.
    Records,
    Daily,
    Monthly,
    Yearly,
    AllTime,
    Today,
    Yesterday,
    ThisMonth,
    LastMonth,
}

const SUBRESOURCES: [(Period, &str, &str); 8] = [
    (Period::AllTime, "AllTime", "all_time"),
    (Period::Today, "Today", "today"),
    (Period::Yesterday, "Yesterday", "yesterday"),
    (Period::ThisMonth, "ThisMonth", "this_month"),
    (Period::LastMonth, "LastMonth", "last_month"),
    (Period::Daily, "Daily", "daily"),
    (Period::Monthly, "Monthly", "monthly"),
    (Period::Yearly, "Yearly", "yearly"),
];

/// The categories smsdesk has records for, with Twilio's descriptions.
const CATEGORIES: [(&str, &str); 2] = [("sms", "SMS"), ("sms-outbound", "Outbound SMS")];

const DAY_MICROS: i64 = 86_400_000_000;

impl Period {
    /// The sub-resource a file name asks for (`Daily.json`).
    pub fn of_file(file: &str) -> Option<Period> {
        let name = file.strip_suffix(".json")?;
        SUBRESOURCES
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(p, _, _)| *p)
    }

    fn path(self, account_sid: &str) -> String {
        match SUBRESOURCES.iter().find(|(p, _, _)| *p == self) {
            Some((_, name, _)) => {
                format!("/2010-04-01/Accounts/{account_sid}/Usage/Records/{name}.json")
            }
            None => format!("/2010-04-01/Accounts/{account_sid}/Usage/Records.json"),
        }
    }
}

/// A `StartDate` / `EndDate`: `YYYY-MM-DD`, or days from `today` (`-30days`, `+2days`).
pub fn parse_date(value: &str, today: NaiveDate) -> Option<NaiveDate> {
    if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Some(day);
    }
    let number = value.strip_suffix("days")?;
    let (sign, digits) = match number.as_bytes().first()? {
        b'-' => (-1, &number[1..]),
        b'+' => (1, &number[1..]),
        _ => (1, number),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    if sign < 0 {
        today.checked_sub_days(Days::new(n))
    } else {
        today.checked_add_days(Days::new(n))
    }
}

fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).expect("every month has a first day")
}

/// The days a request covers, first and last included. The fixed sub-resources (`Today`,
/// `Yesterday`, `ThisMonth`, `LastMonth`) cover their own days; the others run from `start`
/// (default: the first day smsdesk wrote a message, else today) to `end` (default: today).
pub fn span(
    period: Period,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    today: NaiveDate,
    first: Option<NaiveDate>,
) -> (NaiveDate, NaiveDate) {
    let yesterday = today.pred_opt().unwrap_or(today);
    match period {
        Period::Today => (today, today),
        Period::Yesterday => (yesterday, yesterday),
        Period::ThisMonth => (month_start(today), today),
        Period::LastMonth => {
            let this = month_start(today);
            let last = this.checked_sub_months(Months::new(1)).unwrap_or(this);
            (last, this.pred_opt().unwrap_or(this))
        }
        _ => (
            start.unwrap_or_else(|| first.map_or(today, |f| f.min(today))),
            end.unwrap_or(today),
        ),
    }
}

/// How a span is cut into records: whole for most, by day, calendar month or year (the first
/// and last cut to the span). Days before `first` (nothing was sent then) are left out of a
/// cut list, so an early `StartDate` cannot ask for millions of empty days.
pub fn buckets(
    period: Period,
    (start, end): (NaiveDate, NaiveDate),
    first: Option<NaiveDate>,
) -> Vec<(NaiveDate, NaiveDate)> {
    if end < start {
        return Vec::new();
    }
    let step: fn(NaiveDate) -> Option<NaiveDate> = match period {
        Period::Daily => |d| d.succ_opt(),
        Period::Monthly => |d| month_start(d).checked_add_months(Months::new(1)),
        Period::Yearly => |d| NaiveDate::from_ymd_opt(d.year() + 1, 1, 1),
        _ => return vec![(start, end)],
    };
    let mut from = match first {
        Some(f) if f > start => match period {
            Period::Daily => f,
            Period::Monthly => month_start(f).max(start),
            _ => NaiveDate::from_ymd_opt(f.year(), 1, 1)
                .unwrap_or(f)
                .max(start),
        },
        _ => start,
    };
    let mut out = Vec::new();
    while from <= end {
        let Some(next) = step(from) else { break };
        let last = next.pred_opt().unwrap_or(next).min(end);
        out.push((from, last));
        from = next;
    }
    out
}

fn micros(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp_micros()
}

fn date(micros: i64) -> NaiveDate {
    DateTime::from_timestamp_micros(micros)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Usage/Records.json`.
pub async fn records(
    State(sending): State<Sending>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    list(sending, account_sid, Period::Records, headers, query).await
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Usage/Records/{SubResource}.json`.
pub async fn subresource(
    State(sending): State<Sending>,
    Path((account_sid, file)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(period) = Period::of_file(&file) else {
        return twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            format!(
                "The requested resource /2010-04-01/Accounts/{account_sid}/Usage/Records/{file} was not found: use Daily, Monthly, Yearly, AllTime, Today, Yesterday, ThisMonth or LastMonth"
            ),
        );
    };
    list(sending, account_sid, period, headers, query).await
}

async fn list(
    sending: Sending,
    account_sid: String,
    period: Period,
    headers: HeaderMap,
    query: Option<String>,
) -> Response {
    if let Err(denied) = check(&sending, &headers, &account_sid).await {
        return denied;
    }
    let params = match query_params(query.as_deref()) {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let param = |name: &str| param(&params, name);
    let now = now_micros();
    let today = date(now);
    let mut dates = [None, None];
    for (slot, name) in dates.iter_mut().zip(["StartDate", "EndDate"]) {
        if let Some(value) = param(name) {
            match parse_date(value, today) {
                Some(d) => *slot = Some(d),
                None => return invalid(name, "use YYYY-MM-DD or days from today such as -30days"),
            }
        }
    }
    let page_size = match page_size(param("PageSize")) {
        Ok(n) => n as usize,
        Err(answer) => return answer,
    };
    let page = match param("Page").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) if n <= 1_000_000 => n,
        Some(_) => return invalid("Page", "a whole number from 0"),
    };
    let first = match backend::totals::first_day(&sending.db).await {
        Ok(first) => first.map(date),
        Err(e) => {
            tracing::error!(error = %e, "Twilio-compatible usage failed on the database");
            return unavailable();
        }
    };
    let span = span(period, dates[0], dates[1], today, first);
    let cuts = buckets(period, span, first);
    let days: Vec<DayUsage> = match cuts.first().zip(cuts.last()) {
        Some(((from, _), (_, to))) => {
            let until = micros(*to) + DAY_MICROS;
            match backend::totals::usage_per_day(&sending.db, micros(*from), until).await {
                Ok(days) => days,
                Err(e) => {
                    tracing::error!(error = %e, "Twilio-compatible usage failed on the database");
                    return unavailable();
                }
            }
        }
        None => Vec::new(),
    };
    let categories: Vec<(&str, &str)> = match param("Category") {
        None => CATEGORIES.to_vec(),
        Some(c) => CATEGORIES
            .iter()
            .copied()
            .filter(|(n, _)| *n == c)
            .collect(),
    };
    let base = format!("/2010-04-01/Accounts/{account_sid}/Usage/Records");
    let as_of = DateTime::from_timestamp_micros(now)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let mut records = Vec::with_capacity(cuts.len() * categories.len());
    for (from, to) in &cuts {
        let (lo, hi) = (micros(*from), micros(*to) + DAY_MICROS);
        let within = days.iter().filter(|d| d.day >= lo && d.day < hi);
        let (count, usage, price) = within.fold((0i64, 0i64, 0i64), |(c, u, p), d| {
            (c + d.messages, u + d.segments, p + d.price_micros)
        });
        for (category, description) in &categories {
            let subresource_uris: serde_json::Map<String, Value> = SUBRESOURCES
                .iter()
                .map(|(_, name, key)| {
                    (
                        (*key).to_owned(),
                        Value::String(format!("{base}/{name}.json?Category={category}")),
                    )
                })
                .collect();
            records.push(json!({
                "account_sid": account_sid,
                "api_version": "2010-04-01",
                "as_of": as_of,
                "category": category,
                "count": count.to_string(),
                "count_unit": "messages",
                "description": description,
                "end_date": to.to_string(),
                "price": Money::from_micros(price).to_decimal(),
                "price_unit": "usd",
                "start_date": from.to_string(),
                "subresource_uris": subresource_uris,
                "uri": format!(
                    "{}?Category={category}&StartDate={from}&EndDate={to}",
                    period.path(&account_sid)
                ),
                "usage": usage.to_string(),
                "usage_unit": "segments",
            }));
        }
    }
    let total = records.len();
    let start = (page * page_size).min(total);
    let stop = (start + page_size).min(total);
    let more = stop < total;
    let records: Vec<Value> = records.drain(start..stop).collect();
    let path = period.path(&account_sid);
    let filters: Vec<(&str, &str)> = ["Category", "StartDate", "EndDate"]
        .into_iter()
        .filter_map(|name| param(name).map(|v| (name, v)))
        .collect();
    let size = page_size.to_string();
    let uri_with = |page: usize| {
        let page = page.to_string();
        let mut pairs = filters.clone();
        pairs.push(("PageSize", &size));
        pairs.push(("Page", &page));
        format!(
            "{path}?{}",
            serde_urlencoded::to_string(&pairs).expect("pairs encode")
        )
    };
    Json(json!({
        "usage_records": records,
        "first_page_uri": uri_with(0),
        "next_page_uri": if more { Value::String(uri_with(page + 1)) } else { Value::Null },
        "previous_page_uri": if page > 0 { Value::String(uri_with(page - 1)) } else { Value::Null },
        "page": page,
        "page_size": page_size,
        "start": start,
        "end": stop.saturating_sub(1).max(start),
        "uri": match &query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        },
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn dates_are_days_or_days_from_today() {
        let today = d("2026-12-01");
        assert_eq!(parse_date("2026-11-05", today), Some(d("2026-11-05")));
        assert_eq!(parse_date("-30days", today), Some(d("2026-11-01")));
        assert_eq!(parse_date("+2days", today), Some(d("2026-12-03")));
        assert_eq!(parse_date("0days", today), Some(today));
        for bad in ["2026-13-01", "-days", "-3weeks", "yesterday", "", "--1days"] {
            assert_eq!(parse_date(bad, today), None, "{bad:?}");
        }
    }

    #[test]
    fn fixed_subresources_cover_their_own_days() {
        let today = d("2026-03-01");
        let first = Some(d("2025-06-10"));
        assert_eq!(
            span(Period::Today, None, None, today, first),
            (today, today)
        );
        assert_eq!(
            span(Period::Yesterday, None, None, today, first),
            (d("2026-02-28"), d("2026-02-28"))
        );
        assert_eq!(
            span(Period::ThisMonth, None, None, today, first),
            (d("2026-03-01"), today)
        );
        assert_eq!(
            span(Period::LastMonth, None, None, today, first),
            (d("2026-02-01"), d("2026-02-28"))
        );
        // The rest: from the first message (or the given start) to today (or the given end).
        assert_eq!(
            span(Period::Records, None, None, today, first),
            (d("2025-06-10"), today)
        );
        assert_eq!(
            span(Period::AllTime, None, None, today, None),
            (today, today)
        );
        assert_eq!(
            span(
                Period::Daily,
                Some(d("2026-01-01")),
                Some(d("2026-01-31")),
                today,
                first
            ),
            (d("2026-01-01"), d("2026-01-31"))
        );
    }

    #[test]
    fn spans_are_cut_by_day_month_and_year_within_the_span() {
        let first = Some(d("2025-06-10"));
        assert_eq!(
            buckets(Period::Daily, (d("2026-02-27"), d("2026-03-01")), first),
            vec![
                (d("2026-02-27"), d("2026-02-27")),
                (d("2026-02-28"), d("2026-02-28")),
                (d("2026-03-01"), d("2026-03-01")),
            ]
        );
        assert_eq!(
            buckets(Period::Monthly, (d("2026-01-15"), d("2026-03-02")), first),
            vec![
                (d("2026-01-15"), d("2026-01-31")),
                (d("2026-02-01"), d("2026-02-28")),
                (d("2026-03-01"), d("2026-03-02")),
            ]
        );
        assert_eq!(
            buckets(Period::Yearly, (d("2024-01-01"), d("2026-03-02")), first),
            vec![
                (d("2025-01-01"), d("2025-12-31")),
                (d("2026-01-01"), d("2026-03-02")),
            ],
            "nothing was sent before 2025"
        );
        assert_eq!(
            buckets(Period::Daily, (d("2000-01-01"), d("2025-06-11")), first).len(),
            2,
            "days before the first message are left out"
        );
        assert_eq!(
            buckets(Period::Records, (d("2026-01-01"), d("2026-03-02")), first),
            vec![(d("2026-01-01"), d("2026-03-02"))]
        );
        assert!(buckets(Period::Daily, (d("2026-03-02"), d("2026-03-01")), first).is_empty());
    }

    #[test]
    fn subresources_are_named_as_twilio_names_them() {
        assert_eq!(Period::of_file("Daily.json"), Some(Period::Daily));
        assert_eq!(Period::of_file("LastMonth.json"), Some(Period::LastMonth));
        assert_eq!(Period::of_file("Daily"), None);
        assert_eq!(Period::of_file("Hourly.json"), None);
        assert_eq!(
            Period::Daily.path("AC1"),
            "/2010-04-01/Accounts/AC1/Usage/Records/Daily.json"
        );
        assert_eq!(
            Period::Records.path("AC1"),
            "/2010-04-01/Accounts/AC1/Usage/Records.json"
        );
    }
}
