//! A Twilio-compatible endpoint, so that a service written against Twilio's helper libraries
//! sends through smsdesk (with all of smsdesk's checks) by changing only the base URL:
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with Twilio's form parameters, and
//! `GET .../Messages/{Sid}.json`. Basic auth with an smsdesk API key (`SK…` and its secret);
//! answers are Twilio's Message JSON and Twilio's error body and codes.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use backend::api_keys::ApiKey;
use backend::db::now_micros;
use backend::intake::{Content, Submission};
use backend::outbox::{self, MessageView, Source};
use chrono::DateTime;
use serde_json::{Value, json};

use crate::api;
use crate::sending::Sending;

fn twilio_error(status: StatusCode, code: u32, message: impl Into<String>) -> Response {
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
        "price": m.price_micros.map(|p| format!("-{}", domain::money::Money::from_micros(p).to_string().trim_start_matches('$'))),
        "price_unit": "USD",
        "sid": m.sid,
        "status": m.status.as_str(),
        "subresource_uris": { "media": format!("/2010-04-01/Accounts/{account_sid}/Messages/{}/Media.json", m.sid) },
        "to": m.to,
        "uri": uri,
    })
}

fn unavailable() -> Response {
    twilio_error(
        StatusCode::SERVICE_UNAVAILABLE,
        20500,
        "smsdesk cannot reach its database right now; nothing was sent: try again shortly",
    )
}

/// The caller's API key, or Twilio's answer: 401 / 20003 for credentials, 503 / 20500 when the
/// database cannot say (an outage is not a wrong password), 404 / 20404 for another account.
async fn check(
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
