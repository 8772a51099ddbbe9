//! `POST /webhooks/twilio/status`: Twilio's (or the simulator's) status callbacks. The
//! `X-Twilio-Signature` is checked against `SMSDESK_PUBLIC_URL` + path + query over every
//! parameter received; a forged or unsigned callback gets 403 and a log line without secrets.
//! A valid one is recorded (forward only, one event per sid and status) and answered 204.
//! The signature covers every pair as sent; the fields smsdesk uses are then read into a struct
//! from the same body.

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use backend::db::now_micros;
use backend::worker::{self, Callback, CallbackOutcome};
use domain::money::Money;
use domain::status::MessageStatus;
use serde::Deserialize;

use crate::sending::Sending;

/// The parameters of a status callback smsdesk reads; Twilio sends more, all accepted. `Sms…` are
/// the older names Twilio still sends next to `Message…`. Code and price stay text: one that does
/// not parse is left out rather than failing the callback.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StatusParams {
    message_sid: Option<String>,
    sms_sid: Option<String>,
    message_status: Option<String>,
    sms_status: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    price: Option<String>,
}

pub async fn status(
    State(sending): State<Sending>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let params: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "status callback: the body is not a form");
            return StatusCode::BAD_REQUEST;
        }
    };
    let Some(token) = &sending.webhook_token else {
        tracing::warn!("status callback refused: no TWILIO_AUTH_TOKEN to verify it with");
        return StatusCode::FORBIDDEN;
    };
    let url = match uri.query() {
        Some(q) => format!("{}{}?{q}", sending.public_base, uri.path()),
        None => format!("{}{}", sending.public_base, uri.path()),
    };
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Err(e) = domain::signature::validate_form(token, &url, &params, signature) {
        tracing::warn!(reason = %e, url, "status callback refused: bad X-Twilio-Signature");
        return StatusCode::FORBIDDEN;
    }
    let fields: StatusParams = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(e) => {
            // A parameter smsdesk reads given twice.
            tracing::warn!(error = %e, "status callback with ambiguous parameters");
            return StatusCode::BAD_REQUEST;
        }
    };
    let Some(sid) = fields.message_sid.as_deref().or(fields.sms_sid.as_deref()) else {
        tracing::warn!("status callback without MessageSid");
        return StatusCode::BAD_REQUEST;
    };
    let status_text = fields
        .message_status
        .as_deref()
        .or(fields.sms_status.as_deref())
        .unwrap_or("");
    let Ok(status) = status_text.parse::<MessageStatus>() else {
        tracing::warn!(
            sid,
            status = status_text,
            "status callback with an unknown status"
        );
        return StatusCode::BAD_REQUEST;
    };
    let callback = Callback {
        sid: sid.to_owned(),
        status,
        error_code: fields.error_code.as_deref().and_then(|c| c.parse().ok()),
        error_message: fields.error_message,
        price_micros: fields
            .price
            .as_deref()
            .and_then(|p| Money::from_twilio_price(p).ok())
            .map(Money::micros),
    };
    let recorded =
        worker::record_callback(&sending.db, &sending.key, &callback, now_micros()).await;
    let result = match &recorded {
        Ok(CallbackOutcome::UnknownSid) => "unknown_sid",
        Ok(CallbackOutcome::Duplicate) => "duplicate",
        Ok(CallbackOutcome::Recorded { .. }) => "recorded",
        Err(_) => "error",
    };
    backend::telemetry::callback(status.as_str(), result);
    match recorded {
        Ok(CallbackOutcome::UnknownSid) => {
            tracing::info!(sid, "status callback for a message smsdesk does not know");
            StatusCode::NO_CONTENT
        }
        Ok(_) => StatusCode::NO_CONTENT,
        Err(e) => {
            tracing::error!(error = %e, sid, "status callback not recorded");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}
