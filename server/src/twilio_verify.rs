//! A Verify-compatible API (Twilio Verify v2), so that a service written against Twilio's helper
//! libraries runs its two-factor flow through smsdesk by changing only `client.verify.base_url`:
//! `POST /v2/Services`, `GET /v2/Services/{VA}`, `POST /v2/Services/{VA}/Verifications`,
//! `GET` and `POST /v2/Services/{VA}/Verifications/{VE}`, `POST /v2/Services/{VA}/VerificationCheck`.
//! Form-encoded requests, Basic auth with an smsdesk API key, Twilio's JSON shapes, dates
//! (`YYYY-MM-DDTHH:MM:SSZ`), status codes and error codes (`domain::verify`). Codes never
//! appear in an answer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use backend::api_keys::ApiKey;
use backend::audit::Actor;
use backend::db::now_micros;
use backend::intake::RefusalCode;
use backend::outbox::Source;
use backend::verify::{self, Failure, Service, Target, Verification};
use chrono::{DateTime, SecondsFormat};
use domain::verify::{Status, VerifyError};
use serde_json::{Value, json};

use crate::api;
use crate::sending::Sending;
use crate::twilio_api::{twilio_error, unavailable};

/// Twilio Verify's date format: `2026-12-01T10:15:00Z`.
fn date(micros: i64) -> Value {
    DateTime::from_timestamp_micros(micros).map_or(Value::Null, |d| {
        Value::String(d.to_rfc3339_opts(SecondsFormat::Secs, true))
    })
}

fn service_json(sending: &Sending, s: &Service) -> Value {
    let url = format!("{}/v2/Services/{}", sending.public_base, s.sid);
    json!({
        "sid": s.sid,
        "account_sid": sending.installation.account_sid,
        "friendly_name": s.friendly_name,
        "code_length": s.code_length,
        "lookup_enabled": false,
        "psd2_enabled": false,
        "skip_sms_to_landlines": false,
        "dtmf_input_required": false,
        "tts_name": null,
        "do_not_share_warning_enabled": false,
        "custom_code_enabled": false,
        "push": { "include_date": false, "apn_credential_sid": null, "fcm_credential_sid": null },
        "totp": { "issuer": s.friendly_name, "time_step": 30, "code_length": 6, "skew": 1 },
        "default_template_sid": null,
        "whatsapp": { "msg_service_sid": null, "from": null },
        "passkeys": null,
        "verify_event_subscription_enabled": false,
        "date_created": date(s.created_at),
        "date_updated": date(s.updated_at),
        "url": url,
        "links": {
            "verification_checks": format!("{url}/VerificationCheck"),
            "verifications": format!("{url}/Verifications"),
        },
    })
}

fn verification_json(sending: &Sending, v: &Verification) -> Value {
    json!({
        "sid": v.sid,
        "service_sid": v.service_sid,
        "account_sid": sending.installation.account_sid,
        "to": v.to,
        "channel": v.channel,
        "status": v.status.as_str(),
        "valid": v.status == Status::Approved,
        "lookup": {},
        "amount": null,
        "payee": null,
        "send_code_attempts": v.attempts.iter().map(|a| json!({
            "time": date(a.at),
            "channel": "SMS",
            "attempt_sid": a.attempt_sid,
        })).collect::<Vec<_>>(),
        "date_created": date(v.created_at),
        "date_updated": date(v.updated_at),
        "sna": null,
        "url": format!("{}/v2/Services/{}/Verifications/{}", sending.public_base, v.service_sid, v.sid),
    })
}

fn check_json(sending: &Sending, v: &Verification) -> Value {
    json!({
        "sid": v.sid,
        "service_sid": v.service_sid,
        "account_sid": sending.installation.account_sid,
        "to": v.to,
        "channel": v.channel,
        "status": v.status.as_str(),
        "valid": v.status == Status::Approved,
        "amount": null,
        "payee": null,
        "sna_attempts_error_codes": [],
        "date_created": date(v.created_at),
        "date_updated": date(v.updated_at),
    })
}

fn verify_error(e: &VerifyError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    twilio_error(status, e.code(), e.to_string())
}

fn failure(e: Failure) -> Response {
    match e {
        Failure::Verify(e) => verify_error(&e),
        Failure::Refused(r) if r.code == RefusalCode::CountryNotAllowed => {
            twilio_error(StatusCode::FORBIDDEN, 60605, r.message)
        }
        Failure::Refused(r) => twilio_error(
            StatusCode::BAD_REQUEST,
            r.twilio_code.unwrap_or(60200),
            r.message,
        ),
        Failure::Db(e) => {
            tracing::error!(error = %e, "Verify API: the database failed");
            unavailable()
        }
    }
}

/// The caller's API key, or Twilio's 401 / 20003 (503 / 20500 when the database cannot say).
async fn authenticate(sending: &Sending, headers: &HeaderMap) -> Result<ApiKey, Response> {
    match api::authenticate(sending, headers).await {
        Ok(key) => Ok(key),
        Err(e) if e.status() == StatusCode::SERVICE_UNAVAILABLE => Err(unavailable()),
        Err(_) => Err(twilio_error(
            StatusCode::UNAUTHORIZED,
            20003,
            "Authenticate: use an smsdesk API key id (SK...) as the username and its secret as the password",
        )),
    }
}

fn not_a_form() -> Response {
    twilio_error(
        StatusCode::BAD_REQUEST,
        60200,
        "Invalid parameter: the body is not a form (application/x-www-form-urlencoded)",
    )
}

