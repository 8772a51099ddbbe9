//! The Twilio client: small, injected, configured from settings. It speaks Twilio's Messages
//! resource (API 2010-04-01): create (201 with the Message JSON), fetch, and list by recipient and
//! send date (to find out whether a send whose outcome was never recorded went out).
//!
//! Twilio's JSON has traps this module absorbs: `num_segments` and `price` are strings (`"2"`,
//! `"-0.00830"`, `null` until known), dates are RFC 2822 (`Thu, 24 Aug 2023 05:01:45 +0000`), and
//! errors come as `{"code", "message", "more_info", "status"}`.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use domain::money::Money;
use domain::status::MessageStatus;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Where and how to reach Twilio.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// `https://api.twilio.com`, or a fake in tests (no trailing slash).
    pub base_url: String,
    /// `AC...`: goes in every path.
    pub account_sid: String,
    /// HTTP Basic user: the Account SID, or an API key SID (`SK...`).
    pub username: String,
    /// The auth token, or the API key secret.
    pub password: SecretString,
    /// Longest wait for one request; past it the outcome is unknown (in doubt).
    pub timeout: Duration,
}

/// Who a message is sent from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// An E.164 number or an alphanumeric sender id.
    From(String),
    /// `MG...`: Twilio picks the number from the service's pool.
    MessagingService(String),
}

/// The parameters of one send.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// E.164.
    pub to: String,
    pub sender: Sender,
    pub body: String,
    /// Absolute URL Twilio posts status changes to.
    pub status_callback: Option<String>,
    /// Seconds (1..=36000) after which Twilio drops the message if still queued.
    pub validity_period: Option<u32>,
    pub smart_encoded: Option<bool>,
    /// Total attempts including this one (informational for Twilio).
    pub attempt: Option<u32>,
}

/// A message as Twilio reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub sid: String,
    pub status: MessageStatus,
    pub to: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: String,
    /// 0 until known (Messaging Services report it late).
    pub num_segments: u32,
    /// What the message cost (positive), once Twilio knows.
    pub price: Option<Money>,
    pub price_unit: Option<String>,
    pub error_code: Option<u32>,
    pub error_message: Option<String>,
    pub date_created: Option<DateTime<Utc>>,
    pub date_sent: Option<DateTime<Utc>>,
    pub date_updated: Option<DateTime<Utc>>,
}

/// Why a call to Twilio failed.
#[derive(Debug, thiserror::Error)]
pub enum TwilioError {
    /// Twilio answered with an error (its code decides what smsdesk does: `domain::errors`);
    /// phone numbers in its message are masked.
    #[error("Twilio refused the request (HTTP {status}, code {code:?}): {message}")]
    Api {
        status: u16,
        code: Option<u32>,
        message: String,
        more_info: Option<String>,
        /// `Retry-After` in seconds, when Twilio gave one (with a 429 or a 503).
        retry_after: Option<u32>,
    },
    /// No answer in time: the request may or may not have been acted on.
    #[error("Twilio did not answer within the timeout; the message may or may not have been sent")]
    Timeout,
    /// The connection failed; the request may or may not have reached Twilio.
    #[error("could not reach Twilio: {0}")]
    Network(String),
    /// Twilio answered something this client cannot read.
    #[error("could not read Twilio's answer: {0}")]
    Decode(String),
}

impl TwilioError {
    /// Whether the request may have been acted on although no success was seen: such a send is
    /// *in doubt* and must be looked up before it is sent again.
    pub fn in_doubt(&self) -> bool {
        match self {
            TwilioError::Timeout | TwilioError::Network(_) => true,
            TwilioError::Api { status, .. } => *status >= 500,
            TwilioError::Decode(_) => true,
        }
    }

    /// Whether Twilio refused the request for its rate (429 / 20429): the message itself was
    /// not refused and may be sent once Twilio lets it.
    pub fn rate_limited(&self) -> bool {
        matches!(self, TwilioError::Api { status, code, .. } if *status == 429 || *code == Some(20429))
    }

    /// What this failure tells about Twilio's health (`worker::breaker`).
    pub fn signal(&self) -> crate::worker::breaker::Signal {
        use crate::worker::breaker::Signal;
        match self {
            TwilioError::Api { retry_after, .. } if self.rate_limited() => Signal::RateLimited {
                retry_after: *retry_after,
            },
            e if e.in_doubt() => Signal::NoAnswer,
            _ => Signal::Answered,
        }
    }
}

