//! The JSON API for other services: `POST /api/v1/messages`, `POST /api/v1/messages/batch` (up
//! to 1,000), `GET /api/v1/messages` (the delivery log's filters, a page at a time),
//! `GET /api/v1/messages/{id}`, and its OpenAPI document. Authenticated with API keys
//! (`Authorization: Basic SK…:secret` or `Bearer secret`); `Idempotency-Key` makes a retried
//! request return the first answer and send nothing twice.
//!
//! Errors are `{"error": {"code", "message", "field"}}` with a stable `code`: 400 for a body that
//! is not the JSON described, 401 for credentials, 404, 409 for a reused idempotency key, 413 for a
//! batch too large, 422 for a message that fails a check, 503 when the database is down (then
//! nothing was accepted: retry).

use domain::money::Money;
use std::collections::BTreeMap;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backend::api_keys::{ApiKey, Presented};
use backend::db::{DbError, now_micros};
use backend::delivery::{self, Cursor};
use backend::intake::{Content, Refusal, Submission};
use backend::outbox::{self, Idempotency, MessageView, Source};
use chrono::{DateTime, SecondsFormat};
use domain::delivery::LogQuery;
use domain::template::{Category, Priority};
use headers::authorization::{Basic, Bearer};
use headers::{Authorization, HeaderMapExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

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

    fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code.to_owned(),
            message: self.message.clone(),
            field: self.field.clone(),
        }
    }

    fn body(&self) -> Value {
        serde_json::to_value(ErrorJson {
            error: self.detail(),
        })
        .expect("serializable")
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

/// The API key a request presents, checked. The typed headers read the scheme regardless of case
/// (`bearer …` is `Bearer …`, as HTTP has it) and skip spaces before the credentials.
pub async fn authenticate(sending: &Sending, headers: &HeaderMap) -> Result<ApiKey, ApiError> {
    let unauthorized =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message.to_owned());
    let found = if let Some(Authorization(basic)) = headers.typed_get::<Authorization<Basic>>() {
        let presented = Presented::IdAndSecret(basic.username(), basic.password());
        sending
            .api_keys
            .authenticate(&sending.db, presented, now_micros())
            .await?
    } else if let Some(Authorization(bearer)) = headers.typed_get::<Authorization<Bearer>>() {
        let secret = bearer.token().trim();
        if secret.is_empty() {
            return Err(unauthorized(EMPTY_BEARER));
        }
        sending
            .api_keys
            .authenticate(&sending.db, Presented::Secret(secret), now_micros())
            .await?
    } else {
        // The typed headers only say "not mine": the scheme picks the explanation.
        let scheme = headers.get(header::AUTHORIZATION).map(|v| {
            v.as_bytes()
                .split(|&b| b == b' ')
                .next()
                .unwrap_or_default()
        });
        return Err(unauthorized(match scheme {
            None => {
                "send an API key: Authorization: Basic base64(SK…:secret) or Bearer <secret>; an admin creates keys in the console"
            }
            Some(s) if s.eq_ignore_ascii_case(b"Basic") => {
                "the Basic credentials are not base64 of id:secret"
            }
            Some(s) if s.eq_ignore_ascii_case(b"Bearer") => EMPTY_BEARER,
            Some(_) => "use Basic or Bearer authorization",
        }));
    };
    found.ok_or_else(|| unauthorized("the API key is unknown, revoked, or its secret is wrong"))
}

/// `Bearer` with nothing usable after it (HTTP drops trailing spaces, so `Bearer ` is `Bearer`).
const EMPTY_BEARER: &str = "the Bearer token is empty or not ASCII text: send Bearer <secret>";

/// One message as a caller submits it: `body`, or `template` with its `variables`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = MessageRequest)]
pub struct MessageRequest {
    /// The recipient: E.164, or a national number read in the default region.
    #[schema(example = "+14155552671")]
    pub to: String,
    /// The text, 1 to 1,600 characters (give this or `template`).
    #[schema(example = "SafeShipper: shipment SS-7 picked up")]
    pub body: Option<String>,
    /// A template's key (the console's Templates page lists them).
    #[schema(example = "shipment_delivered")]
    pub template: Option<String>,
    /// The template's values by variable name.
    pub variables: Option<BTreeMap<String, String>>,
    /// `shipment`, `emergency`, `two_factor` or `driver`. Free text may not be `emergency`
    /// (an emergency template carries that priority).
    #[schema(example = "shipment")]
    pub category: Option<String>,
    /// One of smsdesk's sender numbers (E.164) or its alphanumeric id; default: the configured one.
    pub sender: Option<String>,
    /// Seconds the message may still be sent for (1 to 36,000); default: the template's TTL,
    /// 600 for two-factor codes, else none.
    #[schema(minimum = 1, maximum = 36000)]
    pub validity_seconds: Option<u32>,
}

