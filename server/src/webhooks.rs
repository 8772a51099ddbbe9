//! Twilio's webhooks. `POST /webhooks/twilio/status`: status callbacks (Twilio's or the
//! simulator's). `POST /webhooks/twilio/inbound`: incoming messages (replies, STOP and START).
//! The `X-Twilio-Signature` is checked against `SMSDESK_PUBLIC_URL` + path + query over every
//! parameter received; a forged or unsigned request gets 403 and a log line without secrets.
//! A valid callback is recorded (forward only, one event per sid and status) and answered 204.
//! The signature covers every pair as sent; the fields smsdesk uses are then read into a struct
//! from the same body.

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use backend::db::now_micros;
use backend::worker::{self, Callback, CallbackOutcome};
use domain::money::Money;
use domain::sending::SendingSettings;
use domain::signature::SignedWith;
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

/// Where a webhook came from (the connection's peer, or behind a proxy the address it appended:
/// `client_address::resolve`), if known.
pub type ComingFrom = Option<axum::Extension<app::auth::ClientAddress>>;

/// The webhook's parameters when its `X-Twilio-Signature` is genuine for this server's URL and,
/// with an allow list in Settings, it came from an allowed network; otherwise the answer (400
/// for a body that is not a form, 403 for a bad signature or a sender off the list, 503 when the
/// settings cannot be read), logged without secrets. `what` names the webhook in the log.
async fn verified_params(
    sending: &Sending,
    from: &ComingFrom,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    what: &str,
) -> Result<(Vec<(String, String)>, SendingSettings), StatusCode> {
    let params = signed_params(sending, uri, headers, body, what)?;
    let settings = match sending.settings().await {
        Ok(s) => s,
        Err(e) => {
            // Twilio retries a webhook that fails: nothing is lost.
            tracing::error!(error = %e, "{what} not taken: the settings could not be read");
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    let address = from.as_ref().map(|axum::Extension(a)| a.0);
    if !backend::settings::webhook_allowed(&settings.data, address) {
        let address = address.map_or_else(|| "an unknown address".to_owned(), |a| a.to_string());
        tracing::warn!(
            "{what} refused: signed, but sent from {address}, outside the webhook allow list in Settings"
        );
        return Err(StatusCode::FORBIDDEN);
    }
    Ok((params, settings))
}

/// The webhook's parameters when its signature is genuine (see [`verified_params`]).
fn signed_params(
    sending: &Sending,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    what: &str,
) -> Result<Vec<(String, String)>, StatusCode> {
    let params: Vec<(String, String)> = match serde_urlencoded::from_bytes(body) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "{what}: the body is not a form");
            return Err(StatusCode::BAD_REQUEST);
        }
    };
    let url = match uri.query() {
        Some(q) => format!("{}{}?{q}", sending.public_base, uri.path()),
        None => format!("{}{}", sending.public_base, uri.path()),
    };
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let settings = headers
        .get("x-twilio-webhooks-signature-settings")
        .map(|v| v.to_str().unwrap_or("?"));
    let checked = match domain::signature::signed_with(settings) {
        SignedWith::AuthToken => {
            // The fallback provider's callbacks name its account and are signed with its token.
            let account = params
                .iter()
                .find(|(k, _)| k == "AccountSid")
                .map(|(_, v)| v.as_str());
            let token = match &sending.fallback_webhook {
                Some((sid, token)) if Some(sid.as_str()) == account => Some(token),
                _ => sending.webhook_token.as_ref(),
            };
            let Some(token) = token else {
                tracing::warn!("{what} refused: no TWILIO_AUTH_TOKEN to verify it with");
                return Err(StatusCode::FORBIDDEN);
            };
            domain::signature::validate_form(token, &url, &params, signature)
        }
        SignedWith::SharedKey { .. } => {
            let Some(key) = &sending.webhook_shared_key else {
                tracing::warn!(
                    "{what} refused: signed with a webhook SharedKey, and TWILIO_WEBHOOK_SHARED_KEY is not set"
                );
                return Err(StatusCode::FORBIDDEN);
            };
            domain::signature::validate_form_sha256(key, &url, &params, signature)
        }
        SignedWith::Unknown => {
            tracing::warn!("{what} refused: signed with an algorithm smsdesk does not know");
            return Err(StatusCode::FORBIDDEN);
        }
    };
    if let Err(e) = checked {
        tracing::warn!(reason = %e, url, "{what} refused: bad X-Twilio-Signature");
        return Err(StatusCode::FORBIDDEN);
    }
    Ok(params)
}

