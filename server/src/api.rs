//! The JSON API for other services: `POST /api/v1/messages`, `POST /api/v1/messages/batch` (up
//! to 1,000), `GET /api/v1/messages/{id}`, and its OpenAPI document. Authenticated with API keys
//! (`Authorization: Basic SK…:secret` or `Bearer secret`); `Idempotency-Key` makes a retried
//! request return the first answer and send nothing twice.
//!
//! Errors are `{"error": {"code", "message", "field"}}` with a stable `code`: 400 for a body that
//! is not the JSON described, 401 for credentials, 404, 409 for a reused idempotency key, 413 for a
//! batch too large, 422 for a message that fails a check, 503 when the database is down (then
//! nothing was accepted: retry).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backend::api_keys::{self, ApiKey, Presented};
use backend::db::{DbError, now_micros};
use backend::intake::{Content, Refusal, Submission};
use backend::outbox::{self, Idempotency, MessageView, Source};
use base64::Engine;
use chrono::{DateTime, SecondsFormat};
use domain::template::{Category, Priority};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::sending::Sending;

/// Most messages in one batch request.
pub const MAX_BATCH: usize = 1_000;

/// An API error: status, stable code, message, and the input it concerns.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl ApiError {
    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    fn body(&self) -> Value {
        json!({ "error": { "code": self.code, "message": self.message, "field": self.field } })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"smsdesk API\""),
            );
        }
        response
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        unavailable(&e)
    }
}

fn refusal_error(r: Refusal) -> ApiError {
    ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: r.code.as_str(),
        message: r.message,
        field: Some(r.field),
    }
}

/// The API key a request presents, checked.
pub async fn authenticate(sending: &Sending, headers: &HeaderMap) -> Result<ApiKey, ApiError> {
    let unauthorized =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message.to_owned());
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            unauthorized(
                "send an API key: Authorization: Basic base64(SK…:secret) or Bearer <secret>; an admin creates keys in the console",
            )
        })?;
    let found = if let Some(encoded) = value.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| unauthorized("the Basic credentials are not base64 of id:secret"))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| unauthorized("the Basic credentials are not id:secret"))?;
        api_keys::authenticate(&sending.db, Presented::IdAndSecret(id, secret)).await?
    } else if let Some(secret) = value.strip_prefix("Bearer ") {
        api_keys::authenticate(&sending.db, Presented::Secret(secret.trim())).await?
    } else {
        return Err(unauthorized("use Basic or Bearer authorization"));
    };
    found.ok_or_else(|| unauthorized("the API key is unknown, revoked, or its secret is wrong"))
}

/// One message as a caller submits it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    pub to: String,
    pub body: Option<String>,
    pub template: Option<String>,
    pub variables: Option<BTreeMap<String, String>>,
    pub category: Option<String>,
    pub sender: Option<String>,
    pub validity_seconds: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    messages: Vec<Value>,
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

impl MessageRequest {
    fn into_submission(self) -> Result<Submission, ApiError> {
        let content = match (self.body, self.template) {
            (Some(_), Some(_)) => {
                return Err(bad_request(
                    "give either `body` or `template` (with `variables`), not both",
                ));
            }
            (Some(body), None) => {
                if self.variables.is_some() {
                    return Err(bad_request(
                        "`variables` go with `template`, not with `body`",
                    ));
                }
                Content::Body(body)
            }
            (None, Some(key)) => Content::Template {
                key,
                variables: self.variables.unwrap_or_default(),
            },
            (None, None) => {
                return Err(bad_request(
                    "give the text as `body`, or a `template` and its `variables`",
                ));
            }
        };
        let category = self
            .category
            .map(|c| {
                c.parse::<Category>().map_err(|e| ApiError {
                    field: Some("category".into()),
                    ..bad_request(e.to_string())
                })
            })
            .transpose()?;
        Ok(Submission {
            to: self.to,
            content,
            category,
            sender: self.sender,
            validity_seconds: self.validity_seconds,
        })
    }
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        bad_request(format!(
            "the body is not the JSON this endpoint takes: {e}; see /api/v1/openapi.json"
        ))
    })
}