/// Up to 1,000 messages, each checked on its own.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    #[schema(value_type = Vec<MessageRequest>, min_items = 1, max_items = 1000)]
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
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Message)]
pub struct MessageJson {
    /// smsdesk's sid (`SM` + 32 hex digits).
    #[schema(example = "SM0123456789abcdef0123456789abcdef")]
    id: String,
    /// Twilio's status as smsdesk last knew it: accepted, queued, sending, sent, delivered,
    /// undelivered, failed, read, canceled, ...
    status: String,
    /// E.164.
    to: String,
    sender: Option<String>,
    /// `null` for two-factor messages: their codes are never shown again.
    body: Option<String>,
    template: Option<String>,
    #[schema(value_type = Option<String>, example = "shipment")]
    category: Option<Category>,
    /// `emergency`, `two_factor` or `normal`.
    #[schema(value_type = String, example = "normal")]
    priority: Priority,
    /// Who sent it: `api_key:SK…` or `user:<e-mail>`.
    source: String,
    segments: i64,
    /// `GSM-7` or `UCS-2`.
    encoding: String,
    attempts: i64,
    error_code: Option<i64>,
    error_message: Option<String>,
    /// What Twilio charged, dollars as a decimal string (`"0.0083"`), once Twilio has said.
    price: Option<String>,
    /// What smsdesk estimated at intake (segments × its price for the country), dollars as a
    /// decimal string; `null` when it has no price for the country.
    estimated_price: Option<String>,
    /// RFC 3339, UTC.
    created_at: String,
    /// RFC 3339, UTC.
    updated_at: String,
    /// The message's timeline (on `GET` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<EventJson>>,
}

/// One event of a message's timeline.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Event)]
pub struct EventJson {
    /// RFC 3339, UTC.
    at: String,
    /// accepted, claimed, sent, retry, failed, expired, callback, ...
    kind: String,
    status: Option<String>,
    error_code: Option<i64>,
    detail: String,
}

/// An error: a stable `code` for programs, a `message` saying what to do, the `field` concerned.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorJson {
    error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    #[schema(example = "invalid_number")]
    code: String,
    message: String,
    field: Option<String>,
}

/// What a batch did: a result per message, in order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BatchAnswer)]
pub struct BatchJson {
    accepted: usize,
    refused: usize,
    results: Vec<BatchItemJson>,
}

/// One message of a batch: its `id`, `status` and `segments`, or its `error`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BatchResult)]
pub struct BatchItemJson {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segments: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDetail>,
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
            price: m.price_micros.map(|p| Money::from_micros(p).to_decimal()),
            estimated_price: m
                .estimated_micros
                .map(|p| Money::from_micros(p).to_decimal()),
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

/// The sending settings (at most a second old).
async fn settings(sending: &Sending) -> Result<backend::settings::SendingSettings, ApiError> {
    sending.settings().await.map_err(|e| match e {
        backend::settings::SettingsStoreError::Db(e) => unavailable(&e),
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "settings_unreadable",
            other.to_string(),
        ),
    })
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
    let settings = settings(sending).await?;
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
        let answer = render(backend::intake::merge(slots, written, refusal_error));
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
    let answer = render(backend::intake::merge(slots, written, refusal_error));
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
#[utoipa::path(
    post,
    path = "/api/v1/messages",
    tag = "messages",
    request_body = MessageRequest,
    params(IdempotencyHeader),
    responses(
        (status = 202, description = "Accepted: in the outbox, to be sent", body = MessageJson),
        (status = 400, description = "The body is not the JSON described", body = ErrorJson),
        (status = 401, description = "No API key, or an unknown or revoked one", body = ErrorJson),
        (status = 409, description = "The Idempotency-Key was used for another request", body = ErrorJson),
        (status = 413, description = "The body is too large", body = ErrorJson),
        (status = 422, description = "The message fails a check (number, consent, template, ...)", body = ErrorJson),
        (status = 503, description = "The database is down: nothing was accepted, try again", body = ErrorJson),
    ),
    security(("basic" = []), ("bearer" = []))
)]
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