/// A form's parameters; a name given twice keeps its first value. Unknown names are accepted.
struct Form(Vec<(String, String)>);

impl Form {
    /// The form, or `None` when the body is not one (answered with [`not_a_form`]).
    fn parse(body: &Bytes) -> Option<Form> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .ok()
            .map(Form)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn settings(sending: &Sending) -> Result<backend::settings::SendingSettings, Response> {
    sending.settings().await.map_err(|e| {
        tracing::error!(error = %e, "Verify API: settings unreadable");
        unavailable()
    })
}

/// `POST /v2/Services`: `FriendlyName` (required, at most 30 characters), `CodeLength` (4-10).
pub async fn create_service(
    State(sending): State<Sending>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = match authenticate(&sending, &headers).await {
        Ok(k) => k,
        Err(denied) => return denied,
    };
    let Some(form) = Form::parse(&body) else {
        return not_a_form();
    };
    let name = match domain::verify::friendly_name(form.get("FriendlyName").unwrap_or_default()) {
        Ok(n) => n,
        Err(e) => return verify_error(&e),
    };
    let length = match domain::verify::code_length(form.get("CodeLength")) {
        Ok(l) => l,
        Err(e) => return verify_error(&e),
    };
    let actor = Actor {
        user_id: None,
        label: Source::ApiKey(key.id).to_string(),
    };
    match verify::create_service(
        &sending.db,
        &actor,
        &name,
        length,
        verify::Purpose::Api,
        now_micros(),
    )
    .await
    {
        Ok(service) => {
            (StatusCode::CREATED, Json(service_json(&sending, &service))).into_response()
        }
        Err(e) => failure(e.into()),
    }
}

/// `GET /v2/Services/{VA}`.
pub async fn fetch_service(
    State(sending): State<Sending>,
    Path(sid): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = authenticate(&sending, &headers).await {
        return denied;
    }
    match verify::service(&sending.db, &sid).await {
        Ok(Some(service)) if service.purpose == verify::Purpose::Api => {
            Json(service_json(&sending, &service)).into_response()
        }
        Ok(_) => verify_error(&VerifyError::NotFound(format!("/v2/Services/{sid}"))),
        Err(e) => failure(e.into()),
    }
}

/// `POST /v2/Services/{VA}/Verifications`: `To` (E.164), `Channel` (`sms`).
pub async fn start(
    State(sending): State<Sending>,
    Path(service): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = match authenticate(&sending, &headers).await {
        Ok(k) => k,
        Err(denied) => return denied,
    };
    let Some(form) = Form::parse(&body) else {
        return not_a_form();
    };
    let settings = match settings(&sending).await {
        Ok(s) => s,
        Err(down) => return down,
    };
    let started = sending
        .verifier
        .start(
            &settings,
            verify::Purpose::Api,
            &service,
            form.get("To"),
            form.get("Channel"),
            &Source::ApiKey(key.id),
            now_micros(),
        )
        .await;
    match started {
        Ok(v) => (StatusCode::CREATED, Json(verification_json(&sending, &v))).into_response(),
        Err(e) => failure(e),
    }
}

/// `GET /v2/Services/{VA}/Verifications/{VE}`: a pending verification; 404 / 20404 otherwise.
pub async fn fetch(
    State(sending): State<Sending>,
    Path((service, sid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = authenticate(&sending, &headers).await {
        return denied;
    }
    match sending
        .verifier
        .fetch(verify::Purpose::Api, &service, &sid, now_micros())
        .await
    {
        Ok(v) => Json(verification_json(&sending, &v)).into_response(),
        Err(e) => failure(e),
    }
}

/// `POST /v2/Services/{VA}/Verifications/{VE}` with `Status=canceled|approved`.
pub async fn update(
    State(sending): State<Sending>,
    Path((service, sid)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(denied) = authenticate(&sending, &headers).await {
        return denied;
    }
    let Some(form) = Form::parse(&body) else {
        return not_a_form();
    };
    let status = match domain::verify::update_status(form.get("Status")) {
        Ok(s) => s,
        Err(e) => return verify_error(&e),
    };
    match sending
        .verifier
        .update(verify::Purpose::Api, &service, &sid, status, now_micros())
        .await
    {
        Ok(v) => Json(verification_json(&sending, &v)).into_response(),
        Err(e) => failure(e),
    }
}

/// `POST /v2/Services/{VA}/VerificationCheck`: `Code` and `To` or `VerificationSid`.
pub async fn check(
    State(sending): State<Sending>,
    Path(service): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(denied) = authenticate(&sending, &headers).await {
        return denied;
    }
    let Some(form) = Form::parse(&body) else {
        return not_a_form();
    };
    let target = match Target::from_form(
        form.get("To").map(str::to_owned),
        form.get("VerificationSid").map(str::to_owned),
    ) {
        Ok(t) => t,
        Err(e) => return verify_error(&e),
    };
    let code = match domain::verify::checked_code(form.get("Code")) {
        Ok(c) => c,
        Err(e) => return verify_error(&e),
    };
    let settings = match settings(&sending).await {
        Ok(s) => s,
        Err(down) => return down,
    };
    match sending
        .verifier
        .check(
            &settings,
            verify::Purpose::Api,
            &service,
            target,
            code,
            now_micros(),
        )
        .await
    {
        Ok(v) => Json(check_json(&sending, &v)).into_response(),
        Err(e) => failure(e),
    }
}
