//! A Twilio-compatible endpoint, so that a service written against Twilio's helper libraries
//! sends through smsdesk (with all of smsdesk's checks) by changing only the base URL:
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with Twilio's form parameters, and
//! `GET .../Messages/{Sid}.json`, and the list `GET .../Messages.json` with Twilio's filters and
//! paging. Basic auth with an smsdesk API key (`SK…` and its secret);
//! answers are Twilio's Message JSON and Twilio's error body and codes.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use backend::api_keys::ApiKey;
use backend::db::now_micros;
use backend::delivery::{self, Cursor};
use backend::intake::{Content, Submission};
use backend::outbox::{self, MessageView, Source};
use chrono::DateTime;
use serde_json::{Value, json};

use crate::api;
use crate::sending::Sending;

pub(crate) fn twilio_error(status: StatusCode, code: u32, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({
            "code": code,
            "message": message.into(),
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        })),
    )
        .into_response()
}

fn rfc2822(micros: Option<i64>) -> Value {
    micros
        .and_then(DateTime::from_timestamp_micros)
        .map_or(Value::Null, |d| Value::String(d.to_rfc2822()))
}

fn message_json(account_sid: &str, m: &MessageView, from: &str) -> Value {
    let uri = format!("/2010-04-01/Accounts/{account_sid}/Messages/{}.json", m.sid);
    json!({
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        // Two-factor codes are never shown again: an empty body, as Twilio shows a redacted one.
        "body": m.body.as_deref().unwrap_or_default(),
        "date_created": rfc2822(Some(m.created_at)),
        "date_sent": rfc2822(m.dispatched_at),
        "date_updated": rfc2822(Some(m.updated_at)),
        "direction": "outbound-api",
        "error_code": m.error_code,
        "error_message": m.error_message,
        "from": m.sender.clone().unwrap_or_else(|| from.to_owned()),
        "messaging_service_sid": null,
        "num_media": "0",
        "num_segments": m.segments.to_string(),
        "price": m.price_micros.map(|p| domain::money::Money::from_micros(p).to_twilio_price()),
        "price_unit": "USD",
        "sid": m.sid,
        "status": m.status.as_str(),
        "subresource_uris": { "media": format!("/2010-04-01/Accounts/{account_sid}/Messages/{}/Media.json", m.sid) },
        "to": m.to,
        "uri": uri,
    })
}

pub(crate) fn unavailable() -> Response {
    twilio_error(
        StatusCode::SERVICE_UNAVAILABLE,
        20500,
        "smsdesk cannot reach its database right now; nothing was sent: try again shortly",
    )
}

/// The caller's API key, or Twilio's answer: 401 / 20003 for credentials, 503 / 20500 when the
/// database cannot say (an outage is not a wrong password), 404 / 20404 for another account.
pub(crate) async fn check(
    sending: &Sending,
    headers: &HeaderMap,
    account_sid: &str,
) -> Result<ApiKey, Response> {
    let key = match api::authenticate(sending, headers).await {
        Ok(key) => key,
        Err(e) if e.status() == StatusCode::SERVICE_UNAVAILABLE => return Err(unavailable()),
        Err(_) => {
            return Err(twilio_error(
                StatusCode::UNAUTHORIZED,
                20003,
                "Authenticate: use an smsdesk API key id (SK...) as the username and its secret as the password",
            ));
        }
    };
    if account_sid != sending.installation.account_sid {
        return Err(twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            format!(
                "The requested resource /2010-04-01/Accounts/{account_sid} was not found: this smsdesk's account sid is {}",
                sending.installation.account_sid
            ),
        ));
    }
    Ok(key)
}

fn default_from(sending: &Sending) -> String {
    match &sending.default_sender {
        backend::twilio::Sender::From(f) | backend::twilio::Sender::MessagingService(f) => {
            f.clone()
        }
    }
}

/// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`.
pub async fn create(
    State(sending): State<Sending>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let account_sid = account.trim_end_matches(".json").to_owned();
    let key = match check(&sending, &headers, &account_sid).await {
        Ok(key) => key,
        Err(denied) => return denied,
    };
    let Ok(form) = serde_urlencoded::from_bytes::<CreateForm>(&body) else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            20001,
            "The request body is not a form of Twilio's Messages parameters",
        );
    };
    let Some(to) = form.to else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.",
        );
    };
    let Some(text) = form.body.filter(|b| !b.is_empty()) else {
        return twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    };
    let default = default_from(&sending);
    let sender = form.from.filter(|f| *f != default);
    let validity_seconds = match form.validity_period.as_deref().map(str::parse::<u32>) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                21626,
                "ValidityPeriod must be a whole number of seconds between 1 and 36000",
            );
        }
    };
    let submission = Submission {
        to,
        content: Content::Body(text),
        category: None,
        sender,
        validity_seconds,
    };
    let settings = match sending.settings().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "Twilio-compatible create: settings unreadable");
            return unavailable();
        }
    };
    let source = Source::ApiKey(key.id);
    let outcome = sending
        .intake
        .submit(&settings, &source, vec![submission], now_micros())
        .await;
    match outcome.map(|mut results| results.pop()) {
        Ok(Some(Ok(view))) => (
            StatusCode::CREATED,
            Json(message_json(&account_sid, &view, &default)),
        )
            .into_response(),
        Ok(Some(Err(r))) => twilio_error(
            StatusCode::BAD_REQUEST,
            r.twilio_code.unwrap_or(21211),
            r.message,
        ),
        Ok(None) => unreachable!("one submission gives one result"),
        Err(e) => {
            tracing::error!(error = %e, "Twilio-compatible create failed on the database");
            unavailable()
        }
    }
}