/// A batch's body (`{"messages": [...]}`, 1 to 1,000) read into a submission, or the reason it
/// cannot be one, per message. The messages are counted first, so that an oversized batch is
/// refused before any message is built.
fn batch_items(raw: &[u8]) -> Result<Vec<Result<Submission, ApiError>>, ApiError> {
    let BatchCount {
        messages: Count(count),
    } = parse(raw)?;
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
    let batch: BatchRequest = parse(raw)?;
    Ok(batch
        .messages
        .into_iter()
        .map(|v| {
            serde_json::from_value::<MessageRequest>(v)
                .map_err(|e| bad_request(format!("not a message: {e}")))
                .and_then(MessageRequest::into_submission)
        })
        .collect())
}

/// `POST /api/v1/messages/batch`: up to 1,000 messages, a result for each, in order.
#[utoipa::path(
    post,
    path = "/api/v1/messages/batch",
    tag = "messages",
    request_body = BatchRequest,
    params(IdempotencyHeader),
    responses(
        (status = 202, description = "Each message accepted or refused, in order", body = BatchJson),
        (status = 400, description = "The body is not the JSON described, or `messages` is empty", body = ErrorJson),
        (status = 401, description = "No API key, or an unknown or revoked one", body = ErrorJson),
        (status = 409, description = "The Idempotency-Key was used for another request", body = ErrorJson),
        (status = 413, description = "More than 1,000 messages, or the body is too large", body = ErrorJson),
        (status = 503, description = "The database is down: nothing was accepted, try again", body = ErrorJson),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn create_batch(
    State(sending): State<Sending>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let key = authenticate(&sending, &parts.headers).await?;
    let raw = read_body(body, crate::startup::MAX_BATCH_BODY_BYTES).await?;
    let items = batch_items(&raw)?;
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
            let results: Vec<BatchItemJson> = results
                .into_iter()
                .enumerate()
                .map(|(index, r)| match r {
                    Ok(view) => BatchItemJson {
                        index,
                        id: Some(view.sid),
                        status: Some(view.status.as_str().to_owned()),
                        segments: Some(view.segments),
                        error: None,
                    },
                    Err(e) => BatchItemJson {
                        index,
                        id: None,
                        status: None,
                        segments: None,
                        error: Some(e.detail()),
                    },
                })
                .collect();
            Answer {
                status: StatusCode::ACCEPTED,
                body: serde_json::to_value(BatchJson {
                    accepted,
                    refused,
                    results,
                })
                .expect("serializable"),
            }
        },
    )
    .await
}

/// What sending a batch would cost and do to the budgets, without sending.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EstimateAnswer)]
pub struct EstimateJson {
    /// Messages given.
    messages: usize,
    /// Messages that pass every check (budgets aside).
    sendable: usize,
    /// Those that would be refused by a check, with why.
    refused: Vec<BatchItemJson>,
    segments: u64,
    /// Segments × the price table, USD decimal string.
    estimated_price: String,
    /// Sendable messages to countries without a price (not in the estimate).
    unpriced: usize,
    /// Each budget the messages fall under, before and after.
    budgets: Vec<BudgetEffectJson>,
    /// No budget's hard stop would refuse any of them.
    within_budgets: bool,
}

/// One budget before and after a batch.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BudgetEffect)]
pub struct BudgetEffectJson {
    /// "daily budget", "monthly shipment budget".
    budget: String,
    period: String,
    category: Option<String>,
    amount: String,
    /// Reserved so far this period, USD.
    reserved: String,
    /// Reserved after the batch, USD.
    after: String,
    hard_stop: bool,
    /// How many of the batch's messages its hard stop would refuse.
    would_refuse: usize,
    /// When the period starts again, RFC 3339 UTC.
    resets_at: String,
}