fn micros_rfc3339(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A message as the JSON API shows it.
#[derive(Debug, Serialize)]
pub struct MessageJson {
    id: String,
    status: String,
    to: String,
    sender: Option<String>,
    /// `null` for two-factor messages: their codes are never shown again.
    body: Option<String>,
    template: Option<String>,
    category: Option<Category>,
    priority: Priority,
    /// Who sent it: `api_key:SK…` or `user:<e-mail>`.
    source: String,
    segments: i64,
    encoding: String,
    attempts: i64,
    error_code: Option<i64>,
    error_message: Option<String>,
    /// Dollars, as a decimal string (`"0.0083"`), once known.
    price: Option<String>,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<Value>>,
}

impl From<&MessageView> for MessageJson {
    fn from(m: &MessageView) -> Self {
        MessageJson {
            id: m.sid.clone(),
            status: m.status.as_str().to_owned(),
            to: m.to.clone(),
            sender: m.sender.clone(),
            body: m.body.clone(),
            template: m.template_key.clone(),
            category: m.category,
            priority: m.priority,
            source: m.source.to_string(),
            segments: m.segments,
            encoding: m.encoding.clone(),
            attempts: m.attempts,
            error_code: m.error_code,
            error_message: m.error_message.clone(),
            price: m.price_micros.map(|p| {
                domain::money::Money::from_micros(p)
                    .to_string()
                    .trim_start_matches('$')
                    .to_owned()
            }),
            created_at: micros_rfc3339(m.created_at),
            updated_at: micros_rfc3339(m.updated_at),
            events: None,
        }
    }
}

/// What a batch or single request produced, before it is answered.
struct Answer {
    status: StatusCode,
    body: Value,
}

/// The database is down: nothing was accepted.
fn unavailable(e: &DbError) -> ApiError {
    tracing::error!(error = %e, "API request failed on the database");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
        "smsdesk cannot reach its database right now; nothing was accepted: try again shortly",
    )
}

/// Passes `items` (already parsed, or refused) through intake, answering with `render`. With an
/// idempotency key, the answer is stored in the same transaction as the messages.
async fn accept(
    sending: &Sending,
    key: &ApiKey,
    headers: &HeaderMap,
    raw: &[u8],
    path: &str,
    items: Vec<Result<Submission, ApiError>>,
    render: impl FnOnce(Vec<Result<MessageView, ApiError>>) -> Answer,
) -> Result<Response, ApiError> {
    let idempotency = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .map(str::to_owned)
                .ok_or_else(|| bad_request("Idempotency-Key must be 1 to 255 visible characters"))
        })
        .transpose()?;
    let settings = sending.settings().await.map_err(|e| match e {
        backend::settings::SettingsStoreError::Db(e) => unavailable(&e),
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "settings_unreadable",
            other.to_string(),
        ),
    })?;
    let intake = &sending.intake;
    let source = Source::ApiKey(key.id.clone());
    // Parsing errors keep their place; the rest go through intake's checks together.
    let mut submissions = Vec::new();
    let slots: Vec<Result<usize, ApiError>> = items
        .into_iter()
        .map(|item| {
            item.map(|s| {
                submissions.push(s);
                submissions.len() - 1
            })
        })
        .collect();
    let checked = intake
        .check(&settings, &source, submissions)
        .await
        .map_err(|e| unavailable(&e))?;
    let (checked_slots, prepared) = backend::intake::split(&source, checked);
    let slots: Vec<Result<usize, ApiError>> = slots
        .into_iter()
        .map(|slot| slot.and_then(|i| checked_slots[i].clone().map_err(refusal_error)))
        .collect();
    let now = now_micros();
    let Some(idempotency) = idempotency else {
        let written = intake
            .write(prepared, &source, now)
            .await
            .map_err(|e| unavailable(&e))?;
        let answer = render(backend::intake::merge(slots, written));
        return Ok(json_response(answer.status, answer.body.to_string()));
    };
    // With an Idempotency-Key the messages and the answer are one transaction.
    let mut tx = sending.db.begin().await.map_err(|e| unavailable(&e))?;
    let fingerprint = outbox::fingerprint(&[path.as_bytes(), raw]);
    match outbox::claim_idempotency(
        &mut tx,
        &sending.key,
        &key.id,
        &idempotency,
        &fingerprint,
        now,
    )
    .await
    .map_err(|e| unavailable(&e))?
    {
        Idempotency::New => {}
        Idempotency::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = json_response(status, body);
            response.headers_mut().insert(
                "idempotent-replayed",
                header::HeaderValue::from_static("true"),
            );
            return Ok(response);
        }
        Idempotency::Mismatch => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request: use a new key for a new request",
            ));
        }
    }
    let written = intake
        .write_in(&mut tx, prepared, &source, now)
        .await
        .map_err(|e| unavailable(&e))?;
    let answer = render(backend::intake::merge(slots, written));
    let body = answer.body.to_string();
    outbox::store_answer(
        &mut tx,
        &sending.key,
        &key.id,
        &idempotency,
        answer.status.as_u16(),
        &body,
    )
    .await
    .map_err(|e| unavailable(&e))?;
    tx.commit().await.map_err(|e| unavailable(&e))?;
    intake.written();
    Ok(json_response(answer.status, body))
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Reads a request's body after its credentials were checked: up to `limit` bytes, else 413.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is over {limit} bytes: send fewer messages per request"),
        )
    })
}