pub async fn status(
    State(sending): State<Sending>,
    from: ComingFrom,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let params =
        match verified_params(&sending, &from, &uri, &headers, &body, "status callback").await {
            Ok((params, _)) => params,
            Err(refused) => return refused,
        };
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
    // The fallback's token speaks only for what the fallback carried.
    let by_fallback = matches!(
        (&sending.fallback_webhook, params.iter().find(|(k, _)| k == "AccountSid")),
        (Some((fallback, _)), Some((_, account))) if fallback == account
    );
    if by_fallback {
        match backend::outbox::carrier_of(&sending.db, sid).await {
            Ok(Some(carrier)) if carrier.as_deref() != Some("fallback") => {
                tracing::warn!(
                    sid,
                    "status callback refused: signed for the fallback provider's account, about a message the primary carried"
                );
                return StatusCode::FORBIDDEN;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "status callback not taken: the database could not say who carried the message");
                return StatusCode::SERVICE_UNAVAILABLE;
            }
        }
    }
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

/// The parameters of an incoming message smsdesk reads; Twilio sends more, all accepted.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InboundParams {
    message_sid: Option<String>,
    sms_sid: Option<String>,
    from: Option<String>,
    to: Option<String>,
    body: Option<String>,
    /// Present when Twilio's Advanced Opt-Out already handled (and answered) a keyword.
    opt_out_type: Option<String>,
}

/// `POST /webhooks/twilio/inbound`: Twilio's incoming-message webhook. Signed like the status
/// callback (403 otherwise, nothing recorded). The message is stored once per MessageSid; an
/// opt-out or opt-in keyword (Twilio's rule, `domain::keywords`) changes the number's consent
/// with the message as evidence. Answered with TwiML: Twilio's default reply to a keyword, or an
/// empty `<Response/>` (for other messages, and when `OptOutType` says Twilio replied already).
pub async fn inbound(
    State(sending): State<Sending>,
    from: ComingFrom,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let settings =
        match verified_params(&sending, &from, &uri, &headers, &body, "incoming message").await {
            Ok((_, settings)) => settings,
            Err(refused) => return refused.into_response(),
        };
    let fields: InboundParams = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "incoming message with ambiguous parameters");
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    let (Some(sid), Some(from)) = (
        fields.message_sid.as_deref().or(fields.sms_sid.as_deref()),
        fields
            .from
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty()),
    ) else {
        tracing::warn!("incoming message without MessageSid or From");
        return StatusCode::BAD_REQUEST.into_response();
    };
    let text = fields.body.as_deref().unwrap_or("");
    let keyword = domain::keywords::classify(text).keyword();
    // Twilio sends numbers in E.164; a short code or a sender id is kept as given.
    let parsed = domain::phone::PhoneNumber::parse(from, None).ok();
    let from = parsed.as_ref().map_or(from, |p| p.e164());
    let masked = parsed.as_ref().map_or_else(
        || domain::redact::mask_numbers(from),
        domain::phone::PhoneNumber::masked,
    );
    let message = backend::consent::Inbound {
        sid,
        from,
        to: fields.to.as_deref().unwrap_or(""),
        body: text,
        keyword,
    };
    let received =
        backend::consent::receive(&sending.db, &sending.key, &message, &masked, now_micros()).await;
    match received {
        Ok(outcome) => {
            tracing::info!(sid, keyword = ?keyword, replay = matches!(outcome, backend::consent::Received::Replay), "incoming message");
            // Twilio's Advanced Opt-Out already answered; otherwise the reply set in Settings.
            let reply = match fields.opt_out_type {
                Some(_) => None,
                None => settings.replies.to(keyword),
            };
            (
                [(axum::http::header::CONTENT_TYPE, "text/xml")],
                domain::consent::twiml(reply),
            )
                .into_response()
        }
        Err(e) => {
            // Twilio retries a webhook that fails: nothing is lost.
            tracing::error!(error = %e, sid, "incoming message not recorded");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