/// `POST /api/v1/messages/estimate`: the same body as a batch; what it would cost and do to
/// each budget, checked as intake checks it, without writing anything.
#[utoipa::path(
    post,
    path = "/api/v1/messages/estimate",
    tag = "messages",
    request_body = BatchRequest,
    responses(
        (status = 200, description = "The batch's cost and its effect on each budget", body = EstimateJson),
        (status = 400, description = "The body is not the JSON described, or `messages` is empty", body = ErrorJson),
        (status = 401, description = "No API key, or an unknown or revoked one", body = ErrorJson),
        (status = 413, description = "More than 1,000 messages, or the body is too large", body = ErrorJson),
        (status = 503, description = "The database is down, try again", body = ErrorJson),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn estimate(
    State(sending): State<Sending>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let key = authenticate(&sending, &parts.headers).await?;
    let raw = read_body(body, crate::startup::MAX_BATCH_BODY_BYTES).await?;
    let items = batch_items(&raw)?;
    let count = items.len();
    let settings = settings(&sending).await?;
    let source = Source::ApiKey(key.id.clone());
    let mut refused = Vec::new();
    let mut submissions = Vec::new();
    let mut indexes = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match item {
            Ok(s) => {
                submissions.push(s);
                indexes.push(index);
            }
            Err(e) => refused.push((index, e)),
        }
    }
    let checked = sending
        .intake
        .check(&settings, &source, submissions)
        .await
        .map_err(|e| unavailable(&e))?;
    let mut prepared = Vec::new();
    for (index, c) in indexes.into_iter().zip(checked) {
        match c {
            Ok(p) => prepared.push(p),
            Err(r) => refused.push((index, refusal_error(r))),
        }
    }
    refused.sort_by_key(|(i, _)| *i);
    let charges: Vec<_> = prepared
        .iter()
        .map(backend::intake::Prepared::charge)
        .collect();
    let effects = backend::budgets::preview(&sending.db, &charges, now_micros())
        .await
        .map_err(|e| unavailable(&e))?;
    let dollars = |m: i64| domain::money::Money::from_micros(m).to_decimal();
    let answer = EstimateJson {
        messages: count,
        sendable: prepared.len(),
        refused: refused
            .into_iter()
            .map(|(index, e)| BatchItemJson {
                index,
                id: None,
                status: None,
                segments: None,
                error: Some(e.detail()),
            })
            .collect(),
        segments: prepared.iter().map(|p| u64::from(p.segments)).sum(),
        estimated_price: dollars(prepared.iter().filter_map(|p| p.estimated_micros).sum()),
        unpriced: prepared
            .iter()
            .filter(|p| p.estimated_micros.is_none())
            .count(),
        within_budgets: effects.iter().all(|e| e.refused == 0),
        budgets: effects
            .into_iter()
            .map(|e| BudgetEffectJson {
                budget: backend::budgets::describe(&e.budget),
                period: e.budget.period.as_str().to_owned(),
                category: e.budget.category.map(|c| c.as_str().to_owned()),
                amount: dollars(e.budget.amount_micros),
                reserved: dollars(e.spent_micros),
                after: dollars(e.after_micros),
                hard_stop: e.budget.hard_stop,
                would_refuse: e.refused,
                resets_at: chrono::DateTime::from_timestamp_micros(e.resets_at)
                    .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default(),
            })
            .collect(),
    };
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_string(&answer).expect("serializable"),
    ))
}

/// Most messages on one page of `GET /api/v1/messages`; 50 when `limit` is not given.
pub const MAX_LIST_LIMIT: u32 = 500;
const DEFAULT_LIST_LIMIT: u32 = 50;

/// The filters of `GET /api/v1/messages` (the console's delivery log takes the same names). Every
/// filter given narrows the list; empty values count as not given.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// A status (`accepted`, `queued`, `sent`, `delivered`, `undelivered`, `failed`, `canceled`,
    /// …) or `problems` (failed and undelivered).
    #[param(example = "problems")]
    status: Option<String>,
    /// A template's key.
    template: Option<String>,
    /// `shipment`, `emergency`, `two_factor` or `driver`.
    category: Option<String>,
    /// Who sent it: `api_key:SK…` or `user:<e-mail>` (an `SK…` id or an e-mail alone will do).
    source: Option<String>,
    /// The recipient, in any format a phone number is written in (E.164 is safest).
    #[param(example = "+14155552671")]
    to: Option<String>,
    /// Twilio's error code.
    #[param(example = "30003")]
    error_code: Option<String>,
    /// Text the body contains (any case). Two-factor messages are never found by their text.
    text: Option<String>,
    /// Written on or after this day (`YYYY-MM-DD`, UTC) or instant (RFC 3339).
    #[param(example = "2026-11-30")]
    date_from: Option<String>,
    /// Written on or before this day (`YYYY-MM-DD`, UTC, the whole day), or before this instant.
    date_to: Option<String>,
    /// Where the page starts: a `next_cursor` (older messages) or `previous_cursor` (newer) from
    /// an earlier answer.
    cursor: Option<String>,
    /// Messages per page, 1 to 500.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// A page of messages, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MessagePage)]
pub struct MessagePageJson {
    messages: Vec<MessageJson>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    next_cursor: Option<String>,
    /// Pass as `cursor` for the page before (newer messages); `null` on the first page.
    previous_cursor: Option<String>,
}

