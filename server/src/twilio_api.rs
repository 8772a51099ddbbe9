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
use backend::db::now_micros;
use backend::outbox::{self, Content, MessageView, Submission};
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
        "body": m.body,
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

async fn check(sending: &Sending, headers: &HeaderMap, account_sid: &str) -> Option<Response> {
    if let Err(e) = api::authenticate(sending, headers).await {
        let _ = e;
        return Some(twilio_error(
            StatusCode::UNAUTHORIZED,
            20003,
            "Authenticate: use an smsdesk API key id (SK...) as the username and its secret as the password",
        ));
    }
    if account_sid != sending.installation.account_sid {
        return Some(twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            format!(
                "The requested resource /2010-04-01/Accounts/{account_sid} was not found: this smsdesk's account sid is {}",
                sending.installation.account_sid
            ),
        ));
    }
    None
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
    if let Some(denied) = check(&sending, &headers, &account_sid).await {
        return denied;
    }
    let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            20001,
            "The request body is not a form",
        );
    };
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let Some(to) = get("To") else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.",
        );
    };
    let Some(text) = get("Body").filter(|b| !b.is_empty()) else {
        return twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    };
    let default = default_from(&sending);
    let sender = get("From").filter(|f| *f != default);
    let validity_seconds = match get("ValidityPeriod").map(|v| v.parse::<u32>()) {
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
            return twilio_error(
                StatusCode::SERVICE_UNAVAILABLE,
                20500,
                "smsdesk cannot read its settings; nothing was sent: try again",
            );
        }
    };
    let unavailable = || {
        twilio_error(
            StatusCode::SERVICE_UNAVAILABLE,
            20500,
            "smsdesk cannot reach its database; nothing was sent: try again",
        )
    };
    let prepared = match outbox::prepare(&sending.db, &sending.key, &settings, submission).await {
        Ok(Ok(p)) => p,
        Ok(Err(r)) => {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                r.twilio_code.unwrap_or(21211),
                r.message,
            );
        }
        Err(_) => return unavailable(),
    };
    let now = now_micros();
    let written = async {
        let mut tx = sending.db.begin().await?;
        let accepted =
            outbox::insert(&mut tx, &sending.key, &[prepared], "twilio_api", now).await?;
        tx.commit().await?;
        Ok::<_, backend::db::DbError>(accepted)
    }
    .await;
    let Ok(accepted) = written else {
        return unavailable();
    };
    sending.wake.notify_one();
    let sid = &accepted[0].sid;
    match outbox::find(&sending.db, &sending.key, sid).await {
        Ok(Some(view)) => (
            StatusCode::CREATED,
            Json(message_json(&account_sid, &view, &default)),
        )
            .into_response(),
        _ => unavailable(),
    }
}

/// `GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`.
pub async fn fetch(
    State(sending): State<Sending>,
    Path((account_sid, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(denied) = check(&sending, &headers, &account_sid).await {
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
        Err(_) => twilio_error(
            StatusCode::SERVICE_UNAVAILABLE,
            20500,
            "smsdesk cannot reach its database: try again",
        ),
    }
}