/// Twilio's Message JSON, as sent.
#[derive(Deserialize)]
struct WireMessage {
    sid: String,
    status: String,
    to: String,
    from: Option<String>,
    messaging_service_sid: Option<String>,
    #[serde(default)]
    body: String,
    num_segments: Option<String>,
    price: Option<String>,
    price_unit: Option<String>,
    error_code: Option<u32>,
    error_message: Option<String>,
    date_created: Option<String>,
    date_sent: Option<String>,
    date_updated: Option<String>,
}

#[derive(Deserialize)]
struct WireError {
    code: Option<u32>,
    message: Option<String>,
    more_info: Option<String>,
}

#[derive(Deserialize)]
struct WirePage {
    messages: Vec<WireMessage>,
}

fn rfc2822(field: &str, value: Option<String>) -> Result<Option<DateTime<Utc>>, TwilioError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            DateTime::parse_from_rfc2822(&v)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| TwilioError::Decode(format!("{field} {v:?}: {e}")))
        })
        .transpose()
}

impl TryFrom<WireMessage> for Message {
    type Error = TwilioError;

    fn try_from(w: WireMessage) -> Result<Self, Self::Error> {
        let status = w
            .status
            .parse()
            .map_err(|e| TwilioError::Decode(format!("status: {e}")))?;
        let num_segments = match w.num_segments.as_deref() {
            None | Some("") => 0,
            Some(n) => n
                .parse()
                .map_err(|_| TwilioError::Decode(format!("num_segments {n:?}")))?,
        };
        let price = w
            .price
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(Money::from_twilio_price)
            .transpose()
            .map_err(|e| TwilioError::Decode(format!("price: {e}")))?;
        Ok(Message {
            sid: w.sid,
            status,
            to: w.to,
            from: w.from,
            messaging_service_sid: w.messaging_service_sid,
            body: w.body,
            num_segments,
            price,
            price_unit: w.price_unit,
            error_code: w.error_code,
            error_message: w.error_message,
            date_created: rfc2822("date_created", w.date_created)?,
            date_sent: rfc2822("date_sent", w.date_sent)?,
            date_updated: rfc2822("date_updated", w.date_updated)?,
        })
    }
}

/// A client for one Twilio account.
#[derive(Debug, Clone)]
pub struct TwilioClient {
    http: reqwest::Client,
    config: TwilioConfig,
}

impl TwilioClient {
    pub fn new(config: TwilioConfig) -> Result<TwilioClient, TwilioError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("smsdesk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TwilioError::Network(e.to_string()))?;
        Ok(TwilioClient { http, config })
    }

    fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.config.base_url, self.config.account_sid
        )
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<String, TwilioError> {
        let response = request
            .basic_auth(
                &self.config.username,
                Some(self.config.password.expose_secret()),
            )
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    TwilioError::Timeout
                } else {
                    TwilioError::Network(e.to_string())
                }
            })?;
        let status = response.status();
        // Seconds only (Twilio does not send an HTTP date here).
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok());
        let text = response.text().await.map_err(|e| {
            if e.is_timeout() {
                TwilioError::Timeout
            } else {
                TwilioError::Network(e.to_string())
            }
        })?;
        if status.is_success() {
            return Ok(text);
        }
        Err(decode_error(status.as_u16(), &text, retry_after))
    }

    /// Sends a message: `POST .../Messages.json`.
    pub async fn create_message(&self, message: &NewMessage) -> Result<Message, TwilioError> {
        let mut form: Vec<(&str, String)> =
            vec![("To", message.to.clone()), ("Body", message.body.clone())];
        match &message.sender {
            Sender::From(from) => form.push(("From", from.clone())),
            Sender::MessagingService(sid) => form.push(("MessagingServiceSid", sid.clone())),
        }
        if let Some(url) = &message.status_callback {
            form.push(("StatusCallback", url.clone()));
        }
        if let Some(seconds) = message.validity_period {
            form.push(("ValidityPeriod", seconds.to_string()));
        }
        if let Some(smart) = message.smart_encoded {
            form.push(("SmartEncoded", smart.to_string()));
        }
        if let Some(attempt) = message.attempt {
            form.push(("Attempt", attempt.to_string()));
        }
        let text = self
            .send(self.http.post(self.messages_url()).form(&form))
            .await?;
        decode_message(&text)
    }

    /// One message by sid: `GET .../Messages/{Sid}.json`.
    pub async fn fetch_message(&self, sid: &str) -> Result<Message, TwilioError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages/{}.json",
            self.config.base_url, self.config.account_sid, sid
        );
        decode_message(&self.send(self.http.get(url)).await?)
    }

    /// Messages to `to` sent on or after `sent_on` (UTC day): how an in-doubt send is resolved.
    pub async fn list_messages_to(
        &self,
        to: &str,
        sent_on: NaiveDate,
    ) -> Result<Vec<Message>, TwilioError> {
        let query = [
            ("To", to.to_owned()),
            ("DateSent>", sent_on.format("%Y-%m-%d").to_string()),
            ("PageSize", "50".to_owned()),
        ];
        let text = self
            .send(self.http.get(self.messages_url()).query(&query))
            .await?;
        decode_page(&text)
    }
}

