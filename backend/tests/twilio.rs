//! The Twilio client against a local fake (wiremock) over real HTTP: method, path, auth and form
//! fields asserted; Twilio's real response shapes read; 4xx codes, 5xx and timeouts classified.

use std::time::Duration;

use backend::twilio::{NewMessage, Sender, TwilioClient, TwilioConfig, TwilioError};
use chrono::NaiveDate;
use domain::money::Money;
use domain::status::MessageStatus;
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{basic_auth, body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "test-auth-token";
const MESSAGES: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";

fn client(server: &MockServer, timeout: Duration) -> TwilioClient {
    TwilioClient::new(TwilioConfig {
        base_url: server.uri(),
        account_sid: SID.to_owned(),
        username: SID.to_owned(),
        password: SecretString::from(TOKEN),
        timeout,
    })
    .expect("client")
}

fn new_message() -> NewMessage {
    NewMessage {
        to: "+14155552671".to_owned(),
        sender: Sender::From("+15005550006".to_owned()),
        body: "SafeShipper: Shipment SS-1 created. Track: https://ss.example/t/SS-1".to_owned(),
        status_callback: Some("https://sms.safeshipper.com/webhooks/twilio/status".to_owned()),
        validity_period: Some(600),
        smart_encoded: Some(false),
        attempt: Some(1),
    }
}

/// A Message JSON as Twilio sends it (strings for numbers and prices, RFC 2822 dates).
fn twilio_message(status: &str, price: serde_json::Value) -> serde_json::Value {
    json!({
        "account_sid": SID, "api_version": "2010-04-01",
        "body": "SafeShipper: Shipment SS-1 created. Track: https://ss.example/t/SS-1",
        "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
        "date_sent": null, "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
        "direction": "outbound-api", "error_code": null, "error_message": null,
        "from": "+15005550006", "messaging_service_sid": null, "num_media": "0",
        "num_segments": "1", "price": price, "price_unit": "USD",
        "sid": "SM0123456789abcdef0123456789abcdef", "status": status,
        "to": "+14155552671", "uri": "/2010-04-01/Accounts/.../Messages/SM....json"
    })
}

#[tokio::test]
async fn create_posts_twilios_form_with_basic_auth_and_reads_the_201() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .and(basic_auth(SID, TOKEN))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("To=%2B14155552671"))
        .and(body_string_contains("From=%2B15005550006"))
        .and(body_string_contains("ValidityPeriod=600"))
        .and(body_string_contains(
            "StatusCallback=https%3A%2F%2Fsms.safeshipper.com%2Fwebhooks%2Ftwilio%2Fstatus",
        ))
        .and(body_string_contains("SmartEncoded=false"))
        .and(body_string_contains("Attempt=1"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(twilio_message("queued", json!(null))),
        )
        .expect(1)
        .mount(&server)
        .await;

    let message = client(&server, Duration::from_secs(5))
        .create_message(&new_message())
        .await
        .expect("created");
    assert_eq!(message.sid, "SM0123456789abcdef0123456789abcdef");
    assert_eq!(message.status, MessageStatus::Queued);
    assert_eq!(message.num_segments, 1);
    assert_eq!(message.price, None);
    assert_eq!(
        message.date_created.map(|d| d.to_rfc3339()),
        Some("2023-08-24T05:01:45+00:00".to_owned())
    );
}

#[tokio::test]
async fn a_messaging_service_replaces_the_from_number() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .and(body_string_contains(
            "MessagingServiceSid=MG0123456789abcdef0123456789abcdef",
        ))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(twilio_message("accepted", json!(null))),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut message = new_message();
    message.sender = Sender::MessagingService("MG0123456789abcdef0123456789abcdef".to_owned());
    let sent = client(&server, Duration::from_secs(5))
        .create_message(&message)
        .await
        .unwrap();
    assert_eq!(sent.status, MessageStatus::Accepted);
}

#[tokio::test]
async fn fetch_reads_the_price_string_as_micro_dollars() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/2010-04-01/Accounts/{SID}/Messages/SM0123456789abcdef0123456789abcdef.json"
        )))
        .and(basic_auth(SID, TOKEN))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(twilio_message("delivered", json!("-0.00830"))),
        )
        .mount(&server)
        .await;
    let message = client(&server, Duration::from_secs(5))
        .fetch_message("SM0123456789abcdef0123456789abcdef")
        .await
        .unwrap();
    assert_eq!(message.status, MessageStatus::Delivered);
    assert_eq!(message.price, Some(Money::from_micros(8_300)));
}

#[tokio::test]
async fn a_4xx_keeps_twilios_error_code_and_is_not_in_doubt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": 21211,
            "message": "The 'To' number +1415555 is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211",
            "status": 400
        })))
        .mount(&server)
        .await;
    let error = client(&server, Duration::from_secs(5))
        .create_message(&new_message())
        .await
        .unwrap_err();
    match &error {
        TwilioError::Api {
            status,
            code,
            more_info,
            ..
        } => {
            assert_eq!((*status, *code), (400, Some(21211)));
            assert_eq!(
                more_info.as_deref(),
                Some("https://www.twilio.com/docs/errors/21211")
            );
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert!(!error.in_doubt());
}

#[tokio::test]
async fn a_429_is_refused_with_its_code() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "7")
                .set_body_json(json!({
                    "code": 20429, "message": "Too Many Requests", "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429
                })),
        )
        .mount(&server)
        .await;
    let error = client(&server, Duration::from_secs(5))
        .create_message(&new_message())
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        TwilioError::Api {
            status: 429,
            code: Some(20429),
            retry_after: Some(7),
            ..
        }
    ));
    assert!(error.rate_limited());
    assert!(!error.in_doubt(), "a 429 was refused: nothing went out");
}

#[tokio::test]
async fn a_5xx_without_a_body_is_in_doubt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let error = client(&server, Duration::from_secs(5))
        .create_message(&new_message())
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        TwilioError::Api {
            status: 503,
            code: None,
            ..
        }
    ));
    assert!(error.in_doubt());
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_in_doubt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(twilio_message("queued", json!(null)))
                .set_delay(Duration::from_secs(2)),
        )
        .mount(&server)
        .await;
    let error = client(&server, Duration::from_millis(200))
        .create_message(&new_message())
        .await
        .unwrap_err();
    assert!(matches!(error, TwilioError::Timeout), "{error:?}");
    assert!(error.in_doubt());
}

#[tokio::test]
async fn listing_by_recipient_and_send_date_uses_twilios_filters() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(MESSAGES))
        .and(query_param("To", "+14155552671"))
        .and(query_param("DateSent>", "2023-08-24"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messages": [twilio_message("sent", json!(null))],
            "page": 0, "page_size": 50, "next_page_uri": null
        })))
        .expect(1)
        .mount(&server)
        .await;
    let found = client(&server, Duration::from_secs(5))
        .list_messages_to(
            "+14155552671",
            NaiveDate::from_ymd_opt(2023, 8, 24).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].status, MessageStatus::Sent);
}

#[tokio::test]
async fn an_unreadable_answer_is_a_decode_error_in_doubt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(ResponseTemplate::new(201).set_body_string("<html>proxy error</html>"))
        .mount(&server)
        .await;
    let error = client(&server, Duration::from_secs(5))
        .create_message(&new_message())
        .await
        .unwrap_err();
    assert!(matches!(error, TwilioError::Decode(_)));
    assert!(error.in_doubt());
}