/// The form parameters of Twilio's Messages create that smsdesk reads; others (`StatusCallback`,
/// `MediaUrl`, ...) are accepted and ignored, as Twilio's libraries send what their caller gives.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateForm {
    to: Option<String>,
    from: Option<String>,
    body: Option<String>,
    validity_period: Option<String>,
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`.
pub async fn fetch(
    State(sending): State<Sending>,
    Path((account_sid, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = check(&sending, &headers, &account_sid).await {
        return denied;
    }
    let sid = file.trim_end_matches(".json");
    match outbox::find(&sending.db, &sending.key, sid).await {
        Ok(Some(view)) => {
            Json(message_json(&account_sid, &view, &default_from(&sending))).into_response()
        }
        Ok(None) => twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            format!(
                "The requested resource /2010-04-01/Accounts/{account_sid}/Messages/{sid}.json was not found"
            ),
        ),
        Err(e) => {
            tracing::error!(error = %e, "Twilio-compatible fetch failed on the database");
            unavailable()
        }
    }
}

/// A list's query string as pairs, or Twilio's 400 / 20001.
#[allow(clippy::result_large_err)] // the error is the handler's whole answer, returned at once
pub(crate) fn query_params(query: Option<&str>) -> Result<Vec<(String, String)>, Response> {
    serde_urlencoded::from_str(query.unwrap_or("")).map_err(|_| {
        twilio_error(
            StatusCode::BAD_REQUEST,
            20001,
            "the query string is not URL-encoded",
        )
    })
}

/// The first value of a query parameter.
pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Twilio's answer to a parameter it cannot use: 400 / 20001 naming it and what to write.
pub(crate) fn invalid(name: &str, what: &str) -> Response {
    twilio_error(
        StatusCode::BAD_REQUEST,
        20001,
        format!("Invalid parameter: {name}: {what}"),
    )
}

/// `PageSize`: 1 to 1,000, 50 when none is given.
#[allow(clippy::result_large_err)] // the error is the handler's whole answer, returned at once
pub(crate) fn page_size(value: Option<&str>) -> Result<u32, Response> {
    match value.map(str::parse::<u32>) {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(Ok(n)) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(_) => Err(invalid("PageSize", "a whole number from 1 to 1000")),
    }
}

/// Largest `PageSize` Twilio takes (and smsdesk); 50 when none is given.
const MAX_PAGE_SIZE: u32 = 1_000;
const DEFAULT_PAGE_SIZE: u32 = 50;

const DAY_MICROS: i64 = 86_400_000_000;

/// A `DateSent` value: `YYYY-MM-DD` (a whole UTC day) or `YYYY-MM-DDTHH:MM:SSZ` (one second), as
/// Twilio's libraries send them: the span's first µs and the µs after its last.
fn date_sent(value: &str) -> Option<(i64, i64)> {
    if let Ok(day) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let start = day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros();
        return Some((start, start + DAY_MICROS));
    }
    let instant = DateTime::parse_from_rfc3339(value).ok()?.timestamp_micros();
    Some((instant, instant + 1_000_000))
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Messages.json`: messages newest first, with Twilio's
/// filters (`To`, `From`, `DateSent`, `DateSent<`, `DateSent>`), `PageSize` and Twilio's paging:
/// `next_page_uri` carries the filters, the page size and a page token, and is `null` on the
/// last page, so `client.messages.list(...)` and `.stream(...)` work unchanged.
pub async fn list(
    State(sending): State<Sending>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    if let Err(denied) = check(&sending, &headers, &account_sid).await {
        return denied;
    }
    let params = match query_params(query.as_deref()) {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let param = |name: &str| param(&params, name);
    let mut filter = delivery::Filter {
        default_sender: Some(default_from(&sending)),
        ..Default::default()
    };
    if let Some(to) = param("To") {
        match domain::phone::PhoneNumber::parse(to, None) {
            Ok(n) => filter.to_hash = Some(sending.key.lookup_hash(n.e164())),
            Err(_) => {
                return twilio_error(
                    StatusCode::BAD_REQUEST,
                    21211,
                    format!(
                        "Invalid 'To' Phone Number: {}",
                        domain::redact::mask_numbers(to)
                    ),
                );
            }
        }
    }
    filter.from = param("From").map(str::to_owned);
    const DATE_FORMS: &str = "use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ";
    // `DateSent` is that day; `DateSent>` on or after, `DateSent<` on or before the day or second.
    for (name, lower, upper) in [
        ("DateSent", true, true),
        ("DateSent>", true, false),
        ("DateSent<", false, true),
    ] {
        let Some(value) = param(name) else { continue };
        let Some((mut start, mut end)) = date_sent(value) else {
            return invalid(name, DATE_FORMS);
        };
        if name == "DateSent" {
            // Twilio's `DateSent` is a date: a time given with it names its UTC day.
            start -= start.rem_euclid(DAY_MICROS);
            end = start + DAY_MICROS;
        }
        if lower {
            filter.sent_from = Some(filter.sent_from.map_or(start, |f| f.max(start)));
        }
        if upper {
            filter.sent_until = Some(filter.sent_until.map_or(end, |u| u.min(end)));
        }
    }
    let page_size = match page_size(param("PageSize")) {
        Ok(n) => n,
        Err(answer) => return answer,
    };
    let page = match param("Page").map(str::parse::<u32>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return invalid("Page", "a whole number from 0"),
    };
    let mut cursor = None;
    if let Some(token) = param("PageToken") {
        match token
            .strip_prefix("PB")
            .and_then(|id| id.parse::<i64>().ok())
        {
            Some(id) => cursor = Some(Cursor::Older(id)),
            None => return invalid("PageToken", "use the next_page_uri smsdesk gave"),
        }
    } else if page > 0 {
        return invalid("Page", "follow next_page_uri (it carries a PageToken)");
    }
    let mut found =
        match delivery::list(&sending.db, &sending.key, &filter, cursor, page_size + 1).await {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "Twilio-compatible list failed on the database");
                return unavailable();
            }
        };
    let more = found.len() > page_size as usize;
    found.truncate(page_size as usize);
    let path = format!("/2010-04-01/Accounts/{account_sid}/Messages.json");
    // The filters as given, in a fixed order, then the paging.
    let filters: Vec<(&str, &str)> = ["To", "From", "DateSent", "DateSent<", "DateSent>"]
        .into_iter()
        .filter_map(|name| param(name).map(|v| (name, v)))
        .collect();
    let size = page_size.to_string();
    let uri_with = |page: u32, token: Option<String>| {
        let page = page.to_string();
        let mut pairs = filters.clone();
        pairs.push(("PageSize", &size));
        pairs.push(("Page", &page));
        if let Some(t) = &token {
            pairs.push(("PageToken", t));
        }
        format!(
            "{path}?{}",
            serde_urlencoded::to_string(&pairs).expect("pairs encode")
        )
    };
    let next_page_uri = match (more, found.last()) {
        (true, Some(last)) => Value::String(uri_with(page + 1, Some(format!("PB{}", last.id)))),
        _ => Value::Null,
    };
    let start = u64::from(page) * u64::from(page_size);
    let end = start + (found.len() as u64).saturating_sub(1);
    let from = default_from(&sending);
    let messages: Vec<Value> = found
        .iter()
        .map(|m| message_json(&account_sid, m, &from))
        .collect();
    Json(json!({
        "messages": messages,
        "first_page_uri": uri_with(0, None),
        "next_page_uri": next_page_uri,
        "previous_page_uri": Value::Null,
        "page": page,
        "page_size": page_size,
        "start": start,
        "end": end,
        "uri": match &query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        },
    }))
    .into_response()
}