/// Twilio's Message JSON (an answer to a create or a fetch): the message, or
/// [`TwilioError::Decode`] saying which field is not what Twilio sends.
pub fn decode_message(text: &str) -> Result<Message, TwilioError> {
    let wire: WireMessage =
        serde_json::from_str(text).map_err(|e| TwilioError::Decode(e.to_string()))?;
    Message::try_from(wire)
}

/// One page of Twilio's Messages list (`{"messages": [...], ...}`): its messages, or
/// [`TwilioError::Decode`].
pub fn decode_page(text: &str) -> Result<Vec<Message>, TwilioError> {
    let page: WirePage =
        serde_json::from_str(text).map_err(|e| TwilioError::Decode(e.to_string()))?;
    page.messages.into_iter().map(Message::try_from).collect()
}

/// A refusal: the HTTP `status`, Twilio's error JSON in `text` when it is one (any other body,
/// or one without a message, gives the status's reason), and the `Retry-After` seconds if there
/// were any. Phone numbers
/// in Twilio's message are masked.
pub fn decode_error(status: u16, text: &str, retry_after: Option<u32>) -> TwilioError {
    let error: Option<WireError> = serde_json::from_str(text).ok();
    let reason = || {
        reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error")
            .to_owned()
    };
    TwilioError::Api {
        status,
        code: error.as_ref().and_then(|e| e.code),
        // Twilio's texts name the recipient ("The 'To' number +1415... is not valid"):
        // masked here, so no log or row downstream holds the number.
        message: error
            .as_ref()
            .and_then(|e| e.message.as_deref())
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(domain::redact::mask_numbers)
            .unwrap_or_else(reason),
        more_info: error.and_then(|e| e.more_info),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message_of(error: &TwilioError) -> &str {
        match error {
            TwilioError::Api { message, .. } => message,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn a_refusal_keeps_twilio_s_code_and_text_with_the_number_masked() {
        let error = decode_error(
            400,
            r#"{"code": 21211, "message": "The 'To' number +14155552671 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#,
            None,
        );
        assert!(matches!(
            error,
            TwilioError::Api {
                code: Some(21211),
                ..
            }
        ));
        assert_eq!(
            message_of(&error),
            "The 'To' number +*********71 is not a valid phone number."
        );
        assert!(!error.in_doubt() && !error.rate_limited());
    }

    /// Found by the `twilio_json` fuzz target: `{"message":""}` gave an empty text.
    #[test]
    fn a_refusal_without_a_readable_text_says_the_status() {
        assert_eq!(
            message_of(&decode_error(503, r#"{"message":" "}"#, None)),
            "Service Unavailable"
        );
        assert_eq!(
            message_of(&decode_error(502, "<html>", None)),
            "Bad Gateway"
        );
        let limited = decode_error(429, "", Some(7));
        assert_eq!(message_of(&limited), "Too Many Requests");
        assert!(limited.rate_limited() && !limited.in_doubt());
    }

    #[test]
    fn an_answer_that_is_not_a_message_leaves_the_send_in_doubt() {
        for text in [
            "",
            "{}",
            r#"{"sid": "SM1", "status": "sent", "to": "+1", "num_segments": "x"}"#,
        ] {
            let error = decode_message(text).expect_err(text);
            assert!(
                matches!(error, TwilioError::Decode(_)) && error.in_doubt(),
                "{text}"
            );
        }
    }
}