/// `GET /api/v1/messages`: messages newest first, filtered, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/messages",
    tag = "messages",
    params(ListParams),
    responses(
        (status = 200, description = "A page of messages, newest first", body = MessagePageJson),
        (status = 400, description = "A filter, the cursor or the limit is not understood", body = ErrorJson),
        (status = 401, description = "No API key, or an unknown or revoked one", body = ErrorJson),
        (status = 503, description = "The database is down: try again", body = ErrorJson),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn list_messages(
    State(sending): State<Sending>,
    headers: HeaderMap,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    authenticate(&sending, &headers).await?;
    let Query(params) = query.map_err(|e| bad_request(e.body_text()))?;
    let limit = params.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(field_error(
            "limit",
            "limit is a whole number from 1 to 500",
        ));
    }
    let cursor = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(Cursor::parse(c).ok_or_else(|| {
            field_error(
                "cursor",
                "the cursor is not one smsdesk gave: pass next_cursor or previous_cursor as is",
            )
        })?),
    };
    let query = LogQuery {
        status: params.status,
        template: params.template,
        category: params.category,
        source: params.source,
        to: params.to,
        error_code: params.error_code,
        text: params.text,
        date_from: params.date_from,
        date_to: params.date_to,
    };
    let settings = settings(&sending).await?;
    let filter = delivery::Filter::parse(&query, &sending.key, Some(&settings.default_region))
        .map_err(|e| field_error(e.field, e.message))?;
    let page = delivery::page(&sending.db, &sending.key, &filter, cursor, limit).await?;
    Ok(Json(MessagePageJson {
        messages: page.messages.iter().map(MessageJson::from).collect(),
        next_cursor: page.older.map(|id| Cursor::Older(id).to_string()),
        previous_cursor: page.newer.map(|id| Cursor::Newer(id).to_string()),
    })
    .into_response())
}

fn field_error(field: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        field: Some(field.to_owned()),
        ..bad_request(message)
    }
}

/// `GET /api/v1/messages/{id}`: the message with its events.
#[utoipa::path(
    get,
    path = "/api/v1/messages/{id}",
    tag = "messages",
    params(("id" = String, Path, description = "The message's sid (`SM…`)")),
    responses(
        (status = 200, description = "The message and its timeline", body = MessageJson),
        (status = 401, description = "No API key, or an unknown or revoked one", body = ErrorJson),
        (status = 404, description = "No message has this id", body = ErrorJson),
        (status = 503, description = "The database is down: try again", body = ErrorJson),
    ),
    security(("basic" = []), ("bearer" = []))
)]
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
            .map(|e| EventJson {
                at: micros_rfc3339(e.at),
                kind: e.kind,
                status: e.status,
                error_code: e.error_code,
                detail: e.detail,
            })
            .collect(),
    );
    Ok(Json(json).into_response())
}

/// `Idempotency-Key`: a retried request with the same key and body gets the first answer again
/// (for 24 hours) and sends nothing twice.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct IdempotencyHeader {
    /// 1 to 255 visible characters, unique per request.
    #[param(rename = "Idempotency-Key", min_length = 1, max_length = 255)]
    idempotency_key: Option<String>,
}

/// The JSON API's description, derived from the handlers and their types.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "smsdesk JSON API",
        description = "Send SMS through smsdesk: every message is checked (number, geo permissions, consent, template, body, sender) and written to the outbox before the answer. Authenticate with an API key: Basic (key id `SK…` and secret) or Bearer (the secret).",
        version = "1"
    ),
    paths(create_message, create_batch, estimate, list_messages, get_message),
    components(schemas(MessageRequest, BatchRequest, MessageJson, MessagePageJson, EventJson, ErrorJson, ErrorDetail, BatchJson, BatchItemJson, EstimateJson, BudgetEffectJson)),
    modifiers(&Security),
    tags((name = "messages", description = "Sending and reading messages"))
)]
pub struct ApiDoc;

/// The two ways to present an API key, and the links from a created message to reading it
/// (so that clients and fuzzers can follow an `id` from one answer into the next request).
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        use utoipa::openapi::{RefOr, link::LinkBuilder};
        if let Some(created) = openapi
            .paths
            .paths
            .get_mut("/api/v1/messages")
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.responses.responses.get_mut("202"))
            && let RefOr::T(response) = created
        {
            response.links.insert(
                "GetMessage".to_owned(),
                RefOr::T(
                    LinkBuilder::new()
                        .operation_id("get_message")
                        .parameter("id", "$response.body#/id")
                        .description("The message just accepted, with its timeline")
                        .build(),
                ),
            );
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "API key id (SK…) as the user name, its secret as the password",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The API key's secret"))
                    .build(),
            ),
        );
    }
}

/// Swagger UI at `/api/docs` (assets built into the binary), reading `/api/v1/openapi.json`,
/// which it also serves.
pub fn docs() -> utoipa_swagger_ui::SwaggerUi {
    use utoipa::OpenApi;
    utoipa_swagger_ui::SwaggerUi::new("/api/docs").url("/api/v1/openapi.json", ApiDoc::openapi())
}