/// `POST /api/v1/messages`: 202 with the message, or the reason it was refused.
pub async fn create_message(
    State(sending): State<Sending>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let key = authenticate(&sending, &parts.headers).await?;
    let raw = read_body(body, crate::startup::MAX_BODY_BYTES).await?;
    let request: MessageRequest = parse(&raw)?;
    let submission = request.into_submission()?;
    let mut refused: Option<ApiError> = None;
    let response = accept(
        &sending,
        &key,
        &parts.headers,
        &raw,
        "/api/v1/messages",
        vec![Ok(submission)],
        |mut results| match results.pop() {
            Some(Ok(view)) => Answer {
                status: StatusCode::ACCEPTED,
                body: serde_json::to_value(MessageJson::from(&view)).expect("serializable"),
            },
            Some(Err(e)) => {
                let answer = Answer {
                    status: e.status,
                    body: e.body(),
                };
                refused = Some(e);
                answer
            }
            None => unreachable!("one submission gives one result"),
        },
    )
    .await?;
    if let Some(e) = refused {
        // A refusal is answered as an error (and was not stored as an idempotent answer that
        // sent something: nothing was sent).
        return Err(e);
    }
    Ok(response)
}

/// How many messages a batch holds, counted without building them.
struct Count(usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Counter;
        impl<'de> serde::de::Visitor<'de> for Counter {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of messages")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
        }
        d.deserialize_seq(Counter)
    }
}

#[derive(Deserialize)]
struct BatchCount {
    messages: Count,
}

/// `POST /api/v1/messages/batch`: up to 1,000 messages, a result for each, in order.
pub async fn create_batch(
    State(sending): State<Sending>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let key = authenticate(&sending, &parts.headers).await?;
    let raw = read_body(body, crate::startup::MAX_BATCH_BODY_BYTES).await?;
    // Counted first, so that an oversized batch is refused before any message is built.
    let BatchCount {
        messages: Count(count),
    } = parse(&raw)?;
    if count == 0 {
        return Err(bad_request("`messages` is empty: give 1 to 1,000 messages"));
    }
    if count > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "{count} messages in one batch; at most {MAX_BATCH}: split it into several requests"
            ),
        ));
    }
    let batch: BatchRequest = parse(&raw)?;
    let items: Vec<Result<Submission, ApiError>> = batch
        .messages
        .into_iter()
        .map(|v| {
            serde_json::from_value::<MessageRequest>(v)
                .map_err(|e| bad_request(format!("not a message: {e}")))
                .and_then(MessageRequest::into_submission)
        })
        .collect();
    accept(
        &sending,
        &key,
        &parts.headers,
        &raw,
        "/api/v1/messages/batch",
        items,
        |results| {
            let accepted = results.iter().filter(|r| r.is_ok()).count();
            let refused = results.len() - accepted;
            let results: Vec<Value> = results
                .into_iter()
                .enumerate()
                .map(|(index, r)| match r {
                    Ok(view) => json!({ "index": index, "id": view.sid, "status": view.status.as_str(), "segments": view.segments }),
                    Err(e) => {
                        let mut body = e.body();
                        body["index"] = json!(index);
                        body
                    }
                })
                .collect();
            Answer {
                status: StatusCode::ACCEPTED,
                body: json!({ "accepted": accepted, "refused": refused, "results": results }),
            }
        },
    )
    .await
}

/// `GET /api/v1/messages/{id}`: the message with its events.
pub async fn get_message(
    State(sending): State<Sending>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authenticate(&sending, &headers).await?;
    let Some(view) = outbox::find(&sending.db, &sending.key, &id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("there is no message {id}"),
        ));
    };
    let events = outbox::events(&sending.db, view.id).await?;
    let mut json = MessageJson::from(&view);
    json.events = Some(
        events
            .into_iter()
            .map(|e| {
                json!({
                    "at": micros_rfc3339(e.at), "kind": e.kind, "status": e.status,
                    "error_code": e.error_code, "detail": e.detail,
                })
            })
            .collect(),
    );
    Ok(Json(json).into_response())
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}
